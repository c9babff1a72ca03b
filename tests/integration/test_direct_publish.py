"""Outbox rows their writer publishes itself (libs/db/direct_publish.py), against the real
servers: a batch goes out with confirms and is marked; what a failed publish did not send,
and the writer's batches after it, go to the relay in order; leases a writer left behind
expire to the relay. (The scheduler's timers use it: tests/integration/test_scheduler.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from libs.bus import Bus
from libs.contracts.agents import INSTALL, InstallInstruction
from libs.contracts.names import Exchange
from libs.db import direct_publish
from libs.db.direct_publish import Event
from libs.db.migrations import migrate
from libs.db.pool import Pool, create_pool, drop_database, ensure_database
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
SCHEMA = "scheduler"


def install(computer_id: str) -> Event:
    body = InstallInstruction(
        computer_id=computer_id, reason="window", updates=[], prompt_user=False, issued_at=NOW
    )
    return INSTALL, body, computer_id


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[Pool]:
    url = f"{infra.database_url}_direct"
    await ensure_database(url)
    await migrate(url, SCHEMA, SCHEDULER.migrations)
    created = await create_pool(url, SCHEMA)
    try:
        yield created
    finally:
        await created.close()
        await drop_database(url)


async def states(pool: Pool) -> list[str]:
    """Each outbox row in seq order: published, waiting (for the relay) or leased."""
    rows = await pool.fetch(
        "SELECT CASE WHEN published_at IS NULL THEN 'waiting'"
        " WHEN published_at = 'infinity' THEN 'leased' ELSE 'published' END AS s"
        " FROM outbox ORDER BY seq"
    )
    return [r["s"] for r in rows]


async def test_batches_go_out_marked_and_a_failure_hands_them_to_the_relay_in_order(
    pool: Pool, bus: Bus
) -> None:
    channel = await bus.connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(Exchange.AGENTS.value, routing_key="computer.*.install.v1")
    async with pool.acquire() as conn, pool.acquire() as publisher:
        async with conn.transaction():
            first = await direct_publish.write(
                conn, [install("pc-1"), install("pc-2")], source="lockgate/scheduler", now=NOW
            )
        assert first.leased
        assert await states(pool) == ["leased", "leased"], "the relay leaves them alone"
        assert await direct_publish.publish(publisher, bus, first, schema=SCHEMA)
        assert await states(pool) == ["published", "published"]
        got: list[aio_pika.abc.AbstractIncomingMessage] = []
        async with queue.iterator() as messages:
            async for message in messages:
                got.append(message)
                await message.ack()
                if len(got) == 2:
                    break
        assert [m.message_id for m in got] == [e.id for e, _, _, _ in first.rows]
        assert json.loads(got[0].body)["computer_id"] == "pc-1"

        async with conn.transaction():
            failing = await direct_publish.write(
                conn, [install("pc-3")], source="lockgate/scheduler", now=NOW
            )
        async with conn.transaction():
            following = await direct_publish.write(
                conn, [install("pc-4")], source="lockgate/scheduler", now=NOW
            )
        # Both committed (leased) before either went out.
        assert failing.leased
        assert following.leased
        failing.rows = [(e, b, "lockgate.no-such-exchange", k) for e, b, _, k in failing.rows]
        assert not await direct_publish.publish(publisher, bus, failing, schema=SCHEMA)
        assert await direct_publish.older_waiting(publisher, following)
        await direct_publish.release(publisher, following, schema=SCHEMA)
        assert await states(pool) == ["published", "published", "waiting", "waiting"]

        async with conn.transaction():
            written = await direct_publish.write(
                conn, [install("pc-5")], source="lockgate/scheduler", now=NOW
            )
        assert not written.leased, "rows wait for the relay: later ones follow them there"
        await pool.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        async with conn.transaction():
            written = await direct_publish.write(
                conn, [install("pc-6")], source="lockgate/scheduler", now=NOW
            )
        assert written.leased, "once the relay sent them, the writer publishes again"
        assert not await direct_publish.older_waiting(publisher, written)
        assert await direct_publish.publish(publisher, bus, written, schema=SCHEMA)
    await channel.close()


async def test_leases_nobody_finished_expire_to_the_relay(pool: Pool) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            await direct_publish.write(
                conn, [install("pc-1")], source="lockgate/scheduler", now=NOW
            )
        lease = timedelta(minutes=1)
        assert await direct_publish.release_expired(conn, lease, schema=SCHEMA) == 0
        assert await states(pool) == ["leased"]
        await asyncio.sleep(0.05)
        assert await direct_publish.release_expired(conn, timedelta(0), schema=SCHEMA) == 1
        assert await states(pool) == ["waiting"]
