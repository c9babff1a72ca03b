"""The message pipeline against real RabbitMQ and PostgreSQL, through an in-process service."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import pytest
from prometheus_client import REGISTRY

from libs.bus import Bus, RpcClient, RpcError, RpcTimeout, ServiceUnavailable, to_amqp
from libs.bus.bus import Callback, PublishFailed
from libs.bus.rpc import REPLY_BY_HEADER, command_id
from libs.contracts import Envelope
from libs.contracts.agents import AGENT_RESTART, AGENT_STATUS, REJECTED, Rejected
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.contracts.spec import AgentEventSpec, CommandSpec, Contract, EventSpec
from libs.db.outbox import RELAY_STEPS, relay_application_name
from libs.service import pipeline
from libs.service.pipeline import REASON_CLASS_HEADER, REASON_HEADER
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from tests.integration import probe
from tests.support.infra import Infra
from tests.support.messages import Collector, bind_test_queue, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]

DELIVERY_LIMIT = 3


@pytest.fixture
async def service(infra: Infra) -> AsyncIterator[ServiceProcess]:
    """The probe service running in this event loop against the session's vhost and database."""
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=infra.database_url,
        delivery_limit=DELIVERY_LIMIT,
        outbox_poll_seconds=0.2,
    )
    process = ServiceProcess(probe.PROBE, settings, http_port=0)
    await process.start()
    yield process
    await process.stop()


@pytest.fixture
async def rpc(bus: Bus) -> RpcClient:
    client = RpcClient(bus, source="tests", timeout=5.0)
    await client.start()
    return client


async def publish(
    bus: Bus,
    spec: EventSpec[probe.Key],
    key: str,
    message_id: str | None = None,
    *,
    as_type: str | None = None,
) -> str:
    """Publish one event; `as_type` sends it under another name (an earlier one, say)."""
    message_type = as_type or spec.type
    envelope = Envelope.new(source="tests", type=message_type, subject=key)
    if message_id:
        envelope = envelope.model_copy(update={"id": message_id})
    await bus.publish(
        to_amqp(envelope, probe.Key(key=key).model_dump_json().encode()),
        exchange=Exchange.EVENTS.value,
        routing_key=as_type or spec.routing_key(),
    )
    return envelope.id


def sample(metric: str, handler: str) -> float:
    """Current value of a per-handler counter in this process's registry."""
    return REGISTRY.get_sample_value(metric, {"handler": handler}) or 0.0


async def counter(db: asyncpg.Connection, key: str) -> int | None:
    value: int | None = await db.fetchval("SELECT n FROM probe.counts WHERE key = $1", key)
    return value


async def dead_letters(
    bus: Bus, queue: str, ids: set[str], timeout: float = 15.0
) -> dict[str, dict[str, object]]:
    """Headers of the dead letters with `ids`, waiting until all arrived."""
    channel = await bus.connection.channel()
    dlq = await channel.get_queue(queue)
    found: dict[str, dict[str, object]] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while set(found) != ids:
        message = await dlq.get(fail=False)
        if message is None:
            assert asyncio.get_running_loop().time() < deadline, f"only {set(found)} of {ids}"
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        if message.message_id in ids:
            found[message.message_id] = dict(message.headers or {})
    await channel.close()
    return found


async def test_event_effect_and_outbox_event(bus: Bus, db: asyncpg.Connection) -> None:
    """A handled event commits its effect and its outgoing event together, and the event leaves."""
    key = uuid.uuid4().hex
    collector = Collector()
    queue = await bind_test_queue(
        bus, f"test.counted.{key}", Exchange.EVENTS, probe.COUNTED.routing_key()
    )
    await queue.consume(collector)
    incoming = await publish(bus, probe.COUNT, key)
    await collector.wait_for(1, timeout=10)
    assert await counter(db, key) == 1
    event = collector.messages[0]
    assert event.headers["ce-subject"] == key
    assert event.correlation_id == incoming, "correlation id is carried from the cause"


