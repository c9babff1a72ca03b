"""Scheduler timers at fleet scale: how fast due timers become confirmed install instructions.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_scheduler_timers [--computers N] [--fire N]
        [--paced-load F] [--paced-seconds S] [--explain] [--profile FILE]

Everything runs in this one process, against a vhost and a database of their own
(tests.support.infra.local_infra) that are dropped at the end, even on failure.

Setup (not timed, reported): the scheduler's migrations, then COPY (asyncpg
copy_records_to_table) of `--computers` rows into `scheduler.computers`, each with a stored
ComputerPlan (default policy, one of 4 IANA zones, 1 or 2 pending required installs, one
deadline already past so every timer kind fires an instruction), and as many rows into
`scheduler.timers` (one per computer, half `window`, half `deadline`, due at random in the
hour before the run's virtual now), then VACUUM ANALYZE of both tables.

Phases, in this order, in the same run:

1. lockgate backlog: services.scheduler's ServiceProcess with a ManualClock set after every
   due time (so the whole table is due), timer_poll_seconds 0.05, other settings default.
   Timed from the first call of the `timers` task until `--fire` `computer.install.v1`
   instructions were published with confirms into a quorum sink queue bound to
   `computer.*.install.v1` on `lockgate.agents` (its depth is polled every 20 ms). Each
   one was claimed (FOR UPDATE SKIP LOCKED), decided, its outbox row and the timer's next
   due time committed, then relayed. The scheduler keeps firing the rest of the backlog
   until it is stopped, so more than `--fire` timers fire in all.
2. raw publish: the first `--fire` instructions of phase 1 (same bodies, same ce-* headers
   and properties, same exchange and routing keys) published again by a plain aio-pika
   confirm channel into the same (purged) sink, in gathers of outbox_batch_size messages
   like Bus.publish_many.
3. raw claim: plain asyncpg on one connection, per transaction `SELECT ... FOR UPDATE
   SKIP LOCKED LIMIT timer_batch_size` then DELETE of those rows, over what phase 1 left
   of the backlog in the same `timers` table, `--fire` rows.
4. paced (lag without a backlog): the remaining backlog is deleted; `--paced-seconds` worth
   of new timers for computers not fired yet come due at `--paced-load` times phase 1's
   rate, against a clock that runs with the wall clock; timer lag is measured per timer.

Memory: resident set size of this process (the scheduler runs in it), sampled from
/proc/self/statm every 5 ms during phases 1 and 4 (bench.bench_pipeline.RssSampler).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import io
import os
import pstats
import random
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from unittest.mock import patch

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel
from pamqp.commands import Basic
from prometheus_client import Counter

from bench.bench_pipeline import RssSampler, busy_since, cpu_seconds, environment, machine_ticks
from libs.bus import Bus
from libs.bus.bus import Binding
from libs.bus.codec import to_amqp
from libs.contracts.agents import INSTALL, ComputerPlan, PlanItem
from libs.contracts.catalog import ReturnCode
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from libs.contracts.policies import PolicySettings
from libs.db import outbox as outbox_module
from libs.db.migrations import migrate
from libs.db.outbox import Outbox, OutboxRelay
from libs.observability import metrics
from libs.observability.logging import configure_logging
from libs.service import ServiceDefinition, TaskContext
from libs.service.clock import ManualClock
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.scheduler import store, timers
from services.scheduler.domain.windows import next_window
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.infra import Infra, local_infra

P = ParamSpec("P")
R = TypeVar("R")

SCHEMA = SCHEDULER.name
BASE = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
"""The run's virtual now: every loaded timer is due in the hour before it."""
DUE_SPREAD_SECONDS = 3600.0
ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
KINDS = ("window", "deadline")
PLACEHOLDER = "bench-placeholder-computer"
SEED = 20260114

TIMER_POLL_SECONDS = 0.05
SHUTDOWN_GRACE_SECONDS = 120.0
SINK_QUEUE = "bench.install-sink"
POLL_SECONDS = 0.02
PHASE_TIMEOUT = 900.0
PACED_LEAD_SECONDS = 2.0
PACED_START = BASE + timedelta(minutes=1)
"""Virtual start of phase 4: after the loaded due times, before any rescheduled one."""

