"""Phase 4: timers coming due at a steady rate, so their lag is measured without a backlog;
and EXPLAIN of one batch's statements."""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.bench_scheduler_timers.backlog import PHASE_TIMEOUT, POLL_SECONDS, SINK_QUEUE
from bench.bench_scheduler_timers.fleet import BASE, INSTALL_ROWS, KINDS, SCHEMA
from bench.common.explain import explained
from bench.common.infra import check
from bench.common.meters import CpuMeter, CpuUsage, RssSampler, histogram_buckets
from bench.common.queues import QueueProbe
from bench.common.stats import bucket_percentile
from libs.contracts.envelope import source_of
from libs.db.pool import Connection, database_name
from libs.observability import metrics
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.scheduler import store
from services.scheduler.domain.timers import TimerChange
from services.scheduler.handlers import SERVICE as SCHEDULER
from services.scheduler.use_cases.timers import apply, decide_all
from tests.support.infra import Infra

PACED_LEAD_SECONDS = 2.0
PACED_START = BASE + timedelta(minutes=1)
"""Virtual start of phase 4: after the loaded due times, before any rescheduled one."""


class PacedClock:
    """Virtual time running with the wall clock from `start`, so timers come due in real time."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.origin = time.monotonic()
        self.origin_wall = datetime.now(UTC)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.origin)


@dataclass(frozen=True)
class Paced:
    count: int
    rate: float
    seconds: float
    setup_seconds: float
    fired_lag: list[float]
    published_lag: list[float]
    histogram_p99: float
    usage: CpuUsage
    rss_start: int
    rss_peak: int


async def paced_timers(infra: Infra, count: int, rate: float) -> tuple[dict[str, datetime], int]:
    """Drop what is left of the backlog; `count` new timers due at `rate` from PACED_START.

    Returns each computer's due time and the outbox's last seq before the phase.
    """
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute("DELETE FROM timers WHERE due_at <= $1", PACED_START)
        await conn.execute("VACUUM (ANALYZE) timers")
        ids = [
            r["computer_id"]
            for r in await conn.fetch(
                "SELECT computer_id FROM computers c WHERE NOT EXISTS"
                " (SELECT 1 FROM timer_marks m WHERE m.computer_id = c.computer_id) LIMIT $1",
                count,
            )
        ]
        check(
            len(ids) == count,
            f"only {len(ids)} computers left unfired for {count} paced timers: use more"
            " --computers, or fewer --paced-seconds or --paced-load",
        )
        last_seq: int = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM outbox")
        due = {
            cid: PACED_START + timedelta(seconds=PACED_LEAD_SECONDS + index / rate)
            for index, cid in enumerate(ids)
        }
        await store.timers.schedule(
            conn, [TimerChange(cid, KINDS[index % 2], due[cid]) for index, cid in enumerate(ids)]
        )
    finally:
        await conn.close()
    return due, last_seq


async def paced(
    infra: Infra, settings: Settings, queues: QueueProbe, rate: float, seconds: float
) -> Paced:
    count = max(1, round(rate * seconds))
    setup = time.perf_counter()
    due, last_seq = await paced_timers(infra, count, rate)
    setup_seconds = time.perf_counter() - setup
    histogram_before = histogram_buckets(metrics.TIMER_LAG)
    gc.collect()
    await queues.purge(SINK_QUEUE)
    meter = CpuMeter(database_name(infra.database_url))
    with RssSampler() as rss:
        clock = PacedClock(PACED_START)
        process = ServiceProcess(SCHEDULER, settings, http_port=0, clock=clock)
        try:
            await process.start()
            deadline = time.perf_counter() + PHASE_TIMEOUT
            while await queues.depth(SINK_QUEUE) < count:
                if time.perf_counter() > deadline:
                    raise TimeoutError("paced timers not all published in time")
                await asyncio.sleep(POLL_SECONDS)
            elapsed = time.monotonic() - clock.origin
            usage = meter.stop()
        finally:
            await process.stop()
    sunk = await queues.depth(SINK_QUEUE)
    histogram_p99 = bucket_percentile(histogram_before, histogram_buckets(metrics.TIMER_LAG), 99)
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            f"SELECT routing_key, envelope->>'time' AS fired, published_at FROM outbox"
            f" WHERE seq > $1 AND {INSTALL_ROWS}",
            last_seq,
        )
    finally:
        await conn.close()
    check(
        len(rows) == count == sunk,
        f"paced: {len(rows)} install rows, {sunk} in the sink, for {count}",
    )
    fired_lag, published_lag = [], []
    for r in rows:
        due_at = due[r["routing_key"].split(".")[1]]
        fired_lag.append((datetime.fromisoformat(r["fired"]) - due_at).total_seconds())
        due_wall = clock.origin_wall + (due_at - PACED_START)
        published_lag.append((r["published_at"] - due_wall).total_seconds())
    return Paced(
        count=count,
        rate=rate,
        seconds=elapsed,
        setup_seconds=setup_seconds,
        fired_lag=fired_lag,
        published_lag=published_lag,
        histogram_p99=histogram_p99,
        usage=usage,
        rss_start=rss.start,
        rss_peak=rss.peak,
    )


async def explain_batch(infra: Infra, batch: int) -> list[tuple[str, str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of what one batch of the timers task runs (the store's and
    the use case's own statements: claim, writes, outbox), rolled back."""

    async def one_batch(conn: Connection) -> None:
        claimed = await store.timers.claim_due(conn, BASE, batch)
        decisions = await decide_all(conn, claimed, BASE)
        await apply(conn, decisions, BASE, source=source_of(SCHEMA))

    return await explained(infra.database_url, SCHEMA, one_batch)
