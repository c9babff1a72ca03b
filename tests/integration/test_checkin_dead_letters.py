"""Bad agent check-ins land in scheduler.agent-checkins.dlq with the reason; good ones go on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from libs.bus import Bus
from libs.contracts.names import Exchange
from libs.service.pipeline import REASON_CLASS_HEADER, REASON_HEADER
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_checkins

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("scheduler")]

DLQ = "scheduler.agent-checkins.dlq"


@pytest.fixture
async def scheduler(infra: Infra) -> AsyncIterator[ServiceProcess]:
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, heartbeat_seconds=60
    )
    process = ServiceProcess(SCHEDULER, settings, http_port=0)
    await process.start()
    yield process
    await process.stop()


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


async def parked(bus: Bus, ids: set[str]) -> dict[str, dict[str, object]]:
    channel = await bus.connection.channel()
    queue = await channel.get_queue(DLQ)
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
    """Malformed JSON, a wrong field type, a missing field and an unknown type are each parked
    with a reason naming the problem, and the good check-in sent after them is still handled."""
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
        "impostor": "InvalidInput",
        "forged-subject": "InvalidMessage",
    }
    assert "Invalid JSON" in reasons["malformed"]
    assert "field 'hostname' = 42" in reasons["wrong-type"]
    assert "field 'hostname'" in reasons["missing"]
    assert "Field required" in reasons["missing"]
    assert "'agent.checkout.v1' has no handler" in reasons["unknown-type"]
    assert "does not match the sender" in reasons["impostor"]
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
    bad_ids = [f"{base}-{suffix}" for suffix in ("a", "b", "c", "d", "e", "f", "victim")]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM scheduler.computers WHERE computer_id = ANY($1)", bad_ids
        )
        == 0
    )