INSTALL_ROWS = "routing_key LIKE 'computer.%.install.v1'"
CLAIM = (
    "SELECT computer_id, kind, due_at FROM timers WHERE due_at <= $1"
    " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
)
DELETE_CLAIMED = (
    "DELETE FROM timers t USING unnest($1::text[], $2::text[]) AS d (computer_id, kind)"
    " WHERE t.computer_id = d.computer_id AND t.kind = d.kind"
)
MIB = 1024 * 1024


# --- fleet ------------------------------------------------------------------------------------


def computer_id(index: int) -> str:
    return f"pc-{index:07d}"


def plan_templates() -> list[list[tuple[str, str]]]:
    """Per zone, per variant (1 or 2 items): the plan JSON split around the computer id.

    Item 1 (every plan): a cumulative update whose deadline passed, so a `deadline` timer
    has something forced to install; item 2 (half the plans): a third-party update due at
    the next window with a deadline a week later.
    """
    settings = PolicySettings()
    past_deadline = BASE - timedelta(days=2)
    cumulative = PlanItem(
        update_id="6c4c1d8e-5a51-4f6b-9c5e-2f0a7f3a9b11",
        kb="KB5034441",
        title="2026-01 Cumulative Update for Windows 11 Version 24H2 for x64-based Systems"
        " (KB5034441)",
        action="required_install",
        deadline=past_deadline,
        state="needed",
        install_at=past_deadline,
        restart="always",
        command_line=None,
        return_codes=[
            ReturnCode(code=0, outcome="success"),
            ReturnCode(code=3010, outcome="success_restart_required"),
        ],
    )
    templates = []
    for zone in ZONES:
        window = next_window(settings, zone, BASE)
        browser = PlanItem(
            update_id="9a0e7b52-3d1f-4c8e-8f7a-1b2c3d4e5f60",
            kb=None,
            title="Mozilla Firefox 134.0.1 (x64 en-US)",
            action="required_install",
            deadline=BASE + timedelta(days=7),
            state="unknown",
            install_at=window,
            restart="never",
            command_line="-ms",
            return_codes=[ReturnCode(code=0, outcome="success")],
        )
        per_zone = []
        for items in ([cumulative], [cumulative, browser]):
            text = ComputerPlan(
                computer_id=PLACEHOLDER,
                policy_id="2f8d6a4e-0c1b-4e7a-9d3f-5a6b7c8d9e01",
                policy_name="Workstations",
                policy_conflict=None,
                settings=settings,
                timezone=zone,
                next_window=window,
                items=items,
                computed_at=BASE - timedelta(hours=6),
            ).model_dump_json()
            prefix, suffix = text.split(PLACEHOLDER)
            per_zone.append((prefix, suffix))
        templates.append(per_zone)
    return templates