async def test_relay_that_loses_its_lock_connection_recovers(
    bus: Bus, db: asyncpg.Connection
) -> None:
    """If the relay's lock connection dies, it stops leading, takes the lock again and goes on
    publishing: events written meanwhile still leave."""
    killed = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = $1 AND datname = current_database()",
        relay_application_name(probe.NAME),
    )
    assert killed == 1
    key = uuid.uuid4().hex
    collector = Collector()
    queue = await bind_test_queue(
        bus, f"test.relay.{key}", Exchange.EVENTS, probe.COUNTED.routing_key()
    )
    await queue.consume(collector)
    for _ in range(3):
        await publish(bus, probe.COUNT, key)
    await collector.wait_for(3, timeout=20)

    async def relay_back() -> bool:
        return bool(
            await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
                " AND datname = current_database()",
                relay_application_name(probe.NAME),
            )
        )

    await eventually(relay_back, timeout=10, what="the relay to reconnect")


async def test_duplicate_delivery_has_one_effect(bus: Bus, db: asyncpg.Connection) -> None:
    """The same message id delivered twice changes the state once (inbox dedupe)."""
    key, message_id = uuid.uuid4().hex, str(uuid.uuid4())
    before = sample("lockgate_messages_duplicate_total", "inputs/count")
    await publish(bus, probe.COUNT, key, message_id)
    await publish(bus, probe.COUNT, key, message_id)

    async def duplicate_seen() -> bool:
        return sample("lockgate_messages_duplicate_total", "inputs/count") > before

    await eventually(duplicate_seen, timeout=10, what="the duplicate to be skipped")
    assert await counter(db, key) == 1


async def test_failing_handler_is_retried_then_dead_lettered(bus: Bus) -> None:
    """A handler that keeps raising is tried delivery_limit times, then parked with its reason."""
    key = uuid.uuid4().hex
    before = sample("lockgate_messages_failed_total", "inputs/fail")
    message_id = await publish(bus, probe.FAIL, key)
    found = await dead_letters(bus, "probe.inputs.dlq", {message_id})
    headers = found[message_id]
    assert headers[REASON_CLASS_HEADER] == "RuntimeError"
    assert f"disk on fire while counting {key}" in str(headers[REASON_HEADER])
    assert sample("lockgate_messages_failed_total", "inputs/fail") - before == DELIVERY_LIMIT


async def test_a_timeout_while_the_database_answers_is_dead_lettered_in_the_end(
    bus: Bus,
) -> None:
    """A statement timing out again and again while the gate reopens at its first probe is
    the message's own failure: dead-lettered after PERSISTENT_OUTAGES tries, not for ever."""
    message_id = await publish(bus, probe.STALL, "stalls")
    found = await dead_letters(bus, "probe.inputs.dlq", {message_id}, timeout=60)
    assert found[message_id][REASON_CLASS_HEADER] == "QueryCanceledError"


async def test_domain_error_is_dead_lettered_at_once(bus: Bus) -> None:
    """A message that can never apply is parked on its first delivery, not retried."""
    before = sample("lockgate_messages_failed_total", "inputs/refuse")
    message_id = await publish(bus, probe.REFUSE, "nope")
    found = await dead_letters(bus, "probe.inputs.dlq", {message_id})
    assert found[message_id][REASON_CLASS_HEADER] == "InvalidInput"
    assert "key 'nope' is not allowed" in str(found[message_id][REASON_HEADER])
    assert sample("lockgate_messages_failed_total", "inputs/refuse") == before


async def test_an_event_under_its_earlier_name_is_still_handled(
    bus: Bus, db: asyncpg.Connection
) -> None:
    """A renamed event keeps working for producers not yet moved: bound and routed by both."""
    key = uuid.uuid4().hex
    await publish(bus, probe.COUNT, key, as_type="probe.count.v1")
    await eventually(lambda: _counted(db, key), timeout=10, what="the old-named event handled")


async def _counted(db: asyncpg.Connection, key: str) -> bool:
    return await counter(db, key) == 1


