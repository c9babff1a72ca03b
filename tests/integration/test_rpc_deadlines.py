"""Commands nobody waits for, retried commands, and a console that is still starting.

A command whose caller stopped waiting is dropped, not applied and not dead-lettered (its
caller was told it timed out); a command retried with the same idempotency key is answered
from the inbox, not applied twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest
from prometheus_client import REGISTRY

from libs.bus import Bus, RpcClient, to_amqp
from libs.bus.rpc import REPLY_BY_HEADER, command_id
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from tests.integration import probe
from tests.support.infra import Infra

pytestmark = [pytest.mark.integration]

COMMANDS = f"{probe.NAME}.commands"


@pytest.fixture
async def service(infra: Infra) -> AsyncIterator[ServiceProcess]:
    settings = Settings(amqp_url=infra.amqp_url, database_url=infra.database_url)
    process = ServiceProcess(probe.PROBE, settings, http_port=0)
    await process.start()
    yield process
    await process.stop()


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


@pytest.mark.usefixtures("service")
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


@pytest.mark.usefixtures("service")
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
