"""Rates with 1, 2 or 4 replicas of a service, each its own process (bench_memory.processes).

- **Reporting ingest:** reporting's schema holds N computers (and four updates approved for
  All computers); M status reports of random computers are published with confirms while no
  replica runs, then K replicas start and the inbox is counted every 0.2 s. The rate is
  taken between 10% and 90% of the M reports committed, so the replicas' start-up is not in
  it.
- **Scheduler timers:** the scheduler's schema holds N computers with a stored plan and a
  due timer each, loaded by bench.bench_scheduler_timers.fleet.load_fleet (the scheduler
  benchmark's own fleet); K replicas start and fire the backlog; the install instructions
  written to the outbox and published are counted every 0.2 s (outbox sequence minus rows
  not yet published) until F more are published. The rate is taken between 10% and 90%.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass

import asyncpg

from bench.bench_memory.load import status_message
from bench.bench_memory.processes import ServiceSet
from bench.bench_scheduler_timers.fleet import load_fleet
from bench.common.queues import publish_confirmed
from libs.bus import Bus
from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.migrations import migrate
from services.cli.service_registry import definition

POLL = 0.2
RUN_TIMEOUT = 300.0
UPDATES = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"lockgate-bench/scale/{n}")) for n in range(4)]


@dataclass(frozen=True)
class Rate:
    """One timed run: K replicas, N computers, `count` items, per second between 10% and 90%."""

    replicas: int
    computers: int
    count: int
    per_second: float
    seconds: float
    """From the replicas' start to the last item (start-up included)."""
    complete: bool = True
    """False: `count` is what was done when RUN_TIMEOUT ran out."""


def window_rate(samples: list[tuple[float, int]], target: int) -> float:
    """Items per second between the samples that first reached 10% and 90% of `target`
    (of what was done, when the run stopped short of `target`)."""
    done = samples[-1][1]
    target = min(target, done)
    if done == 0:
        return 0.0

    def first(share: float) -> tuple[float, int]:
        return next(s for s in samples if s[1] >= share * target)

    (t10, n10), (t90, n90) = first(0.1), first(0.9)
    if t90 <= t10:
        return (n90 / t90) if t90 else 0.0
    return (n90 - n10) / (t90 - t10)


async def count_until(
    read: asyncpg.Connection, query: str, target: int, what: str
) -> tuple[list[tuple[float, int]], float]:
    """Poll `query` (items done since the start) until it reaches `target` or RUN_TIMEOUT."""
    started = time.perf_counter()
    samples: list[tuple[float, int]] = [(0.0, 0)]
    while samples[-1][1] < target:
        if time.perf_counter() - started > RUN_TIMEOUT:
            print(f"  {what}: {samples[-1][1]:,} of {target:,} after {RUN_TIMEOUT:g} s")
            break
        await asyncio.sleep(POLL)
        samples.append((time.perf_counter() - started, int(await read.fetchval(query))))
    return samples, samples[-1][0]


async def seed_reporting(url: str, computers: int) -> None:
    """Reporting's schema with `computers` computers and four updates approved for All."""
    found = definition("reporting")
    await migrate(url, "reporting", found.migrations, found.mounted_migrations)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO reporting.computers (computer_id, hostname, registered_at,"
            " operating_system, os_version, architecture, agent_version, timezone,"
            " last_contact_at) SELECT 'pc-' || lpad(i::text, 7, '0'),"
            " 'PC-' || lpad(i::text, 7, '0') || '.corp.example', now() - interval '30 days',"
            " 'Windows 11', '10.0.26100', 'x64', '1.4.2', 'Europe/Paris', now()"
            " FROM generate_series(0, $1 - 1) AS i",
            computers,
        )
        for n, update in enumerate(UPDATES):
            await conn.execute(
                "INSERT INTO reporting.updates (update_id, revision, kb, title, classification,"
                " return_codes) VALUES ($1, 1, $2, $3, 'Security Updates', '[]')",
                uuid.UUID(update),
                str(5_200_000 + n),
                f"Scale update {n}",
            )
            await conn.execute(
                "INSERT INTO reporting.group_approvals (group_id, update_id, action)"
                " VALUES ($1, $2, 'required_install')",
                uuid.UUID(ROOT_GROUP_ID),
                uuid.UUID(update),
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def ingest(  # noqa: PLR0917 - one run's choices
    services: ServiceSet, bus: Bus, url: str, computers: int, replicas: int, messages: int
) -> Rate:
    """K reporting replicas consume `messages` reports published beforehand."""
    if not services.of("reporting"):  # declare reporting's queues once, then stop
        first = services.start("reporting")
        await asyncio.to_thread(services.wait_ready, first)
        services.stop(first)
    rng = random.Random(replicas * 1_000_003 + computers)
    items = []
    for _ in range(messages):
        message, key = status_message(rng.randrange(computers), UPDATES, rng)
        items.append((message, "lockgate.agents", key))
    await publish_confirmed(bus, items)
    read = await asyncpg.connect(url)
    try:
        before = int(await read.fetchval("SELECT count(*) FROM reporting.inbox"))
        started = services.start("reporting", replicas)
        try:
            samples, seconds = await count_until(
                read,
                f"SELECT count(*) - {before} FROM reporting.inbox",
                messages,
                f"reporting ingest with {replicas} replicas",
            )
        finally:
            await asyncio.to_thread(services.stop, started)
    finally:
        await read.close()
    done = samples[-1][1]
    return Rate(
        replicas, computers, done, window_rate(samples, messages), seconds, done >= messages
    )


async def seed_timers(url: str, computers: int) -> None:
    found = definition("scheduler")
    await migrate(url, "scheduler", found.migrations, found.mounted_migrations)
    await load_fleet(url, computers)


PUBLISHED = (
    "SELECT coalesce(max(seq), 0)"
    " - (SELECT count(*) FROM scheduler.outbox WHERE published_at IS NULL) - {before}"
    " FROM scheduler.outbox"
)


async def timers(services: ServiceSet, url: str, computers: int, replicas: int, fired: int) -> Rate:
    """K scheduler replicas fire the due backlog until `fired` more instructions are out."""
    read = await asyncpg.connect(url)
    try:
        before = int(await read.fetchval(PUBLISHED.format(before=0)))
        started = services.start("scheduler", replicas)
        try:
            samples, seconds = await count_until(
                read,
                PUBLISHED.format(before=before),
                fired,
                f"scheduler timers with {replicas} replicas",
            )
        finally:
            await asyncio.to_thread(services.stop, started)
    finally:
        await read.close()
    done = samples[-1][1]
    return Rate(replicas, computers, done, window_rate(samples, fired), seconds, done >= fired)