async def test_a_command_under_its_earlier_name_is_still_answered(rpc: RpcClient) -> None:
    """A caller still using a renamed command's earlier name gets its reply, not a timeout."""
    old = copy.copy(probe.DIVIDE)
    object.__setattr__(old, "type", "probe.divide.v1")  # a caller built before the rename
    reply = await rpc.call(old, probe.Divide(dividend=9, divisor=3))
    assert reply == probe.Quotient(value=3.0)


async def test_rpc_answers(rpc: RpcClient) -> None:
    """A command gets its typed reply."""
    reply = await rpc.call(probe.DIVIDE, probe.Divide(dividend=7, divisor=2))
    assert reply == probe.Quotient(value=3.5)


async def test_rpc_handler_error_is_a_clear_error(rpc: RpcClient) -> None:
    """A handler's domain error reaches the caller as an error naming field and value."""
    with pytest.raises(RpcError) as caught:
        await rpc.call(probe.DIVIDE, probe.Divide(dividend=1, divisor=0))
    assert caught.value.body.error == "InvalidInput"
    assert caught.value.body.field == "divisor"
    assert "divisor 0 is not allowed" in str(caught.value)


async def test_rpc_unexpected_failure_is_answered_after_retries(rpc: RpcClient) -> None:
    """A command whose handler keeps crashing ends in an error reply, not a caller timeout."""
    with pytest.raises(RpcError) as caught:
        await rpc.call(probe.EXPLODE, probe.Key(key="k1"), timeout=15)
    assert caught.value.body.error == "RuntimeError"
    assert f"failed after {DELIVERY_LIMIT} attempts: boom on k1" in caught.value.body.message


async def test_rpc_invalid_request_is_a_clear_error(rpc: RpcClient) -> None:
    """A request that fails validation is answered with the field at fault, not dropped."""
    wrong: CommandSpec[probe.Key, probe.Quotient] = CommandSpec(
        type=probe.DIVIDE.type,
        request=probe.Key,
        reply=probe.Quotient,
        handler="probe",
        summary="divide, sent with the wrong body",
    )
    with pytest.raises(RpcError) as caught:
        await rpc.call(wrong, probe.Key(key="x"))
    assert caught.value.body.error == "InvalidMessage"
    assert "'dividend'" in caught.value.body.message
    assert "Field required" in caught.value.body.message


async def test_rpc_timeout_is_a_clear_error(rpc: RpcClient) -> None:
    """A reply that does not come in time raises RpcTimeout naming the command, not a hang."""
    with pytest.raises(RpcTimeout, match=r"probe\.clock\.sleep\.v1: no reply within 0\.5 s"):
        await rpc.call(probe.SLEEP, probe.Sleep(seconds=3), timeout=0.5)


async def test_rpc_to_no_service_fails_at_once(rpc: RpcClient) -> None:
    """A command no queue takes fails immediately instead of waiting for the timeout."""
    nobody: CommandSpec[probe.Key, probe.Key] = CommandSpec(
        type="probe.nobody.home.v1",
        request=probe.Key,
        reply=probe.Key,
        handler="probe",
        summary="unbound",
    )
    with pytest.raises(ServiceUnavailable, match="is the probe service running"):
        await rpc.call(nobody, probe.Key(key="x"), timeout=30)


