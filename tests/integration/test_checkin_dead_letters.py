"""Bad agent messages land in the dead-letter queues with the reason and the agent is told,
once, by the scheduler (`computer.<id>.rejected.v1`); good ones go on. An agent speaks only
for itself: a report naming another computer changes nothing anywhere."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import asyncpg
import pytest

from libs.bus import Bus, to_amqp
from libs.contracts import agents as ag
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from libs.service.pipeline import REASON_CLASS_HEADER, REASON_HEADER
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.infra import Infra
from tests.support.messages import (
    Collector,
    bind_test_queue,
    checkin,
    eventually,
    publish_checkins,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("scheduler")]

DLQ = "scheduler.agent-checkins.dlq"
REPORTS_DLQS = ("scheduler.agent-reports.dlq", "reporting.agent-reports.dlq")


@pytest.fixture
async def scheduler(infra: Infra) -> AsyncIterator[ServiceProcess]:
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, heartbeat_seconds=60
    )
    process = ServiceProcess(SCHEDULER, settings, http_port=0)
    await process.start()
    yield process
    await process.stop()


@pytest.fixture
async def reporting(infra: Infra) -> AsyncIterator[ServiceProcess]:
    """Reporting beside the scheduler: the other consumer of agent reports."""
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, heartbeat_seconds=60
    )
    process = ServiceProcess(REPORTING, settings, http_port=0)
    await process.start()
    yield process
    await process.stop()


async def rejections(bus: Bus, name: str) -> Collector:
    """Collects every `computer.<id>.rejected.v1` published from now on."""
    collector = Collector()
    queue = await bind_test_queue(
        bus, f"test.rejected.{name}", Exchange.AGENTS, "computer.*.rejected.v1"
    )
    await queue.consume(collector)
    return collector


def rejected_by_message(collector: Collector) -> dict[str, list[ag.Rejected]]:
    """The rejections collected so far, by the id of the message refused."""
    found: dict[str, list[ag.Rejected]] = {}
    for message in collector.messages:
        rejected = ag.Rejected.model_validate_json(message.body)
        found.setdefault(rejected.message_id, []).append(rejected)
    return found


async def status(bus: Bus, sender: str, body: bytes) -> str:
    """Publish `body` as agent `sender`'s status report; returns its message id."""
    envelope = Envelope.new(source=f"agent/{sender}", type=ag.AGENT_STATUS.type, subject=sender)
    await bus.publish(
        to_amqp(envelope, body),
        exchange=Exchange.AGENTS.value,
        routing_key=ag.AGENT_STATUS.routing_key(sender),
    )
    return envelope.id


def report(computer_id: str, **fields: object) -> dict[str, object]:
    """A status report's JSON body."""
    body = ag.AgentStatus(computer_id=computer_id, reported_at=datetime.now(UTC))
    return body.model_dump(mode="json") | fields


async def registered(bus: Bus, db: asyncpg.Connection, *computer_ids: str) -> None:
    """Check these computers in and wait until the scheduler knows them."""
    await publish_checkins(bus, [checkin(computer_id) for computer_id in computer_ids])

    async def known() -> bool:
        found = await db.fetchval(
            "SELECT count(*) FROM scheduler.computers WHERE computer_id = ANY($1)",
            list(computer_ids),
        )
        return bool(found == len(computer_ids))

    await eventually(known, timeout=10, what=f"{computer_ids} to be registered")


async def logged_on(db: asyncpg.Connection, computer_id: str) -> bool:
    value = await db.fetchval(
        "SELECT user_logged_on FROM scheduler.computers WHERE computer_id = $1", computer_id
    )
    return bool(value)


def variant(
    computer_id: str,
    change: dict[str, object],
    *,
    body: bytes | None = None,
    message_type: str | None = None,
) -> tuple[aio_pika.Message, str]:
    """A real check-in with one thing broken."""
    message, key = checkin(computer_id)
    data = json.loads(message.body)
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    message.body = body if body is not None else json.dumps(data).encode()
    if message_type:
        message.headers["ce-type"] = message_type
    return message, key


