"""Firing timers never waits for a computer's row (services/scheduler/store/timers.py
`CLAIM`): the planner and the agents' reports lock a computer's row before its timers, so a
firing transaction that took a timer first and then waited for the computer deadlocked with
them (seen as `DeadlockDetectedError` in the planner under `make run`'s demo). A due timer
whose computer another transaction holds is left for the next round instead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from libs.db.migrations import migrate
from libs.db.pool import Pool, create_pool, drop_database, ensure_database
from services.scheduler.handlers import SERVICE as SCHEDULER
from services.scheduler.store import timers
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
SCHEMA = "scheduler"


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[Pool]:
    url = f"{infra.database_url}_claim"
    await ensure_database(url)
    await migrate(url, SCHEMA, SCHEDULER.migrations)
    created = await create_pool(url, SCHEMA)
    try:
        yield created
    finally:
        await created.close()
        await drop_database(url)


async def test_a_timer_whose_computer_is_held_elsewhere_waits_for_the_next_round(
    pool: Pool,
) -> None:
    for computer in ("pc-held", "pc-free"):
        await pool.execute(
            "INSERT INTO computers (computer_id, hostname, timezone, registered_at,"
            " last_checkin_at) VALUES ($1, $1, 'UTC', $2, $2)",
            computer,
            NOW,
        )
        await pool.execute(
            "INSERT INTO timers (computer_id, kind, due_at) VALUES ($1, 'install', $2)",
            computer,
            NOW - timedelta(minutes=1),
        )
    async with pool.acquire() as planner, pool.acquire() as firing:
        planner_tx = planner.transaction()
        await planner_tx.start()
        # What the planner does first: the computer's row, before its timers.
        await planner.execute("SELECT 1 FROM computers WHERE computer_id = 'pc-held' FOR UPDATE")
        firing_tx = firing.transaction()
        await firing_tx.start()
        claimed = await asyncio.wait_for(timers.claim_due(firing, NOW, 10), 5)
        assert [d.timer.computer_id for d in claimed] == ["pc-free"]
        # The firing transaction may now write its computer without waiting for anyone...
        await asyncio.wait_for(
            firing.execute(
                "UPDATE computers SET restart_phase = restart_phase WHERE computer_id = 'pc-free'"
            ),
            5,
        )
        # ... while the planner's own write of the held computer's timer only waits for the
        # firing transaction to end (it holds that timer's row), and then goes through.
        planner_write = asyncio.create_task(
            planner.execute("DELETE FROM timers WHERE computer_id = 'pc-held'")
        )
        await asyncio.sleep(0.2)
        await firing_tx.commit()
        await asyncio.wait_for(planner_write, 5)
        await planner_tx.rollback()
    # Released, the held computer's timer is claimed by the next round.
    async with pool.acquire() as firing, firing.transaction():
        again = await timers.claim_due(firing, NOW, 10)
    assert sorted(d.timer.computer_id for d in again) == ["pc-free", "pc-held"]
