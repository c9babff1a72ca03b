"""The whole system at N computers: the fleet, the five services and the four phases."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from bench.bench_approval_scale.fleet import Updates
from bench.bench_memory.fleet import Fleet, seed
from bench.bench_memory.load import Paced, paced_reports
from bench.bench_memory.processes import (
    BENCH_TOKEN,
    SERVICES,
    RssWatch,
    ServiceSet,
    service_set,
)
from bench.common import results
from bench.common.infra import (
    unpublished,
)
from bench.common.meters import MIB
from bench.common.queues import QueueProbe, queue_probe
from bench.common.report import print_table
from libs.bus import Bus, RpcClient
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts.api import PREFIX
from libs.contracts.names import queue_name
from tests.support.infra import Infra

ROOT = Path(__file__).resolve().parents[2]
MSRC = ROOT / "data" / "msrc" / "cvrf-2026-Jan.xml"
GOAL = results.Goal("value", "at_most", 1024, "< 1 GiB")
RPC_TIMEOUT = 600.0
POLL = 1.0
IDLE = "idle, fleet known"
REPLAN = "root approval + replanning"
EVENTS = "agent events"
DRAIN = "events drained"
DIRTY_QUERIES = (
    "SELECT count(*) FROM scheduler.computers WHERE plan_dirty_at IS NOT NULL",
    "SELECT count(*) FROM scheduler.plan_ranges",
)
"""Re-planning still to do: computers marked dirty, and ranges of computers waiting for the
planner (the scheduler keeps bulk work as ranges, docs/architecture.md); summed over those
the scheduler's schema has."""


@dataclass(frozen=True)
class Settings:
    computers: int
    rate: float
    events_seconds: float
    idle_seconds: float
    replan_timeout: float
    drain_timeout: float


@dataclass
class Replan:
    replied: float
    published: float | None
    current: float | None
    dirty_left: int | None
    outbox_left: int


async def dirty(conn: asyncpg.Connection) -> int | None:
    found: int | None = None
    for query in DIRTY_QUERIES:
        try:
            count: int = await conn.fetchval(query)
        except (asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError):
            continue
        found = (found or 0) + count
    return found


async def depths(probe: QueueProbe, queues: list[str]) -> int:
    total = 0
    for queue in queues:
        total += await probe.depth(queue)
    return total


async def root_approval(
    rpc: RpcClient, conn: asyncpg.Connection, probe: QueueProbe, updates: Updates, timeout: float
) -> Replan:
    """Approve one update for All computers; wait until every plan is current (or timeout)."""
    choice = a.GroupChoice(
        group=a.ROOT_GROUP_ID,
        action="required_install",
        deadline=a.DeadlineChoice(kind="one_week"),
    )
    started = time.perf_counter()
    await rpc.call(
        a.APPROVE, a.Approve(updates=[updates.measured], groups=[choice]), timeout=RPC_TIMEOUT
    )
    replied = time.perf_counter() - started
    published: float | None = None
    current: float | None = None
    left: int | None = None
    consumers = [queue_name(s, "approvals") for s in ("scheduler", "reporting")]
    settled = 0
    while time.perf_counter() - started < timeout:
        if published is None and await unpublished(conn, "approval") == 0:
            published = time.perf_counter() - started
        left = await dirty(conn)
        queued = await depths(probe, consumers)
        if published is not None and queued == 0 and left == 0:
            settled += 1
            if settled >= 2:  # twice in a row: no event was still being handled
                current = time.perf_counter() - started - POLL
                break
        else:
            settled = 0
        await asyncio.sleep(POLL)
    outbox = await unpublished(conn, "scheduler")
    return Replan(replied, published, current, left, outbox)


def msrc_request() -> c.ImportDocument:
    """The January 2026 MSRC document as `lockgate catalog import-msrc` sends it."""
    return c.ImportDocument(
        content_gzip_b64=base64.b64encode(gzip.compress(MSRC.read_bytes())).decode(),
        label=str(MSRC.relative_to(ROOT)),
    )


async def import_msrc(rpc: RpcClient, request: c.ImportDocument) -> float:
    started = time.perf_counter()
    await rpc.call(c.IMPORT_DOCUMENT, request, timeout=RPC_TIMEOUT)
    return time.perf_counter() - started


async def poll_console(services: ServiceSet, stop: asyncio.Event) -> tuple[int, int]:
    """The operator's pages while events flow: the fleet list and the overview, every 2 s."""
    console = services.of("console")[0]
    base = f"http://127.0.0.1:{console.port}{PREFIX}"
    ok = failed = 0
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    async with httpx.AsyncClient(timeout=60.0, headers=headers) as client:
        while not stop.is_set():
            for path in ("/computers", "/reports/overview"):
                try:
                    answer = await client.get(base + path)
                    ok, failed = (ok + 1, failed) if answer.status_code == 200 else (ok, failed + 1)
                except httpx.HTTPError:
                    failed += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
    return ok, failed


