"""Past one PostgreSQL: reporting's biggest table partitioned by computer, and reports read
from a streaming standby.

- **Partitioned by computer:** reporting's per (computer, update) state rows written by one
  `unnest` upsert per batch of 2,000 (the shape of reporting's raw baseline,
  bench/bench_reporting_ingest) into a copy of `reporting.computer_updates` (LIKE it) and
  into the same table hash-partitioned on `computer_id` into 8 partitions, for the same
  rows; then one computer's rows read by key from each. On one box partitions share the
  disk and cores, so this measures what partitioning costs or saves per statement, the
  step before moving partitions (or computer ranges) to their own servers.
- **Read replica:** a private primary with a streaming standby (tests/support/servers.py
  `postgres_cluster(standby=True)`); the primary takes the upserts while the standby answers
  a fleet-wide count per update and state every 0.2 s; measured: the standby's replay lag
  (pg_stat_replication on the primary) and the read's time on each server.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.common.stats import percentile
from libs.db.migrations import migrate
from libs.db.pool import ensure_database
from services.cli.service_registry import definition

PARTITIONS = 8
BATCH = 2_000
STATES = ("needed", "installed", "installed_pending_restart", "failed", "not_applicable")
UPDATES = [uuid.uuid5(uuid.NAMESPACE_URL, f"lockgate-bench/partition/{n}") for n in range(8)]
UPSERT = (
    "INSERT INTO {table} (computer_id, update_id, state, reported_at)"
    " SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[])"
    " ON CONFLICT (update_id, computer_id) DO UPDATE SET state = excluded.state,"
    " reported_at = excluded.reported_at WHERE {table}.reported_at < excluded.reported_at"
)
FLEET_COUNTS = "SELECT update_id, state, count(*) FROM {table} GROUP BY update_id, state"


@dataclass(frozen=True)
class Partitioned:
    rows: int
    plain_rows_per_second: float
    partitioned_rows_per_second: float
    plain_lookup_ms: float
    partitioned_lookup_ms: float


@dataclass(frozen=True)
class Replica:
    rows: int
    write_rows_per_second: float
    lag_p50_ms: float
    lag_max_ms: float
    primary_read_ms: float
    standby_read_ms: float
    standby_reads: int
    standby_conflicts: int


def batches(
    computers: int, rows: int, seed: int
) -> list[tuple[list[str], list[uuid.UUID], list[str], list[datetime]]]:
    """`rows` (computer, update, state, time) rows in batches, no key twice in a batch."""
    rng = random.Random(seed)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    found = []
    for first in range(0, rows, BATCH):
        keys: dict[tuple[str, uuid.UUID], tuple[str, datetime]] = {}
        while len(keys) < min(BATCH, rows - first):
            computer = f"pc-{rng.randrange(computers):07d}"
            keys[(computer, rng.choice(UPDATES))] = (
                rng.choice(STATES),
                at + timedelta(seconds=first + len(keys)),
            )
        found.append(
            (
                [k[0] for k in keys],
                [k[1] for k in keys],
                [v[0] for v in keys.values()],
                [v[1] for v in keys.values()],
            )
        )
    return found


async def reporting_schema(url: str) -> None:
    found = definition("reporting")
    await migrate(url, "reporting", found.migrations, found.mounted_migrations)


async def write_all(
    conn: asyncpg.Connection,
    table: str,
    work: list[tuple[list[str], list[uuid.UUID], list[str], list[datetime]]],
) -> float:
    started = time.perf_counter()
    for batch in work:
        await conn.execute(UPSERT.format(table=table), *batch)
    return time.perf_counter() - started


async def lookups(conn: asyncpg.Connection, table: str, computers: int) -> float:
    """Median ms of 200 reads of one computer's rows by key."""
    rng = random.Random(5)
    timings = []
    for _ in range(200):
        computer = f"pc-{rng.randrange(computers):07d}"
        started = time.perf_counter()
        await conn.fetch(f"SELECT * FROM {table} WHERE computer_id = $1", computer)
        timings.append((time.perf_counter() - started) * 1000)
    return percentile(timings, 50)


async def partitioned(url: str, computers: int, rows: int) -> Partitioned:
    """The same upserts into reporting.computer_updates' shape, plain and hash-partitioned."""
    await reporting_schema(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE SCHEMA bench_part;"
            " CREATE TABLE bench_part.plain (LIKE reporting.computer_updates INCLUDING ALL);"
            " CREATE TABLE bench_part.hashed (LIKE reporting.computer_updates INCLUDING ALL)"
            " PARTITION BY HASH (computer_id);"
            + "".join(
                f" CREATE TABLE bench_part.hashed_{n} PARTITION OF bench_part.hashed"
                f" FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {n});"
                for n in range(PARTITIONS)
            )
        )
        work = batches(computers, rows, seed=1)
        plain = await write_all(conn, "bench_part.plain", work)
        hashed = await write_all(conn, "bench_part.hashed", work)
        await conn.execute("ANALYZE bench_part.plain; ANALYZE bench_part.hashed")
        plain_ms = await lookups(conn, "bench_part.plain", computers)
        hashed_ms = await lookups(conn, "bench_part.hashed", computers)
        await conn.execute("DROP SCHEMA bench_part CASCADE")
    finally:
        await conn.close()
    return Partitioned(rows, rows / plain, rows / hashed, plain_ms, hashed_ms)


async def read_replica(primary_url: str, standby_url: str, computers: int, rows: int) -> Replica:
    """Upserts on the primary while the standby counts the fleet per update and state."""
    await ensure_database(primary_url)
    await reporting_schema(primary_url)
    table = "reporting.computer_updates"
    writer = await asyncpg.connect(primary_url)
    monitor = await asyncpg.connect(primary_url)
    # the standby has the database once its creation is replayed
    deadline = time.monotonic() + 60
    while True:
        try:
            reader = await asyncpg.connect(standby_url)
            break
        except (asyncpg.InvalidCatalogNameError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    lags: list[float] = []
    standby_reads: list[float] = []
    conflicts: list[float] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            lag = await monitor.fetchval(
                "SELECT extract(epoch FROM replay_lag) * 1000 FROM pg_stat_replication LIMIT 1"
            )
            lags.append(float(lag or 0.0))
            started = time.perf_counter()
            try:
                await reader.fetch(FLEET_COUNTS.format(table=table))
            except asyncpg.PostgresError:  # a read cancelled by replay counts as no read
                conflicts.append(time.perf_counter())
            else:
                standby_reads.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.2)

    try:
        work = batches(computers, rows, seed=2)
        watcher = asyncio.create_task(watch())
        seconds = await write_all(writer, table, work)
        stop.set()
        await watcher
        primary_reads = []
        for _ in range(5):
            started = time.perf_counter()
            await writer.fetch(FLEET_COUNTS.format(table=table))
            primary_reads.append((time.perf_counter() - started) * 1000)
    finally:
        await reader.close()
        await monitor.close()
        await writer.close()
    return Replica(
        rows=rows,
        write_rows_per_second=rows / seconds,
        lag_p50_ms=percentile(lags, 50) if lags else 0.0,
        lag_max_ms=max(lags, default=0.0),
        primary_read_ms=percentile(primary_reads, 50),
        standby_read_ms=percentile(standby_reads, 50) if standby_reads else 0.0,
        standby_reads=len(standby_reads),
        standby_conflicts=len(conflicts),
    )
