"""Phase 1: the scheduler fires a backlog of due timers until enough instructions are out."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import time
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from bench.bench_scheduler_timers.fleet import BASE, DUE_SPREAD_SECONDS, INSTALL_ROWS, SCHEMA
from bench.common.infra import check, unpublished
from bench.common.meters import CpuMeter, CpuUsage, RssSampler, counter_value
from bench.common.queues import QueueProbe
from bench.common.report import profile_text
from bench.common.tracing import Trace
from libs.db.pool import database_name
from libs.observability import metrics
from libs.service.clock import ManualClock
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.infra import Infra

SINK_QUEUE = "bench.install-sink"
POLL_SECONDS = 0.02
PHASE_TIMEOUT = 900.0
TIMERS_TASK = "task timers"
"""The scheduler's `timers` task in a Trace."""


@dataclass(frozen=True)
class Backlog:
    target: int
    seconds: float
    fired_seconds: float | None
    usage: CpuUsage
    rss_start: int
    rss_peak: int
    fired_lag: list[float]
    published_lag: list[float]
    fired_total: int
    installs_total: int
    steps: list[tuple[str, int, float]]
    """Where the wall time went: the timers task and its statements, the relay's steps."""
    profile: str | None

    @property
    def rate(self) -> float:
        return self.target / self.seconds


async def check_backlog(
    infra: Infra, target: int, sunk: int
) -> tuple[list[asyncpg.Record], int, int]:
    """The first `target` install rows' timestamps; every fired timer's instruction published."""
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            f"SELECT created_at, published_at FROM outbox WHERE {INSTALL_ROWS}"
            " ORDER BY seq LIMIT $1",
            target,
        )
        installs: int = await conn.fetchval(f"SELECT count(*) FROM outbox WHERE {INSTALL_ROWS}")
        pending = await unpublished(conn, SCHEMA)
        fired: int = await conn.fetchval(
            "SELECT count(*) FROM computers"
            " WHERE last_window_at IS NOT NULL OR deadline_fired_through IS NOT NULL"
        )
    finally:
        await conn.close()
    check(
        not pending and installs == fired == sunk and len(rows) == target,
        f"lockgate: {fired} timers fired, {installs} install rows ({pending} unpublished),"
        f" {sunk} in the sink, for {target}; relay counters so far: published"
        f" {counter_value(metrics.OUTBOX_PUBLISHED):.0f}, publish errors"
        f" {counter_value(metrics.OUTBOX_PUBLISH_ERRORS):.0f}",
    )
    return rows, fired, installs


async def lockgate_backlog(
    infra: Infra, settings: Settings, queues: QueueProbe, target: int, *, profile: str | None
) -> Backlog:
    trace = Trace()
    fired_before = counter_value(metrics.TIMERS_FIRED)
    profiler = cProfile.Profile() if profile is not None else None
    gc.collect()
    meter = CpuMeter(database_name(infra.database_url))
    with RssSampler() as rss:
        if profiler is not None:
            profiler.enable()
        clock = ManualClock(BASE)
        process = ServiceProcess(
            trace.definition(SCHEDULER), settings, http_port=0, clock=clock, on_step=trace.step
        )
        try:
            await process.start()
            fired_at: float | None = None
            deadline = time.perf_counter() + PHASE_TIMEOUT
            while await queues.depth(SINK_QUEUE) < target:
                if (
                    fired_at is None
                    and counter_value(metrics.TIMERS_FIRED) - fired_before >= target
                ):
                    # Enough fired: move the clock before every due time so the task stops
                    # claiming (the batch in flight still commits) and the outbox to flush
                    # at shutdown stays small.
                    fired_at = time.perf_counter()
                    clock.set(BASE - timedelta(seconds=DUE_SPREAD_SECONDS + 1))
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"fewer than {target} instructions published in time")
                await asyncio.sleep(POLL_SECONDS)
            ended = time.perf_counter()
            usage = meter.stop()
            if profiler is not None:
                profiler.disable()
        finally:
            await process.stop()
    sunk = await queues.depth(SINK_QUEUE)
    started, started_wall = trace.first_call[TIMERS_TASK]
    rows, fired, installs = await check_backlog(infra, target, sunk)
    text = None
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
        text = profile_text(profiler, own=30, cumulative=40)
    return Backlog(
        target=target,
        seconds=ended - started,
        fired_seconds=None if fired_at is None else fired_at - started,
        usage=usage,
        rss_start=rss.start,
        rss_peak=rss.peak,
        fired_lag=[(r["created_at"] - started_wall).total_seconds() for r in rows],
        published_lag=[(r["published_at"] - started_wall).total_seconds() for r in rows],
        fired_total=fired,
        installs_total=installs,
        steps=trace.breakdown(TIMERS_TASK, since=started, until=ended),
        profile=text,
    )