async def parked(bus: Bus, ids: set[str], dlq: str = DLQ) -> dict[str, dict[str, object]]:
    channel = await bus.connection.channel()
    queue = await channel.get_queue(dlq)
    found: dict[str, dict[str, object]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while set(found) != ids:
        message = await queue.get(fail=False)
        if message is None:
            assert loop.time() < deadline, f"parked {sorted(found)} of {sorted(ids)}"
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        if message.message_id in ids:
            found[message.message_id] = dict(message.headers or {})
    await channel.close()
    return found


async def test_bad_checkins_are_parked_with_reason_and_next_is_handled(
    bus: Bus, db: asyncpg.Connection
) -> None:
    """Malformed JSON, a wrong field type, a missing field, an unknown type and a check-in for
    another computer are each parked with a reason naming the problem, the agent is told the
    same reason (and the field, when there is one), and the good check-in sent after them is
    still handled and not rejected."""
    told = await rejections(bus, "checkins")
    base = uuid.uuid4().hex[:8]
    bad = {
        "malformed": variant(f"{base}-a", {}, body=b'{"computer_id": "oops", '),
        "wrong-type": variant(f"{base}-b", {"hostname": 42}),
        "missing": variant(f"{base}-c", {"hostname": None}),
        "unknown-type": variant(f"{base}-d", {}, message_type="agent.checkout.v1"),
        "impostor": variant(f"{base}-e", {"computer_id": f"{base}-someone-else"}),
        "forged-subject": variant(f"{base}-f", {"computer_id": f"{base}-victim"}),
    }
    forged, _ = bad["forged-subject"]
    forged.headers["ce-subject"] = (
        f"{base}-victim"  # the header agrees with the body; the key does not
    )
    good = checkin(f"{base}-good")
    await publish_checkins(bus, [*bad.values(), good])

    ids = {name: message.message_id or "" for name, (message, _) in bad.items()}
    found = await parked(bus, set(ids.values()))
    reasons = {name: str(found[i][REASON_HEADER]) for name, i in ids.items()}
    classes = {name: found[i][REASON_CLASS_HEADER] for name, i in ids.items()}

    assert classes == {
        "malformed": "InvalidMessage",
        "wrong-type": "InvalidMessage",
        "missing": "InvalidMessage",
        "unknown-type": "InvalidMessage",
        "impostor": "InvalidMessage",
        "forged-subject": "InvalidMessage",
    }
    assert "Invalid JSON" in reasons["malformed"]
    assert "field 'hostname' = 42" in reasons["wrong-type"]
    assert "field 'hostname'" in reasons["missing"]
    assert "Field required" in reasons["missing"]
    assert "'agent.checkout.v1' has no handler" in reasons["unknown-type"]
    assert reasons["impostor"] == (
        f"computer_id '{base}-someone-else' in the body does not match '{base}-e' in the "
        "routing key: an agent may only speak for itself"
    )
    assert f"does not match the sender '{base}-f'" in reasons["forged-subject"]
    assert found[ids["missing"]]["x-original-routing-key"] == f"agent.{base}-c.checkin.v1"
    assert found[ids["missing"]]["x-original-exchange"] == Exchange.AGENTS.value

    async def good_registered() -> bool:
        return bool(
            await db.fetchval(
                "SELECT 1 FROM scheduler.computers WHERE computer_id = $1", f"{base}-good"
            )
        )

    await eventually(good_registered, timeout=10, what="the good check-in to be handled")
    await told.wait_for(len(bad), timeout=10)
    answered = rejected_by_message(told)
    assert good[0].message_id not in answered
    fields = {
        "malformed": None,
        "wrong-type": "hostname",
        "missing": "hostname",
        "unknown-type": None,
        "impostor": "computer_id",
        "forged-subject": None,
    }
    for name, message_id in ids.items():
        (rejected,) = answered[message_id]
        _, key = bad[name]
        assert rejected.computer_id == key.split(".")[1], name
        assert (rejected.reason_class, rejected.reason) == (classes[name], reasons[name]), name
        assert rejected.field == fields[name], name
    assert answered[ids["unknown-type"]][0].message_type == "agent.checkout.v1"
    bad_ids = [f"{base}-{suffix}" for suffix in ("a", "b", "c", "d", "e", "f", "victim")]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM scheduler.computers WHERE computer_id = ANY($1)", bad_ids
        )
        == 0
    )