async def test_hooks_see_each_step_and_the_consumer(
    infra: Infra, bus: Bus, db: asyncpg.Connection
) -> None:
    """A benchmark's hooks are told the consumer about to start and how long each step of a
    delivery and of the relay took (a second probe, under its own name, gets the event too)."""
    timed: list[tuple[str, float]] = []
    queues: list[str] = []

    def wrap_consumer(queue: str, callback: Callback) -> Callback:
        queues.append(queue)
        return callback

    definition = dataclasses.replace(probe.PROBE, name="probehooks", commands=(), heartbeat=False)
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, outbox_poll_seconds=0.2
    )
    process = ServiceProcess(
        definition,
        settings,
        http_port=0,
        on_step=lambda name, seconds: timed.append((name, seconds)),
        wrap_consumer=wrap_consumer,
    )
    try:
        await process.start()
        assert queues == ["probehooks.inputs"]
        key = uuid.uuid4().hex
        await publish(bus, probe.COUNT, key)

        async def relayed() -> bool:
            counted = await db.fetchval("SELECT n FROM probehooks.counts WHERE key = $1", key)
            return counted == 1 and set(RELAY_STEPS) <= {name for name, _ in timed}

        await eventually(relayed, timeout=10, what="the event to be handled and relayed")
    finally:
        await process.stop()
        channel = await bus.connection.channel()
        for queue in ("probehooks.inputs", "probehooks.inputs.dlq"):
            await channel.queue_delete(queue)
        await channel.close()
    handled = [
        pipeline.STEP_DECODE,
        pipeline.STEP_CLAIM,
        pipeline.STEP_HANDLER,
        pipeline.STEP_TRANSACTION,
        pipeline.STEP_ACK,
        pipeline.STEP_PROCESS,
    ]
    assert [name for name, _ in timed if name in handled] == handled, timed
    assert all(seconds >= 0 for _, seconds in timed)


AGENTS_DLQ = "probeagents.agents.dlq"


@pytest.fixture
async def agents_probe(infra: Infra) -> AsyncIterator[ServiceProcess]:
    """The probe taking every agent message type (status batched), telling agents of refusals."""
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, batch_wait_seconds=0.05
    )
    process = ServiceProcess(probe.AGENTS_PROBE, settings, http_port=0)
    await process.start()
    yield process
    await process.stop()


async def publish_agent(
    bus: Bus,
    spec: AgentEventSpec[Any],
    sender: str,
    *,
    speaks_for: str | None = None,
    body: bytes | None = None,
) -> str:
    """The spec's example as `sender` publishes it (agent.<sender>.<kind>.v1, subject and
    source its own), its body speaking for `speaks_for` (default: the sender)."""
    assert spec.example is not None
    example = spec.example.model_copy(update={spec.computer_id_field: speaks_for or sender})
    envelope = Envelope.new(source=f"agent/{sender}", type=spec.type, subject=sender)
    await bus.publish(
        to_amqp(envelope, body if body is not None else example.model_dump_json().encode()),
        exchange=Exchange.AGENTS.value,
        routing_key=spec.routing_key(sender),
    )
    return envelope.id


async def heard(db: asyncpg.Connection, message_type: str, computer_id: str) -> int | None:
    """How many messages of `message_type` speaking for `computer_id` the agents probe handled."""
    value: int | None = await db.fetchval(
        "SELECT n FROM probeagents.counts WHERE key = $1",
        probe.heard_key(message_type, computer_id),
    )
    return value


async def rejections_of(bus: Bus, computer_id: str) -> Collector:
    """Collects what `computer_id`'s agent is told on computer.<id>.rejected.v1."""
    collector = Collector()
    queue = await bind_test_queue(
        bus, f"test.rejected.{computer_id}", Exchange.AGENTS, REJECTED.routing_key(computer_id)
    )
    await queue.consume(collector)
    return collector


