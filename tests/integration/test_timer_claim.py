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

from libs.bus import Bus
from libs.db.migrations import migrate
from libs.db.pool import Pool, create_pool, drop_database, ensure_database
from libs.service.clock import ManualClock
from libs.service.handlers import Instance, TaskContext
from libs.settings import Settings
from services.scheduler.handlers import SERVICE as SCHEDULER
from services.scheduler.store import timers
from services.scheduler.use_cases.timers import fire_due_timers
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
SCHEMA = "scheduler"


@pytest.fixture
async def database(infra: Infra) -> AsyncIterator[str]:
    """A scheduler schema of its own (its URL), dropped after."""
    url = f"{infra.database_url}_claim"
    await ensure_database(url)
    await migrate(url, SCHEMA, SCHEDULER.migrations)
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture
async def pool(database: str) -> AsyncIterator[Pool]:
    created = await create_pool(database, SCHEMA)
    try:
        yield created
    finally:
        await created.close()


async def due_timer(pool: Pool, computer: str) -> None:
    """A computer and an install timer of it due a minute ago."""
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


async def test_a_timer_whose_computer_is_held_elsewhere_waits_for_the_next_round(
    pool: Pool,
) -> None:
    for computer in ("pc-held", "pc-free"):
        await due_timer(pool, computer)
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


async def test_firing_takes_its_connections_before_it_locks_a_computer(
    database: str, infra: Infra, bus: Bus
) -> None:
    """The firing task takes the connection it publishes with before its claim locks any
    computer row. Taken after (as it was), under `make run`'s demo the pool's other
    connections were held by report handlers waiting for those very rows: the task waited
    for the pool while holding the locks, and the handlers waited for the locks until their
    statement timeout (30 s, 16-18 reports retried at every start). Here the pool has two
    connections and a handler holds one."""
    small = await create_pool(database, SCHEMA, max_size=2)
    try:
        await due_timer(small, "pc-busy")
        task = TaskContext(
            pool=small,
            clock=ManualClock(NOW),
            instance=Instance(SCHEMA, "test-timers", "test", NOW),
            settings=Settings(amqp_url=infra.amqp_url, database_url=database),
            bus=bus,
        )
        async with small.acquire() as handler:
            firing = asyncio.create_task(fire_due_timers(task))
            await asyncio.sleep(0.5)  # the task has one connection and asks for the other
            async with handler.transaction():
                await handler.execute("SET LOCAL lock_timeout = '3s'")
                # What a report handler writes first: the computer's row.
                await handler.execute(
                    "UPDATE computers SET user_logged_on = true WHERE computer_id = 'pc-busy'"
                )
        assert await asyncio.wait_for(firing, 10) == 1, "the timer fired once released"
    finally:
        await small.close()