@pytest.mark.usefixtures("reporting")
async def test_a_report_for_another_computer_is_dead_lettered_by_every_consumer(
    bus: Bus, db: asyncpg.Connection
) -> None:
    """A status on agent.<A>.status.v1 whose body names B is parked by the scheduler and by
    reporting before any handler runs, changes nothing for B, and A is told once."""
    base = uuid.uuid4().hex[:8]
    sender, victim = f"{base}-a", f"{base}-b"
    await registered(bus, db, sender, victim)
    told = await rejections(bus, f"forged-{base}")
    forged = await status(bus, sender, json.dumps(report(victim, user_logged_on=True)).encode())
    genuine = await status(bus, sender, json.dumps(report(sender, user_logged_on=True)).encode())

    reason = (
        f"computer_id '{victim}' in the body does not match '{sender}' in the routing key: "
        "an agent may only speak for itself"
    )
    for dlq in REPORTS_DLQS:
        found = await parked(bus, {forged}, dlq)
        assert found[forged][REASON_HEADER] == reason, dlq
        assert found[forged][REASON_CLASS_HEADER] == "InvalidMessage", dlq

    async def sender_logged_on() -> bool:
        return await logged_on(db, sender)

    await eventually(sender_logged_on, timeout=10, what="the genuine report to be handled")
    assert not await logged_on(db, victim), "the forged report changed nothing for the victim"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM reporting.computer_updates WHERE computer_id = $1", victim
        )
        == 0
    )
    await told.wait_for(1, timeout=10)
    await asyncio.sleep(1.0)  # time for a second rejection, were one sent
    answered = rejected_by_message(told)
    assert [r.reason for r in answered[forged]] == [reason], "one rejection, not one per service"
    assert genuine not in answered


@pytest.mark.usefixtures("reporting")
async def test_a_malformed_status_gets_one_rejection_naming_the_field_and_a_valid_one_none(
    bus: Bus, db: asyncpg.Connection
) -> None:
    """Both consumers dead-letter the malformed report; only the scheduler tells the agent,
    naming the field at fault; the valid report after it is taken and not rejected."""
    computer_id = f"{uuid.uuid4().hex[:8]}-m"
    await registered(bus, db, computer_id)
    told = await rejections(bus, f"malformed-{computer_id}")
    installs = [
        {
            "update_id": str(uuid.uuid4()),
            "return_code": "abc",
            "started_at": datetime.now(UTC).isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
        }
    ]
    malformed = await status(
        bus, computer_id, json.dumps(report(computer_id, installs=installs)).encode()
    )
    valid = await status(
        bus, computer_id, json.dumps(report(computer_id, user_logged_on=True)).encode()
    )
    for dlq in REPORTS_DLQS:
        found = await parked(bus, {malformed}, dlq)
        assert "installs[0].return_code" in str(found[malformed][REASON_HEADER]), dlq

    async def valid_taken() -> bool:
        return await logged_on(db, computer_id)

    await eventually(valid_taken, timeout=10, what="the valid report to be handled")
    await told.wait_for(1, timeout=10)
    await asyncio.sleep(1.0)  # time for a second rejection, were one sent
    answered = rejected_by_message(told)
    (rejected,) = answered[malformed]
    assert rejected.computer_id == computer_id
    assert rejected.message_type == ag.AGENT_STATUS.type
    assert rejected.reason_class == "InvalidMessage"
    assert rejected.field == "installs[0].return_code"
    assert "field 'installs[0].return_code' = 'abc'" in rejected.reason
    assert valid not in answered
    (message,) = [
        m for m in told.messages if m.routing_key == f"computer.{computer_id}.rejected.v1"
    ]
    assert message.correlation_id == malformed
    assert (message.headers or {})["ce-source"] == "lockgate/scheduler"