def computer_rows(count: int) -> Iterator[tuple[Any, ...]]:
    templates = plan_templates()
    registered, checked_in = BASE - timedelta(days=30), BASE - timedelta(hours=1)
    zones = len(ZONES)
    for index in range(count):
        cid = computer_id(index)
        prefix, suffix = templates[index % zones][(index // zones) % 2]
        yield (
            cid,
            f"{cid}.corp.example",
            ZONES[index % zones],
            registered,
            checked_in,
            prefix + cid + suffix,
        )


def timer_rows(count: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED)
    zones = len(ZONES)
    for index in range(count):
        kind = KINDS[(index // (2 * zones)) % 2]
        yield (
            computer_id(index),
            kind,
            BASE - timedelta(seconds=rng.random() * DUE_SPREAD_SECONDS),
        )


@dataclass(frozen=True)
class Load:
    computers: int
    copy_seconds: float
    vacuum_seconds: float
    plan_bytes: tuple[int, int]
    sizes: dict[str, str]


async def load_fleet(url: str, count: int) -> Load:
    """COPY the computers and their timers (two connections at once), then VACUUM ANALYZE."""
    settings = {"search_path": SCHEMA}
    first, second = (
        await asyncpg.connect(url, server_settings=settings),
        await asyncpg.connect(url, server_settings=settings),
    )
    try:
        started = time.perf_counter()
        await asyncio.gather(
            first.copy_records_to_table(
                "computers",
                schema_name=SCHEMA,
                columns=[
                    "computer_id",
                    "hostname",
                    "timezone",
                    "registered_at",
                    "last_checkin_at",
                    "plan",
                ],
                records=computer_rows(count),
            ),
            second.copy_records_to_table(
                "timers",
                schema_name=SCHEMA,
                columns=["computer_id", "kind", "due_at"],
                records=timer_rows(count),
            ),
        )
        copied = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(
            first.execute("VACUUM (ANALYZE) computers"), second.execute("VACUUM (ANALYZE) timers")
        )
        vacuumed = time.perf_counter() - started
        loaded = await first.fetchval("SELECT count(*) FROM timers WHERE due_at <= $1", BASE)
        if loaded != count:
            raise RuntimeError(f"{loaded} due timers loaded for {count} computers")
        row = await first.fetchrow(
            "SELECT min(octet_length(plan::text)) AS low, max(octet_length(plan::text)) AS high"
            " FROM (SELECT plan FROM computers LIMIT 8) AS p"
        )
        assert row is not None
        sizes = {
            r["name"]: r["size"]
            for r in await first.fetch(
                "SELECT c.relname AS name, pg_size_pretty(pg_total_relation_size(c.oid)) AS size"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relname IN ('computers', 'timers')",
                SCHEMA,
            )
        }
    finally:
        await first.close()
        await second.close()
    return Load(count, copied, vacuumed, (row["low"], row["high"]), sizes)


# --- measuring helpers ------------------------------------------------------------------------


def database_name(infra: Infra) -> str:
    return infra.database_url.rsplit("/", 1)[-1]


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def counter_total(counter: Counter) -> float:
    """Sum of a labelled counter's `_total` samples (reads only that metric)."""
    return sum(
        float(sample.value)
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def lag_buckets() -> dict[float, float]:
    """TIMER_LAG's cumulative bucket counts, summed over kinds."""
    found: dict[float, float] = defaultdict(float)
    for family in metrics.TIMER_LAG.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                found[float(sample.labels["le"])] += sample.value
    return dict(found)


def bucket_percentile(before: dict[float, float], after: dict[float, float], p: float) -> float:
    """Upper bound of the histogram bucket holding percentile p of the observations between."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    for bound, count in zip(bounds, counts, strict=True):
        if total and count >= p / 100 * total:
            return bound
    return float("inf")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COMPONENTS = ("bench process", "pg: this db", "pg: background", "rabbitmq", "rest of machine")


def process_ticks(database: str) -> dict[int, tuple[str, int]]:
    """Per process: its component and CPU ticks (user + system) so far, from /proc."""
    found: dict[int, tuple[str, int]] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        pid = int(entry.name)
        if pid == me:
            found[pid] = ("bench process", ticks)
        elif comm == "beam.smp":
            found[pid] = ("rabbitmq", ticks)
        elif comm == "postgres" and database in title:
            found[pid] = ("pg: this db", ticks)
        elif comm == "postgres" and any(
            word in title for word in ("checkpointer", "writer", "autovacuum", "launcher", "-D ")
        ):
            found[pid] = ("pg: background", ticks)
    return found


@dataclass(frozen=True)
class Usage:
    """CPU during a phase: this process, the machine's share busy, and seconds by component."""

    cpu: float
    busy: float
    parts: dict[str, float]


class Meter:
    """Measures CPU from its creation to stop(); `rest of machine` is everything not named
    (other sessions of the shared servers, other processes, short-lived processes)."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._cpu = cpu_seconds()
        self._machine = machine_ticks()
        self._processes = process_ticks(database)

    def stop(self) -> Usage:
        cpu, busy = cpu_seconds() - self._cpu, busy_since(self._machine)
        machine_busy = machine_ticks()[0] - self._machine[0]
        parts = dict.fromkeys(COMPONENTS, 0.0)
        named = 0
        for pid, (component, ticks) in process_ticks(self._database).items():
            delta = ticks - self._processes.get(pid, (component, 0))[1]
            parts[component] += delta / CLOCK_TICKS
            named += delta
        parts["rest of machine"] = (machine_busy - named) / CLOCK_TICKS
        return Usage(cpu, busy, parts)


class Steps:
    """Wall time spent inside the scheduler's steps (patched wrappers; overlapping awaits)."""

    ORDER = (
        "timers: claim",
        "timers: plans (fetch+validate)",
        "timers: decide",
        "timers: apply (writes)",
        "  of which outbox insert",
        "relay: drain",
        "  of which to_amqp",
        "  of which publish_many",
    )

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(self.ORDER, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(self.ORDER, 0)
        self.running: dict[str, list[float]] = {name: [] for name in self.ORDER}

    def snapshot(self) -> dict[str, tuple[float, int]]:
        """Seconds and calls so far, calls still running included (the relay's drain lasts)."""
        now = time.perf_counter()
        return {
            name: (
                self.seconds[name] + sum(now - started for started in self.running[name]),
                self.calls[name] + len(self.running[name]),
            )
            for name in self.ORDER
        }

    def timed(self, name: str, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            self.running[name].append(started)
            try:
                return await func(*args, **kwargs)
            finally:
                self.running[name].remove(started)
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return wrapper

    def timed_sync(self, name: str, func: Callable[P, R]) -> Callable[P, R]:
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return wrapper

    @contextmanager
    def patched(self) -> Iterator[Steps]:
        names = iter(self.ORDER)
        with (
            patch.object(
                store, "claim_due_timers", self.timed(next(names), store.claim_due_timers)
            ),
            patch.object(store, "plans", self.timed(next(names), store.plans)),
            patch.object(timers, "decide", self.timed_sync(next(names), timers.decide)),
            patch.object(timers, "apply", self.timed(next(names), timers.apply)),
            patch.object(Outbox, "add_many", self.timed(next(names), Outbox.add_many)),
            patch.object(OutboxRelay, "drain", self.timed(next(names), OutboxRelay.drain)),
            patch.object(outbox_module, "to_amqp", self.timed_sync(next(names), to_amqp)),
            patch.object(Bus, "publish_many", self.timed(next(names), Bus.publish_many)),
        ):
            yield self


@asynccontextmanager
async def monitor(infra: Infra) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def depth(channel: AbstractChannel) -> int:
    declared = await channel.declare_queue(SINK_QUEUE, passive=True)
    return int(declared.declaration_result.message_count or 0)


async def purge(channel: AbstractChannel) -> None:
    queue = await channel.declare_queue(SINK_QUEUE, passive=True)
    await queue.purge()


def with_marked_timers(marks: list[tuple[float, datetime]]) -> ServiceDefinition:
    """The scheduler's definition, its `timers` task recording when it first runs."""

    async def fire(task: TaskContext) -> int:
        if not marks:
            marks.append((time.perf_counter(), datetime.now(UTC)))
        return await timers.fire_due_timers(task)

    return dataclasses.replace(
        SCHEDULER,
        tasks=tuple(
            dataclasses.replace(t, work=fire) if t.name == "timers" else t for t in SCHEDULER.tasks
        ),
    )


# --- phase 1: lockgate through a backlog ------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    target: int
    seconds: float
    fired_seconds: float | None
    usage: Usage
    rss_start: int
    rss_peak: int
    fired_lag: list[float]
    published_lag: list[float]
    fired_total: int
    installs_total: int
    steps: dict[str, tuple[float, int]]
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
        pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        fired: int = await conn.fetchval(
            "SELECT count(*) FROM computers"
            " WHERE last_window_at IS NOT NULL OR deadline_fired_through IS NOT NULL"
        )
    finally:
        await conn.close()
    if pending or installs != fired or installs != sunk or len(rows) != target:
        raise RuntimeError(
            f"lockgate: {fired} timers fired, {installs} install rows ({pending} unpublished),"
            f" {sunk} in the sink, for {target}; relay counters so far: published"
            f" {counter_total(metrics.OUTBOX_PUBLISHED):.0f}, publish errors"
            f" {counter_total(metrics.OUTBOX_PUBLISH_ERRORS):.0f}"
        )
    return rows, fired, installs


async def lockgate_backlog(
    infra: Infra, settings: Settings, target: int, *, profile: str | None
) -> Backlog:
    marks: list[tuple[float, datetime]] = []
    definition = with_marked_timers(marks)
    fired_before = counter_total(metrics.TIMERS_FIRED)
    profiler = cProfile.Profile() if profile is not None else None
    gc.collect()
    async with monitor(infra) as channel:
        meter = Meter(database_name(infra))
        with RssSampler() as rss, Steps().patched() as steps:
            if profiler is not None:
                profiler.enable()
            clock = ManualClock(BASE)
            process = ServiceProcess(definition, settings, http_port=0, clock=clock)
            await process.start()
            fired_at: float | None = None
            try:
                deadline = time.perf_counter() + PHASE_TIMEOUT
                while await depth(channel) < target:
                    if fired_at is None and (
                        counter_total(metrics.TIMERS_FIRED) - fired_before >= target
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
                spent = steps.snapshot()
                if profiler is not None:
                    profiler.disable()
            finally:
                await process.stop()
        sunk = await depth(channel)
    started, started_wall = marks[0]

    rows, fired, installs = await check_backlog(infra, target, sunk)
    text = None
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        text = out.getvalue()
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
        steps=spent,
        profile=text,
    )


# --- phase 2: raw aio-pika publishing the same instructions -----------------------------------


@dataclass(frozen=True)
class Outgoing:
    body: bytes
    routing_key: str
    envelope: Envelope


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float
    usage: Usage

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def instructions(infra: Infra, count: int) -> list[Outgoing]:
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            f"SELECT routing_key, envelope::text AS envelope, body FROM outbox"
            f" WHERE {INSTALL_ROWS} ORDER BY seq LIMIT $1",
            count,
        )
    finally:
        await conn.close()
    return [
        Outgoing(bytes(r["body"]), r["routing_key"], Envelope.model_validate_json(r["envelope"]))
        for r in rows
    ]


async def raw_publish(infra: Infra, items: list[Outgoing], batch: int) -> Rate:
    """Plain aio-pika, one confirm channel, gathers of `batch` publishes, all confirmed."""
    prepared = [(item.body, item.routing_key, item.envelope.headers(), item) for item in items]
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(Exchange.AGENTS.value, ensure=False)
        meter = Meter(database_name(infra))
        started = time.perf_counter()
        for first in range(0, len(prepared), batch):
            confirms = await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body,
                            headers=dict(headers),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=item.envelope.id,
                            type=item.envelope.type,
                            timestamp=item.envelope.time,
                            app_id=item.envelope.source,
                        ),
                        routing_key=routing_key,
                    )
                    for body, routing_key, headers, item in prepared[first : first + batch]
                )
            )
            if not all(isinstance(confirm, Basic.Ack) for confirm in confirms):
                raise RuntimeError("raw publish: a message was not acked")
        seconds = time.perf_counter() - started
        usage = meter.stop()
    finally:
        await connection.close()
    return Rate(len(items), seconds, usage)


# --- phase 3: raw claim rate ------------------------------------------------------------------


async def raw_claim(infra: Infra, count: int, batch: int) -> Rate:
    """SELECT ... FOR UPDATE SKIP LOCKED LIMIT batch, then DELETE them, per transaction."""
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        claimed = 0
        meter = Meter(database_name(infra))
        started = time.perf_counter()
        while claimed < count:
            async with conn.transaction():
                rows = await conn.fetch(CLAIM, BASE, min(batch, count - claimed))
                if not rows:
                    break
                await conn.execute(
                    DELETE_CLAIMED, [r["computer_id"] for r in rows], [r["kind"] for r in rows]
                )
            claimed += len(rows)
        seconds = time.perf_counter() - started
        usage = meter.stop()
    finally:
        await conn.close()
    if claimed != count:
        raise RuntimeError(f"raw claim: only {claimed} due timers left to claim, wanted {count}")
    return Rate(claimed, seconds, usage)


# --- phase 4: paced timers, lag without a backlog ---------------------------------------------


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
    usage: Usage
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
                "SELECT computer_id FROM computers WHERE last_window_at IS NULL"
                " AND deadline_fired_through IS NULL LIMIT $1",
                count,
            )
        ]
        if len(ids) != count:
            raise RuntimeError(f"only {len(ids)} computers left unfired for {count} paced timers")
        last_seq: int = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM outbox")
        due = {
            cid: PACED_START + timedelta(seconds=PACED_LEAD_SECONDS + index / rate)
            for index, cid in enumerate(ids)
        }
        await store.set_timers(
            conn, [(cid, KINDS[index % 2], due[cid]) for index, cid in enumerate(ids)]
        )
    finally:
        await conn.close()
    return due, last_seq


