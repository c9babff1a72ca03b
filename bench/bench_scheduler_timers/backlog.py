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
from bench.common.profile import spy
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
    after_seq: int
    """The outbox's last seq before the pass: its instructions come after."""

    @property
    def rate(self) -> float:
        return self.target / self.seconds

    @classmethod
    def combine(cls, passes: list[Backlog]) -> Backlog:
        """Several passes (rounds) as one: counts, seconds, CPU and step times added up."""
        steps: dict[str, tuple[int, float]] = {}
        for one in passes:
            for name, calls, seconds in one.steps:
                before = steps.get(name, (0, 0.0))
                steps[name] = (before[0] + calls, before[1] + seconds)
        fired = [p.fired_seconds for p in passes]
        return cls(
            target=sum(p.target for p in passes),
            seconds=sum(p.seconds for p in passes),
            fired_seconds=None if None in fired else sum(f or 0.0 for f in fired),
            usage=combine_usage([p.usage for p in passes]),
            rss_start=min(p.rss_start for p in passes),
            rss_peak=max(p.rss_peak for p in passes),
            fired_lag=[lag for p in passes for lag in p.fired_lag],
            published_lag=[lag for p in passes for lag in p.published_lag],
            fired_total=sum(p.fired_total for p in passes),
            installs_total=sum(p.installs_total for p in passes),
            steps=[(name, calls, seconds) for name, (calls, seconds) in steps.items()],
            profile=next((p.profile for p in passes if p.profile), None),
            after_seq=passes[-1].after_seq,
        )


def combine_usage(usages: list[CpuUsage]) -> CpuUsage:
    """CPU of several phases as one (busy weighted by wall time)."""
    wall = sum(u.wall for u in usages)
    return CpuUsage(
        wall=wall,
        cpu=sum(u.cpu for u in usages),
        busy=sum(u.busy * u.wall for u in usages) / wall,
        parts={k: sum(u.parts[k] for u in usages) for k in usages[0].parts},
    )


@dataclass(frozen=True)
class Before:
    """Where the outbox and the fired marks stood before a lockgate pass."""

    last_seq: int
    fired: int


async def before_pass(infra: Infra) -> Before:
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        return Before(
            await conn.fetchval("SELECT coalesce(max(seq), 0) FROM outbox"),
            await conn.fetchval("SELECT count(*) FROM timer_marks"),
        )
    finally:
        await conn.close()


async def check_backlog(
    infra: Infra, target: int, sunk: int, before: Before
) -> tuple[list[asyncpg.Record], int, int]:
    """The pass's first `target` install rows' timestamps; every timer it fired has its
    instruction published (the sink was empty before the pass)."""
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            f"SELECT created_at, published_at FROM outbox WHERE seq > $2 AND {INSTALL_ROWS}"
            " ORDER BY seq LIMIT $1",
            target,
            before.last_seq,
        )
        installs: int = await conn.fetchval(
            f"SELECT count(*) FROM outbox WHERE seq > $1 AND {INSTALL_ROWS}", before.last_seq
        )
        pending = await unpublished(conn, SCHEMA) + await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at = 'infinity'"
        )
        fired: int = await conn.fetchval("SELECT count(*) FROM timer_marks") - before.fired
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
    infra: Infra,
    settings: Settings,
    queues: QueueProbe,
    target: int,
    *,
    profile: str | None,
    flame_graph: str | None = None,
) -> Backlog:
    """Fire the backlog until `target` instructions are in the (empty) sink. `profile`: a
    cProfile of the pass, stats saved to that file; `flame_graph`: py-spy records it into
    that SVG (bench/common/profile.py)."""
    before = await before_pass(infra)
    trace = Trace()
    fired_before = counter_value(metrics.TIMERS_FIRED)
    profiler = cProfile.Profile() if profile is not None else None
    gc.collect()
    meter = CpuMeter(database_name(infra.database_url))
    with RssSampler() as rss, spy(flame_graph):
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
    rows, fired, installs = await check_backlog(infra, target, sunk, before)
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
        after_seq=before.last_seq,
    )