@pytest.mark.usefixtures("agents_probe")
@pytest.mark.parametrize("spec", probe.AGENT_SPECS, ids=lambda spec: spec.type)
async def test_an_agent_message_speaking_for_another_computer_is_dead_lettered(
    spec: AgentEventSpec[Contract], bus: Bus, db: asyncpg.Connection
) -> None:
    """For every agent message type, a body naming another computer than the routing key's is
    parked before any handler runs (status too, on the batching path), the reason names both
    ids, the agent is told, and the genuine message after it is handled."""
    sender = f"pc-{uuid.uuid4().hex[:12]}"
    victim = f"{sender}-victim"
    told = await rejections_of(bus, sender)
    forged = await publish_agent(bus, spec, sender, speaks_for=victim)
    genuine = await publish_agent(bus, spec, sender)

    found = await dead_letters(bus, AGENTS_DLQ, {forged})
    assert found[forged][REASON_CLASS_HEADER] == "InvalidMessage"
    assert found[forged][REASON_HEADER] == (
        f"{spec.computer_id_field} '{victim}' in the body does not match '{sender}' in the "
        "routing key: an agent may only speak for itself"
    )

    async def genuine_heard() -> bool:
        return await heard(db, spec.type, sender) == 1

    await eventually(genuine_heard, timeout=10, what=f"the genuine {spec.type} to be handled")
    assert await heard(db, spec.type, victim) is None, "no effect"
    await told.wait_for(1, timeout=10)
    rejected = Rejected.model_validate_json(told.messages[0].body)
    assert (rejected.computer_id, rejected.message_id, rejected.message_type) == (
        sender,
        forged,
        spec.type,
    )
    assert (rejected.reason_class, rejected.field) == ("InvalidMessage", spec.computer_id_field)
    assert rejected.reason == found[forged][REASON_HEADER]
    assert genuine not in told.ids


@pytest.mark.usefixtures("agents_probe")
async def test_a_rejection_names_the_field_and_is_correlated_with_the_refused_message(
    bus: Bus,
) -> None:
    """`computer.<id>.rejected.v1` carries the CloudEvents headers and, in the AMQP
    correlation_id, the ce-id of the refused message; an unreadable body has no field."""
    spec = AGENT_STATUS
    sender = f"pc-{uuid.uuid4().hex[:12]}"
    told = await rejections_of(bus, sender)
    assert spec.example is not None
    body = spec.example.model_dump(mode="json") | {"computer_id": sender}
    body["installs"][0]["return_code"] = "abc"
    wrong = await publish_agent(bus, spec, sender, body=json.dumps(body).encode())
    unreadable = await publish_agent(bus, spec, sender, body=b'{"computer_id": ')
    await told.wait_for(2, timeout=10)
    by_id = {
        Rejected.model_validate_json(message.body).message_id: message for message in told.messages
    }
    first = by_id[wrong]
    assert first.routing_key == f"computer.{sender}.rejected.v1"
    assert first.correlation_id == wrong
    assert first.headers["ce-type"] == REJECTED.type
    assert first.headers["ce-subject"] == sender
    assert first.headers["ce-source"] == "lockgate/probeagents"
    rejected = Rejected.model_validate_json(first.body)
    assert rejected.field == "installs[0].return_code"
    assert "field 'installs[0].return_code' = 'abc'" in rejected.reason
    assert Rejected.model_validate_json(by_id[unreadable].body).field is None
    assert "Invalid JSON" in Rejected.model_validate_json(by_id[unreadable].body).reason


@pytest.mark.usefixtures("agents_probe")
async def test_an_agent_cannot_make_a_service_answer_into_another_queue(bus: Bus) -> None:
    """A reply_to on an agent's message of an unknown type is not an RPC: the message is
    dead-lettered and the agent told, and nothing is written to the queue it named."""
    sender = f"pc-{uuid.uuid4().hex[:12]}"
    told = await rejections_of(bus, sender)
    target = await bind_test_queue(bus, f"test.target.{sender}", Exchange.EVENTS, "nothing.#")
    envelope = Envelope.new(source=f"agent/{sender}", type="agent.status.v9", subject=sender)
    message = to_amqp(envelope, b"{}", reply_to=target.name)
    await bus.publish(
        message, exchange=Exchange.AGENTS.value, routing_key=AGENT_STATUS.routing_key(sender)
    )
    found = await dead_letters(bus, AGENTS_DLQ, {envelope.id})
    assert "'agent.status.v9' has no handler" in str(found[envelope.id][REASON_HEADER])
    await told.wait_for(1, timeout=10)
    assert await target.get(fail=False) is None