async def paced(infra: Infra, settings: Settings, rate: float, seconds: float) -> Paced:
    count = max(1, round(rate * seconds))
    setup = time.perf_counter()
    due, last_seq = await paced_timers(infra, count, rate)
    setup_seconds = time.perf_counter() - setup
    histogram_before = lag_buckets()
    gc.collect()
    async with monitor(infra) as channel:
        await purge(channel)
        meter = Meter(database_name(infra))
        with RssSampler() as rss:
            clock = PacedClock(PACED_START)
            process = ServiceProcess(SCHEDULER, settings, http_port=0, clock=clock)
            await process.start()
            try:
                deadline = time.perf_counter() + PHASE_TIMEOUT
                while await depth(channel) < count:
                    if time.perf_counter() > deadline:
                        raise TimeoutError("paced timers not all published in time")
                    await asyncio.sleep(POLL_SECONDS)
                elapsed = time.monotonic() - clock.origin
                usage = meter.stop()
            finally:
                await process.stop()
        sunk = await depth(channel)
    histogram_p99 = bucket_percentile(histogram_before, lag_buckets(), 99)
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            f"SELECT routing_key, envelope->>'time' AS fired, published_at FROM outbox"
            f" WHERE seq > $1 AND {INSTALL_ROWS}",
            last_seq,
        )
    finally:
        await conn.close()
    if len(rows) != count or sunk != count:
        raise RuntimeError(f"paced: {len(rows)} install rows, {sunk} in the sink, for {count}")
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