async def events(
    services: ServiceSet, rpc: RpcClient, fleet: Fleet, settings: Settings
) -> tuple[Paced, float, tuple[int, int]]:
    """Agent events at the rate asked (on a connection of their own, so the RPC and its
    replies do not queue behind them), the catalog's import and the console's pages."""
    updates = [fleet.updates.measured, fleet.updates.warmup, *fleet.updates.others[:2]]
    request = msrc_request()  # compressed before the phase: not in the event loop's way
    publisher = await Bus.connect(
        services.infra.amqp_url, name="lockgate-bench-agents", publish_timeout=60.0
    )
    stop = asyncio.Event()
    console = asyncio.create_task(poll_console(services, stop))
    importing = asyncio.create_task(import_msrc(rpc, request))
    try:
        paced = await paced_reports(
            publisher, fleet.computers, updates, settings.rate, settings.events_seconds
        )
        imported = await importing
    finally:
        stop.set()
        pages = await console
        await publisher.close()
    return paced, imported, pages


async def drained(probe: QueueProbe, timeout: float) -> dict[str, float | None]:
    """Per service, seconds until its agent-reports queue was empty (None: not in time)."""
    waiting = {s: queue_name(s, "agent-reports") for s in ("scheduler", "reporting")}
    found: dict[str, float | None] = dict.fromkeys(waiting)
    started = time.perf_counter()
    while waiting and time.perf_counter() - started < timeout:
        for service, queue in list(waiting.items()):
            if await probe.depth(queue) == 0:
                found[service] = time.perf_counter() - started
                del waiting[service]
        await asyncio.sleep(0.5)
    return found


def mib(value: int) -> float:
    return round(value / MIB, 1)


@dataclass
class SystemRun:
    """What one run of the whole system measured."""

    fleet: Fleet
    ready: float
    replan: Replan
    paced: Paced
    imported: float
    pages: tuple[int, int]
    drain: dict[str, float | None]
    """Per service: seconds after the last report until its agent-reports queue was empty."""
    watch: RssWatch
    final: dict[str, int]


async def run_system(infra: Infra, settings: Settings) -> SystemRun:
    """Seed the fleet, start every service, and go through the four phases."""
    fleet = await seed(infra.database_url, settings.computers)
    print(
        f"fleet: {fleet.computers:,} computers, {fleet.groups:,} groups, "
        f"{fleet.memberships:,} memberships in approval, scheduler and reporting "
        f"(loaded in {fleet.seconds:.1f} s, not timed; database {fleet.database_mib:.0f} MiB)",
        flush=True,
    )
    logs = Path(tempfile.mkdtemp(prefix="lockgate-bench-memory-"))
    with service_set(infra, logs) as services, RssWatch(services) as watch:
        for service in SERVICES:
            services.start(service)
        ready = services.wait_ready()
        print(f"services ready after {ready:.1f} s (logs in {logs})", flush=True)
        watch.enter(IDLE)
        await asyncio.sleep(settings.idle_seconds)
        bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
        conn = await asyncpg.connect(infra.database_url)
        try:
            async with queue_probe(infra.amqp_url) as probe:
                rpc = RpcClient(bus, source="bench", timeout=RPC_TIMEOUT)
                watch.enter(REPLAN)
                replan = await root_approval(
                    rpc, conn, probe, fleet.updates, settings.replan_timeout
                )
                current = (
                    "not within the timeout"
                    if replan.current is None
                    else (f"{replan.current:.1f} s")
                )
                published = (
                    "not within the timeout"
                    if replan.published is None
                    else (f"{replan.published:.1f} s")
                )
                print(
                    f"root approval: reply {replan.replied:.2f} s, events published {published},"
                    f" every plan current {current} ({replan.dirty_left} left), scheduler"
                    f" outbox {replan.outbox_left} unpublished",
                    flush=True,
                )
                watch.enter(EVENTS)
                paced, imported, pages = await events(services, rpc, fleet, settings)
                watch.enter(DRAIN)
                drain = await drained(probe, settings.drain_timeout)
                print(
                    f"events: {paced.sent:,} status reports in {paced.seconds:.1f} s "
                    f"({paced.rate:.0f}/s, publisher at most {paced.behind_max:.2f} s behind, "
                    f"{paced.unconfirmed} not confirmed in 60 s); "
                    "agent-report queues empty "
                    + ", ".join(
                        f"{service} {'not in time' if s is None else f'{s:.1f} s'}"
                        for service, s in drain.items()
                    )
                    + " later; "
                    f"MSRC import {imported:.2f} s; console pages {pages[0]} ok, {pages[1]} failed",
                    flush=True,
                )
        finally:
            await conn.close()
            await bus.close()
        final = watch.sample()
    return SystemRun(fleet, ready, replan, paced, imported, pages, drain, watch, final)


def print_rss(run: SystemRun) -> None:
    phases = [IDLE, REPLAN, EVENTS, DRAIN]
    rows = [
        [
            service,
            *(f"{run.watch.peaks.get(p, {}).get(service, 0) / MIB:.1f}" for p in phases),
            f"{run.final.get(service, 0) / MIB:.1f}",
        ]
        for service in SERVICES
    ]
    print(f"\nRSS per service (MiB, peak per phase; {run.fleet.computers:,} computers)")
    print_table(["service", *phases, "at the end"], rows)