@pytest.mark.usefixtures("agents_probe")
async def test_a_rejection_that_cannot_be_published_keeps_the_dead_letter(
    bus: Bus, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker refusing the rejection costs the agent its hint, never the dead letter, and
    the queue goes on."""
    publish = Bus.publish

    async def refusing_rejections(
        self: Bus,
        message: aio_pika.Message,
        *,
        exchange: str,
        routing_key: str,
        mandatory: bool = False,
    ) -> None:
        if routing_key.startswith("computer."):
            raise PublishFailed(f"publish to {exchange}/{routing_key} failed: refused (test)")
        await publish(
            self, message, exchange=exchange, routing_key=routing_key, mandatory=mandatory
        )

    monkeypatch.setattr(Bus, "publish", refusing_rejections)
    spec = AGENT_RESTART
    sender = f"pc-{uuid.uuid4().hex[:12]}"
    forged = await publish_agent(bus, spec, sender, speaks_for=f"{sender}-victim")
    await publish_agent(bus, spec, sender)
    found = await dead_letters(bus, AGENTS_DLQ, {forged})
    assert "an agent may only speak for itself" in str(found[forged][REASON_HEADER])

    async def genuine_heard() -> bool:
        return await heard(db, spec.type, sender) == 1

    await eventually(genuine_heard, timeout=10, what="the next message to be handled")


# Commands nobody waits for, and retried commands.

COMMANDS = f"{probe.NAME}.commands"


def expired_total() -> float:
    return (
        REGISTRY.get_sample_value(
            "lockgate_rpc_requests_total",
            {"command": probe.DIVIDE.type, "outcome": "expired"},
        )
        or 0.0
    )


async def depth(bus: Bus, queue: str) -> int:
    state = await bus.queue_state(queue)
    assert state is not None, f"{queue} does not answer"
    return state[0]


async def test_a_command_whose_caller_gave_up_is_dropped_not_dead_lettered(bus: Bus) -> None:
    """Sent with a reply-by already past, a command gets no answer and no dead letter; the
    one after it, still awaited, is answered."""
    channel = await bus.connection.channel()
    replies = await channel.declare_queue(exclusive=True, auto_delete=True)
    answered: list[str] = []

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        answered.append(message.correlation_id or "")
        await message.ack()

    await replies.consume(on_reply)
    dropped_before = expired_total()
    dlq_before = await depth(bus, dead_letter_queue_name(COMMANDS))
    for name, reply_by in (("late", time.time() - 1), ("awaited", time.time() + 30)):
        envelope = Envelope.new(source="tests", type=probe.DIVIDE.type, correlation_id=name)
        message = to_amqp(
            envelope,
            probe.Divide(dividend=6, divisor=3).model_dump_json().encode(),
            reply_to=replies.name,
        )
        message.headers[REPLY_BY_HEADER] = int(reply_by * 1000)
        await bus.publish(
            message, exchange=Exchange.COMMANDS.value, routing_key=probe.DIVIDE.routing_key
        )
    deadline = asyncio.get_running_loop().time() + 15
    while "awaited" not in answered:
        assert asyncio.get_running_loop().time() < deadline, "the awaited command got no answer"
        await asyncio.sleep(0.05)
    await channel.close()
    assert answered == ["awaited"]
    assert expired_total() == dropped_before + 1
    assert await depth(bus, dead_letter_queue_name(COMMANDS)) == dlq_before


async def test_a_retry_with_the_same_idempotency_key_is_answered_from_the_inbox(
    bus: Bus, db: asyncpg.Connection
) -> None:
    rpc = RpcClient(bus, source="tests", timeout=10.0)
    await rpc.start()
    request = probe.Divide(dividend=7, divisor=2)
    first = await rpc.call(probe.DIVIDE, request, idempotency_key="change-1")
    again = await rpc.call(probe.DIVIDE, request, idempotency_key="change-1")
    other = await rpc.call(probe.DIVIDE, request, idempotency_key="change-2")
    assert first == again == other
    rows = await db.fetchval(
        "SELECT count(*) FROM probe.inbox WHERE message_id = ANY($1::text[])",
        [command_id(probe.DIVIDE.type, "change-1"), command_id(probe.DIVIDE.type, "change-2")],
    )
    assert rows == 2, "the retry must be answered from the first call's inbox row"