# --- EXPLAIN ANALYZE of one batch's statements -------------------------------------------------


async def explain_batch(infra: Infra, batch: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a batch's claim, plan fetch and writes, rolled back."""
    out: list[str] = []
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:

            async def show(title: str, sql: str, *args: object) -> None:
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
                out.append(f"-- {title}")
                out.extend(r[0] if len(r[0]) <= 140 else r[0][:137] + "..." for r in rows)

            await show("claim", CLAIM, BASE, batch)
            claimed = await conn.fetch(CLAIM, BASE, batch)
            ids = sorted({r["computer_id"] for r in claimed})
            await show(
                "plans (store.plans)",
                "SELECT computer_id, timezone, user_logged_on, last_checkin_at, last_window_at,"
                " deadline_fired_through, plan_hash, restart_phase, restart_due_at,"
                " restart_prompts, plan::text AS plan FROM computers"
                " WHERE computer_id = ANY ($1::text[]) AND plan IS NOT NULL",
                ids,
            )
            await show(
                "set_marks (store.set_marks)",
                "UPDATE computers SET last_window_at = $2 WHERE computer_id = ANY ($1::text[])",
                ids,
                BASE,
            )
            await show(
                "set_timers upsert (store.set_timers)",
                "INSERT INTO timers (computer_id, kind, due_at)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])"
                " ON CONFLICT (computer_id, kind) DO UPDATE SET due_at = EXCLUDED.due_at",
                [r["computer_id"] for r in claimed],
                [r["kind"] for r in claimed],
                [BASE + timedelta(hours=14)] * len(claimed),
            )
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
    return "\n".join(out)


# --- report -----------------------------------------------------------------------------------


def lag_line(name: str, samples: Sequence[float]) -> str:
    return (
        f"| {name:<34} | {percentile(samples, 50):>8.3f} | {percentile(samples, 95):>8.3f} "
        f"| {percentile(samples, 99):>8.3f} | {max(samples):>8.3f} |"
    )


def table(header: str, lines: list[str]) -> None:
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for line in lines:
        print(line)


def report(  # noqa: PLR0917 - one report of the run's phases
    env: dict[str, str],
    settings: Settings,
    load: Load,
    backlog: Backlog,
    raw: Rate,
    claim: Rate,
    pace: Paced | None,
) -> None:
    print()
    for name, value in env.items():
        print(f"{name:>12}: {value}")
    print(
        f"settings: timer_batch_size {settings.timer_batch_size}, outbox_batch_size "
        f"{settings.outbox_batch_size}, timer_poll_seconds {settings.timer_poll_seconds}"
    )
    print(
        f"load (not timed in the figures): {load.computers} computers + {load.computers} timers"
        f" by COPY in {load.copy_seconds:.1f} s, VACUUM ANALYZE {load.vacuum_seconds:.1f} s;"
        f" plan JSON {load.plan_bytes[0]}-{load.plan_bytes[1]} bytes;"
        f" sizes {', '.join(f'{k} {v}' for k, v in sorted(load.sizes.items()))}"
    )
    print()
    print(
        f"Throughput: the first {backlog.target} of {load.computers} due timers; CPU s: this"
        " process (the scheduler runs in it); machine busy: both cores, everything included"
    )
    rows: list[tuple[str, int, float, Usage]] = [
        ("lockgate fired+published", backlog.target, backlog.seconds, backlog.usage),
        ("raw aio-pika confirmed publish", raw.count, raw.seconds, raw.usage),
        ("raw SKIP LOCKED claim + DELETE", claim.count, claim.seconds, claim.usage),
    ]
    if pace is not None:
        rows.append(("paced lockgate (not a max rate)", pace.count, pace.seconds, pace.usage))
    table(
        f"| {'what':<31} | {'count':>7} | {'seconds':>8} | {'per s':>8} | {'CPU s':>6} "
        f"| {'CPU ms/timer':>12} | {'machine busy':>12} |",
        [
            f"| {name:<31} | {count:>7} | {seconds:>8.2f} | {count / seconds:>8.0f} "
            f"| {usage.cpu:>6.2f} | {usage.cpu / count * 1000:>12.3f} | {usage.busy:>12.0%} |"
            for name, count, seconds, usage in rows
        ],
    )
    print()
    print(
        "CPU seconds by component during each phase (from /proc; 'rest of machine' is every"
        " other process on the 2 cores, other users of the shared servers included)"
    )
    table(
        f"| {'phase':<31} | {'wall s':>7} | "
        + " | ".join(f"{c:>15}" for c in COMPONENTS)
        + f" | {'idle':>6} |",
        [
            f"| {name:<31} | {seconds:>7.2f} | "
            + " | ".join(f"{usage.parts[c]:>15.2f}" for c in COMPONENTS)
            + f" | {1 - usage.busy:>6.0%} |"
            for name, _, seconds, usage in rows
        ],
    )
    if backlog.fired_seconds is not None:
        print(
            f"lockgate: fired counter reached {backlog.target} after {backlog.fired_seconds:.2f}"
            f" s ({backlog.target / backlog.fired_seconds:.0f}/s), published after"
            f" {backlog.seconds:.2f} s"
        )
    print(
        f"lockgate fired {backlog.fired_total} timers in all before it stopped"
        f" ({backlog.installs_total} install instructions, all published)"
    )
    print(f"throughput ratio lockgate/raw publish: {backlog.rate / raw.rate:.3f} (goal >= 0.7)")
    print(
        f"scheduler process RSS: start {backlog.rss_start / MIB:.1f} MiB, peak"
        f" {backlog.rss_peak / MIB:.1f} MiB, delta"
        f" {(backlog.rss_peak - backlog.rss_start) / MIB:.1f} MiB"
    )
    print()
    print(
        "Where lockgate's wall time went (patched wrappers; the timer task and the relay run"
        " concurrently in one event loop, so an await's time includes the other's work)"
    )
    table(
        f"| {'step':<30} | {'calls':>6} | {'seconds':>8} | {'share of phase':>14} |",
        [
            f"| {name:<30} | {calls:>6} | {seconds:>8.2f} | {seconds / backlog.seconds:>14.0%} |"
            for name, (seconds, calls) in backlog.steps.items()
        ],
    )
    print()
    header = f"| {'timer lag, s':<34} | {'p50':>8} | {'p95':>8} | {'p99':>8} | {'max':>8} |"
    lines = [
        lag_line("backlog: due -> fired (outbox row)", backlog.fired_lag),
        lag_line("backlog: due -> published", backlog.published_lag),
    ]
    if pace is not None:
        lines += [
            lag_line("paced: due -> fired", pace.fired_lag),
            lag_line("paced: due -> published", pace.published_lag),
        ]
    print(
        "Timer lag. Backlog: every timer counted as due when the timers task first ran (the"
        " ManualClock is past all due times), over the first N instructions"
    )
    table(header, lines)
    if pace is not None:
        print(
            f"paced: {pace.count} timers due at {pace.rate:.0f}/s over"
            f" {pace.count / pace.rate:.1f} s (clock running with the wall clock), all published"
            f" {pace.seconds:.1f} s after start; lockgate_timer_lag_seconds p99 bucket <="
            f" {pace.histogram_p99:g} s;"
            f" RSS start {pace.rss_start / MIB:.1f} MiB, peak {pace.rss_peak / MIB:.1f} MiB;"
            f" setup (delete backlog, vacuum, new timers) {pace.setup_seconds:.1f} s"
        )
    if backlog.profile is not None:
        print()
        print("cProfile of the backlog phase (rates above are slowed by the profiler):")
        print(backlog.profile)


async def run(
    infra: Infra,
    computers: int,
    target: int,
    paced_load: float,
    paced_seconds: float,
    *,
    explain: bool,
    profile: str | None,
) -> None:
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=infra.database_url,
        timer_poll_seconds=TIMER_POLL_SECONDS,
        shutdown_grace_seconds=SHUTDOWN_GRACE_SECONDS,
    )
    env = await environment(infra)
    before = machine_ticks()
    await asyncio.sleep(3.0)
    env["before run"] = f"machine {busy_since(before):.0%} busy over 3 s with this benchmark idle"
    await migrate(infra.database_url, SCHEMA, SCHEDULER.migrations)
    print(f"loading {computers} computers and timers ...", flush=True)
    load = await load_fleet(infra.database_url, computers)
    print(f"loaded in {load.copy_seconds:.1f} s + vacuum {load.vacuum_seconds:.1f} s", flush=True)
    if explain:
        print(await explain_batch(infra, settings.timer_batch_size), flush=True)
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    try:
        await bus.declare_exchanges()
        await bus.declare_queue(SINK_QUEUE, [Binding(Exchange.AGENTS, INSTALL.binding_key)])
    finally:
        await bus.close()
    print(f"lockgate: firing until {target} instructions are published ...", flush=True)
    backlog = await lockgate_backlog(infra, settings, target, profile=profile)
    print(f"lockgate: {backlog.rate:.0f}/s; raw publish of the same messages ...", flush=True)
    items = await instructions(infra, target)
    async with monitor(infra) as channel:
        await purge(channel)
        raw = await raw_publish(infra, items, settings.outbox_batch_size)
        sunk = await depth(channel)
        await purge(channel)
    if sunk != target:
        raise RuntimeError(f"raw publish: {sunk} messages in the sink for {target}")
    del items
    print(f"raw publish: {raw.rate:.0f}/s; raw claim ...", flush=True)
    claim = await raw_claim(infra, target, settings.timer_batch_size)
    pace = None
    if paced_seconds > 0:
        rate = paced_load * backlog.rate
        print(f"paced: {rate:.0f} timers/s for {paced_seconds:g} s ...", flush=True)
        pace = await paced(infra, settings, rate, paced_seconds)
    report(env, settings, load, backlog, raw, claim, pace)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--computers", type=int, default=1_000_000, help="computers and timers")
    parser.add_argument(
        "--fire", type=int, default=100_000, help="timed slice: instructions to publish"
    )
    parser.add_argument(
        "--paced-load", type=float, default=0.5, help="paced phase rate, share of backlog rate"
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=20.0, help="paced phase length (0: skip it)"
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE a batch first")
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the backlog phase, stats saved to FILE"
    )
    args = parser.parse_args(argv)
    if not 0 < args.fire <= args.computers // 3:
        parser.error("--fire must be positive and at most a third of --computers")
    if not 0 < args.paced_load <= 2 or args.paced_seconds < 0:
        parser.error("--paced-load must be in (0, 2], --paced-seconds >= 0")
    configure_logging("bench", "warning")
    started = time.perf_counter()
    with local_infra(Settings()) as infra:
        print(f"vhost {infra.vhost}, database {infra.database_url.rsplit('/', 1)[-1]}")
        asyncio.run(
            run(
                infra,
                args.computers,
                args.fire,
                args.paced_load,
                args.paced_seconds,
                explain=args.explain,
                profile=args.profile,
            )
        )
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
