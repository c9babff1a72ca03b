"""Agent status reports into reporting, against raw baselines; and the fleet-wide summary.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_reporting_ingest [--messages N] [--prefetch 256 500]
        [--summary-calls 20] [--profile]

Everything runs in this one process, against a vhost and a database of its own
(tests.support.infra.local_infra) that are dropped at the end, even on failure.

The fleet: 100,000 computers and 200 updates, loaded with COPY into reporting's read copies
(`reporting.computers`, `reporting.updates`, and `reporting.group_approvals` approving every
update for the root group, so every computer is targeted by every update). The stream:
1,000,000 `agent.status.v1` reports, 10 per computer with increasing `reported_at`, in
rounds (report 1 of every computer, then report 2, ...). Each computer has 8 applicable
updates (a fixed draw per computer); a report carries 4 detections of them, and an install
result for each update whose install round it is (about 0.46 per report; codes 0, 3010 or
1603). `--messages N` takes the first N reports of that stream (N=200,000: the first two
reports of every computer).

Per prefetch value, on emptied tables, the N reports are published with confirms on
`lockgate.agents` (ce-subject and routing key = the computer) BEFORE any consumer runs; the
topic exchange copies each into reporting's `reporting.agent-reports` queue and into a raw
quorum queue bound the same way. Then, one after the other:

* raw consume: aio-pika, same prefetch, json.loads each body, ack each message;
* raw upsert: asyncpg, the (computer, update, state, reported_at) rows derived from the same
  bodies (derived before the clock starts, newest per key within a batch), one
  `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` per batch of `prefetch`
  messages, one transaction per batch, into a table shaped like reporting.computer_updates;
* lockgate: reporting's SERVICE through ServiceProcess in this process, timed from the
  consumer's registration on `reporting.agent-reports` until every batch has committed and
  acked (batches: up to `prefetch` messages per transaction, libs/service/batching.py).

Checks after each prefetch value: every message claimed in reporting.inbox once, queues and
dead-letter queues empty, no batch fell back to one-by-one, the counters
(reporting.update_counts) equal a recount of reporting.computer_updates, and the stored
(computer, update, state, reported_at) rows equal the raw upsert's table.

Then the summary: `reporting.summary.v1` (Summary(page=Page(limit=200))) through
libs.bus.RpcClient, sequentially; the same store queries timed directly over asyncpg; and
EXPLAIN (ANALYZE, BUFFERS) of each, of the recount it avoids, and of one ingest batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import io
import json
import os
import platform
import pstats
import random
import resource
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar, cast
from unittest.mock import patch

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage
from asyncpg.transaction import Transaction

from libs.bus import Bus, RpcClient, to_amqp
from libs.bus.bus import Binding, Callback
from libs.contracts import agents as ag
from libs.contracts import reporting as r
from libs.contracts.approval import ROOT_GROUP_ID
from libs.contracts.catalog import ReturnCode, outcome_of
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.db import inbox
from libs.db.outbox import Outbox
from libs.db.pool import Connection
from libs.observability import metrics
from libs.observability.logging import configure_logging
from libs.service.batching import BatchingPipeline
from libs.service.handlers import HandlerContext, Instance
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.reporting import compliance
from services.reporting import compliance_store as store
from services.reporting.handlers import SERVICE as REPORTING
from tests.support.infra import Infra, local_infra

T = TypeVar("T")

FLEET = 100_000
UPDATES = 200
REPORTS_PER_COMPUTER = 10
STREAM = FLEET * REPORTS_PER_COMPUTER
APPLICABLE = 8
DETECTED = 4
NOT_APPLICABLE_SHARE = 0.2
INSTALL_ROUNDS = 14  # an update installs in round randrange(14): rounds >= 10 never come
CODES = (0, 0, 0, 0, 0, 0, 3010, 3010, 3010, 1603)
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
REGISTERED = datetime(2026, 10, 1, tzinfo=UTC)
UPDATE_IDS = [
    str(uuid.uuid5(uuid.NAMESPACE_URL, f"lockgate-bench/update/{k}")) for k in range(UPDATES)
]
THIRD_PARTY_CODES = [
    ReturnCode(code=0, outcome="success"),
    ReturnCode(code=3010, outcome="success_restart_required"),
    ReturnCode(code=1641, outcome="success_restart_required"),
]
INSTALL_STATE = {
    "success": "installed",
    "success_restart_required": "installed_pending_restart",
    "failure": "failed",
}

REPORTS_QUEUE = "reporting.agent-reports"
RAW_QUEUE = "bench.raw-agent-reports"
HANDLER = "agent-reports/ingest_one"
PUBLISH_BATCH = 1000
DRAIN_TIMEOUT = 900.0
POLL_SECONDS = 0.01
SUMMARY_LIMIT = 200
SQL_REPEATS = 20
RECOUNT_REPEATS = 3
SAMPLE_SECONDS = 0.02

RAW_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS bench_raw;
CREATE TABLE IF NOT EXISTS bench_raw.computer_updates (
    computer_id      text        NOT NULL,
    update_id        uuid        NOT NULL,
    state            text        NOT NULL,
    reported_at      timestamptz,
    last_return_code integer,
    PRIMARY KEY (update_id, computer_id)
);
CREATE INDEX IF NOT EXISTS computer_updates_computer ON bench_raw.computer_updates (computer_id);
"""
RAW_UPSERT = (
    "INSERT INTO bench_raw.computer_updates (computer_id, update_id, state, reported_at)"
    " SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[])"
    " ON CONFLICT (update_id, computer_id) DO UPDATE SET state = EXCLUDED.state,"
    " reported_at = EXCLUDED.reported_at"
    " WHERE computer_updates.reported_at < EXCLUDED.reported_at"
)
RESET = (
    "TRUNCATE reporting.computer_updates, reporting.update_counts, reporting.install_attempts,"
    " reporting.compliance_dirty, reporting.inbox, reporting.outbox, bench_raw.computer_updates"
)
RECOUNT = (
    "SELECT update_id, state, count(*) AS n FROM reporting.computer_updates"
    " WHERE state <> 'none' GROUP BY 1, 2 ORDER BY 1, 2"
)
COUNTERS = "SELECT update_id, state, n FROM reporting.update_counts WHERE n <> 0 ORDER BY 1, 2"
DIFFERENCES = """
SELECT count(*) FROM (
    (SELECT computer_id, update_id, state, reported_at FROM reporting.computer_updates
     EXCEPT SELECT computer_id, update_id, state, reported_at FROM bench_raw.computer_updates)
    UNION ALL
    (SELECT computer_id, update_id, state, reported_at FROM bench_raw.computer_updates
     EXCEPT SELECT computer_id, update_id, state, reported_at FROM reporting.computer_updates)
) AS d
"""


# --- the fleet and its reports ----------------------------------------------------------------


def computer_id(computer: int) -> str:
    return f"pc-{computer:06d}"


@dataclass(frozen=True)
class Applicable:
    """One update applicable to (or detected as not applicable on) one computer."""

    update: int
    not_applicable: bool
    install_round: int
    code: int


def profile_of(computer: int) -> list[Applicable]:
    """The computer's updates: the same draw for every report of that computer."""
    rng = random.Random(computer)
    return [
        Applicable(
            update,
            rng.random() < NOT_APPLICABLE_SHARE,
            rng.randrange(INSTALL_ROUNDS),
            rng.choice(CODES),
        )
        for update in rng.sample(range(UPDATES), APPLICABLE)
    ]


def detected(applicable: Applicable, round_: int) -> ag.DetectionState:
    if applicable.not_applicable:
        return "not_applicable"
    if round_ > applicable.install_round and applicable.code != 1603:
        return "installed"
    return "needed"


def report(index: int) -> ag.AgentStatus:
    """Report `index` of the stream: round index // FLEET of computer index % FLEET."""
    round_, computer = divmod(index, FLEET)
    at = T0 + timedelta(hours=round_, seconds=computer % 3600)
    profile = profile_of(computer)
    installing = [a for a in profile if not a.not_applicable and a.install_round == round_]
    others = [a for a in profile if a not in installing]
    rng = random.Random(index)
    return ag.AgentStatus(
        computer_id=computer_id(computer),
        reported_at=at,
        detections=[
            ag.DetectionResult(update_id=UPDATE_IDS[a.update], state=detected(a, round_))
            for a in rng.sample(others, min(DETECTED, len(others)))
        ],
        installs=[
            ag.InstallResult(
                update_id=UPDATE_IDS[a.update],
                return_code=a.code,
                started_at=at - timedelta(minutes=3),
                finished_at=at - timedelta(minutes=1),
            )
            for a in installing
        ],
    )


def bodies_of(first: int, count: int) -> list[bytes]:
    return [report(i).model_dump_json().encode() for i in range(first, first + count)]


def return_codes(update: int) -> list[ReturnCode]:
    """One update in ten is third party with its own map; the rest use the default map."""
    return THIRD_PARTY_CODES if update % 10 == 0 else []


RawRow = tuple[str, str, str, datetime]


@dataclass(frozen=True)
class Derived:
    """What the raw upsert writes, derived from the message bodies before its clock starts."""

    batches: list[tuple[list[str], list[str], list[str], list[datetime]]]
    rows: int
    detections: int
    installs: int


def derive(bodies: list[bytes], batch: int) -> Derived:
    """Per batch of `batch` messages: the newest (state, time) per (computer, update).

    Written independently of services/reporting (an install outranks a detection of the
    same report time), so the comparison of the stored rows checks both.
    """
    codes = {UPDATE_IDS[k]: return_codes(k) for k in range(UPDATES)}
    batches = []
    rows = detections = installs = 0
    for first in range(0, len(bodies), batch):
        newest: dict[tuple[str, str], tuple[datetime, int, str]] = {}
        for body in bodies[first : first + batch]:
            status = ag.AgentStatus.model_validate_json(body)
            seen: list[tuple[str, int, str]] = [
                (d.update_id, 0, d.state) for d in status.detections
            ]
            for result in status.installs:
                outcome = outcome_of(result.return_code, codes[result.update_id])
                seen.append((result.update_id, 1, INSTALL_STATE[outcome]))
            detections += len(status.detections)
            installs += len(status.installs)
            for update_id, rank, state in seen:
                key = (status.computer_id, update_id)
                held = newest.get(key)
                if held is None or (status.reported_at, rank) >= held[:2]:
                    newest[key] = (status.reported_at, rank, state)
        batches.append(
            (
                [c for c, _ in newest],
                [u for _, u in newest],
                [s for _, _, s in newest.values()],
                [at for at, _, _ in newest.values()],
            )
        )
        rows += len(newest)
    return Derived(batches, rows, detections, installs)


async def load_fleet(url: str) -> dict[str, float]:
    """COPY the read copies reporting needs; returns seconds per table."""
    conn = await asyncpg.connect(url)
    taken: dict[str, float] = {}
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "computers",
            schema_name="reporting",
            columns=["computer_id", "hostname", "registered_at"],
            records=[
                (computer_id(i), f"host-{i:06d}.fleet.example", REGISTERED) for i in range(FLEET)
            ],
        )
        taken["computers"] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "updates",
            schema_name="reporting",
            columns=[
                "update_id",
                "revision",
                "kb",
                "title",
                "classification",
                "severity",
                "return_codes",
                "superseded",
            ],
            records=[
                (
                    uuid.UUID(UPDATE_IDS[k]),
                    1,
                    f"50{k:05d}",
                    f"Bench update {k}",
                    "Security Updates" if k % 3 else "Critical Updates",
                    ("Critical", "Important", "Moderate", None)[k % 4],
                    json.dumps([c.model_dump() for c in return_codes(k)]),
                    False,
                )
                for k in range(UPDATES)
            ],
        )
        taken["updates"] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "group_approvals",
            schema_name="reporting",
            columns=["group_id", "update_id", "action"],
            records=[
                (uuid.UUID(ROOT_GROUP_ID), uuid.UUID(u), "required_install") for u in UPDATE_IDS
            ],
        )
        taken["group_approvals"] = time.perf_counter() - started
        await conn.execute(
            "ANALYZE reporting.computers, reporting.updates, reporting.group_approvals"
        )
        await conn.execute(RAW_SCHEMA)
    finally:
        await conn.close()
    return taken


# --- measuring helpers ------------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPU_GROUPS = (
    "this process (consumer + service)",
    "PostgreSQL backends of the bench database",
    "PostgreSQL, other processes (WAL writer, checkpointer, other databases)",
    "RabbitMQ (beam.smp)",
)


def _classify(pid: int, database: str) -> str | None:
    if pid == os.getpid():
        return CPU_GROUPS[0]
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    if cmdline.startswith("postgres: ") and f" {database} " in cmdline:
        return CPU_GROUPS[1]
    if comm == "postgres" or cmdline.startswith("postgres"):
        return CPU_GROUPS[2]
    if comm == "beam.smp":
        return CPU_GROUPS[3]
    return None


def _process_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, all cores, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


@dataclass
class CpuSnapshot:
    processes: dict[int, tuple[str, float]]
    ticks: tuple[int, int]
    wall: float


def cpu_snapshot(database: str) -> CpuSnapshot:
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        group = _classify(int(entry.name), database)
        seconds = None if group is None else _process_seconds(int(entry.name))
        if group is not None and seconds is not None:
            found[int(entry.name)] = (group, seconds)
    return CpuSnapshot(found, machine_ticks(), time.perf_counter())


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds (core-seconds) per group of processes during a phase."""

    wall: float
    groups: dict[str, float]
    machine_busy: float
    """Core-seconds the whole machine was busy (all processes, kernel included)."""
    machine_total: float

    @property
    def others(self) -> float:
        return max(self.machine_busy - sum(self.groups.values()), 0.0)


def cpu_since(before: CpuSnapshot, database: str) -> CpuSplit:
    after = cpu_snapshot(database)
    groups = dict.fromkeys(CPU_GROUPS, 0.0)
    for pid, (group, seconds) in after.processes.items():
        start = before.processes.get(pid)
        groups[group] += seconds - (start[1] if start and start[0] == group else 0.0)
    busy = (after.ticks[0] - before.ticks[0]) / CLOCK_TICKS
    total = (after.ticks[1] - before.ticks[1]) / CLOCK_TICKS
    return CpuSplit(after.wall - before.wall, groups, busy, total)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


async def queue_depth(bus: Bus, queue: str) -> int:
    channel = await bus.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await channel.close()


async def wait_until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {DRAIN_TIMEOUT:g} s")
        await asyncio.sleep(POLL_SECONDS)


def metric_value(counter: Any, **labels: str) -> float:  # noqa: ANN401 - prometheus types
    """One labelled sample of a prometheus counter (its `_total`)."""
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return float(sample.value)
    return 0.0


# --- lockgate instrumentation -------------------------------------------------------------------


DECODE = "decode: from_amqp + check_sender + pydantic"
IN_BATCH: contextvars.ContextVar[bool] = contextvars.ContextVar("in_batch", default=False)


@dataclass
class Instruments:
    """Wall time of the steps of each batch transaction (timing wrappers, per batch)."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)
    batches: list[tuple[float, float, int]] = field(default_factory=list)
    failed: int = 0
    committed: int = 0

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1


def _timed(
    name: str, original: Callable[..., Awaitable[T]], sink: Instruments
) -> Callable[..., Awaitable[T]]:
    async def wrapper(*args: object, **kwargs: object) -> T:
        if not IN_BATCH.get():
            return await original(*args, **kwargs)
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            sink.add(name, time.perf_counter() - started)

    return wrapper


def _pipeline_patches(sink: Instruments) -> list[Any]:
    """Around BatchingPipeline: each batch's transaction and commit, each message's decode."""
    commit_together = BatchingPipeline._commit_together
    admit = BatchingPipeline._admit

    async def batch(self: BatchingPipeline, items: list[Any]) -> None:
        token = IN_BATCH.set(True)
        started = time.perf_counter()
        try:
            await commit_together(self, items)
        except Exception:
            sink.failed += 1
            raise
        finally:
            IN_BATCH.reset(token)
        sink.batches.append((started, time.perf_counter(), len(items)))
        sink.committed += len(items)

    def admit_timed(self: BatchingPipeline, message: AbstractIncomingMessage) -> object:
        started = time.perf_counter()
        try:
            return admit(self, message)
        finally:
            sink.add(DECODE, time.perf_counter() - started)

    return [
        patch.object(BatchingPipeline, "_commit_together", batch),
        patch.object(BatchingPipeline, "_admit", admit_timed),
    ]


def _io_patches(sink: Instruments) -> list[Any]:
    """Around BEGIN, COMMIT and acks, counted only inside a batch transaction."""
    enter, leave = Transaction.__aenter__, Transaction.__aexit__
    ack = aio_pika.IncomingMessage.ack

    async def begin(self: Transaction) -> None:
        started = time.perf_counter()
        try:
            await enter(self)
        finally:
            if IN_BATCH.get():
                sink.add("BEGIN", time.perf_counter() - started)

    async def end(self: Transaction, *exc: Any) -> None:  # noqa: ANN401 - passed through
        started = time.perf_counter()
        try:
            await leave(self, *exc)
        finally:
            if IN_BATCH.get():
                sink.add("COMMIT", time.perf_counter() - started)

    async def ack_timed(self: aio_pika.IncomingMessage, multiple: bool = False) -> None:
        started = time.perf_counter()
        try:
            await ack(self, multiple)
        finally:
            if IN_BATCH.get():
                sink.add("acks", time.perf_counter() - started)

    patches: list[Any] = [
        patch.object(Transaction, "__aenter__", begin),
        patch.object(Transaction, "__aexit__", end),
        patch.object(aio_pika.IncomingMessage, "ack", ack_timed),
        patch.object(inbox, "claim_many", _timed("inbox.claim_many", inbox.claim_many, sink)),
    ]
    patches.extend(
        patch.object(store, name, _timed(f"store.{name}", getattr(store, name), sink))
        for name in ("known", "lock_rows", "save_states", "apply_deltas", "save_attempts")
    )
    return patches


@contextmanager
def instrumented() -> Iterator[Instruments]:
    """Timing wrappers around the batch path; only work inside a batch transaction counts."""
    sink = Instruments()
    with ExitStack() as stack:
        for each in (*_pipeline_patches(sink), *_io_patches(sink)):
            stack.enter_context(each)
        yield sink


@contextmanager
def consume_started(queue: str, database: str) -> Iterator[list[tuple[float, CpuSnapshot]]]:
    """When ServiceProcess registers its consumer on `queue` (after migrating and connecting),
    with the CPU counters at that moment."""
    original = Bus.consume
    marks: list[tuple[float, CpuSnapshot]] = []

    async def consume(self: Bus, name: str, callback: Callback, *, prefetch: int) -> str:
        if name == queue:
            snapshot = cpu_snapshot(database)
            marks.append((time.perf_counter(), snapshot))
        return await original(self, name, callback, prefetch=prefetch)

    with patch.object(Bus, "consume", consume):
        yield marks


@dataclass
class Waits:
    """pg_stat_activity of reporting's pool connections, sampled every SAMPLE_SECONDS."""

    samples: int = 0
    seen: Counter[str] = field(default_factory=Counter)


@asynccontextmanager
async def wait_sampler(url: str, database: str) -> AsyncIterator[Waits]:
    conn = await asyncpg.connect(url)
    waits = Waits()
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            for row in await conn.fetch(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = 'lockgate-reporting'",
                database,
            ):
                if row["state"] != "idle":
                    waits.seen[
                        f"{row['state']}: {row['wait_event_type'] or 'on CPU (no wait event)'}"
                        + (f" {row['wait_event']}" if row["wait_event"] else "")
                    ] += 1
            waits.samples += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)

    task = asyncio.create_task(sample())
    try:
        yield waits
    finally:
        stop.set()
        await task
        await conn.close()


# --- phases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    messages: int
    rows: int
    seconds: float
    cpu: CpuSplit

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def row_rate(self) -> float:
        return self.rows / self.seconds


async def publish(bus: Bus, bodies: list[bytes]) -> float:
    """Publish every body with confirms; the exchange copies each into both queues."""
    started = time.perf_counter()
    for first in range(0, len(bodies), PUBLISH_BATCH):
        items = []
        for index in range(first, min(first + PUBLISH_BATCH, len(bodies))):
            cid = computer_id(index % FLEET)
            envelope = Envelope.new(source=f"agent/{cid}", type=ag.AGENT_STATUS.type, subject=cid)
            items.append(
                (
                    to_amqp(envelope, bodies[index]),
                    Exchange.AGENTS.value,
                    ag.AGENT_STATUS.routing_key(cid),
                )
            )
        confirmed = await bus.publish_many(items)
        if not all(confirmed):
            raise RuntimeError(f"{confirmed.count(False)} publishes not confirmed")
    return time.perf_counter() - started


async def raw_consume(infra: Infra, database: str, messages: int, prefetch: int) -> Phase:
    """aio-pika: json.loads each body, ack each message."""
    done = asyncio.Event()
    acked = 0
    rows = 0
    connection = await aio_pika.connect(infra.amqp_url)
    try:

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal acked, rows
            data = json.loads(message.body)
            rows += len(data["detections"]) + len(data["installs"])
            await message.ack()
            acked += 1
            if acked == messages:
                done.set()

        before = cpu_snapshot(database)
        started = time.perf_counter()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(RAW_QUEUE)
        tag = await queue.consume(on_message, no_ack=False)
        await asyncio.wait_for(done.wait(), DRAIN_TIMEOUT)
        seconds = time.perf_counter() - started
        cpu = cpu_since(before, database)
        await queue.cancel(tag)
    finally:
        await connection.close()
    return Phase("raw aio-pika consume", messages, rows, seconds, cpu)


async def raw_upsert(url: str, database: str, derived: Derived, messages: int) -> Phase:
    """asyncpg: one unnest upsert and one transaction per batch, sequentially."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT 1")
        before = cpu_snapshot(database)
        started = time.perf_counter()
        for columns in derived.batches:
            async with conn.transaction():
                await conn.execute(RAW_UPSERT, *columns)
        seconds = time.perf_counter() - started
        cpu = cpu_since(before, database)
        stored = await conn.fetchval("SELECT count(*) FROM bench_raw.computer_updates")
    finally:
        await conn.close()
    return Phase(f"raw asyncpg upsert ({stored} rows stored)", messages, derived.rows, seconds, cpu)


@dataclass(frozen=True)
class LockgateRun:
    phase: Phase
    instruments: Instruments
    waits: Waits
    ignored: dict[str, float]
    profile: str | None


PACKAGES = (
    ("asyncpg", "asyncpg"),
    ("aio_pika", "aio-pika / aiormq / pamqp"),
    ("aiormq", "aio-pika / aiormq / pamqp"),
    ("pamqp", "aio-pika / aiormq / pamqp"),
    ("asyncio", "asyncio event loop"),
    ("pydantic", "pydantic"),
    ("services/reporting", "services/reporting"),
    ("libs/", "libs (bus, service, db, contracts)"),
    ("bench/", "bench instrumentation"),
    ("prometheus_client", "prometheus_client"),
    ("structlog", "structlog"),
    ("json", "json"),
)


def package_of(filename: str, function: str) -> str:
    if filename == "~":
        if "socket" in function:
            return "socket send/recv (syscalls)"
        if "validate_" in function or "pydantic" in function:
            return "pydantic"
        if "_contextvars" in function or "_asyncio" in function:
            return "asyncio event loop"
        return "other built-ins"
    for marker, name in PACKAGES:
        if marker in filename:
            return name
    return "other Python"


def print_grouped(stats: pstats.Stats, out: io.StringIO) -> None:
    """Own time (tottime) per package: where this process's CPU goes."""
    grouped: defaultdict[str, float] = defaultdict(float)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, own, _cum, _callers) in raw.items():
        grouped[package_of(filename, function)] += own
    total = sum(grouped.values())
    out.write(f"own time per package (profiled, inflated by the profiler), total {total:.2f} s\n")
    for name, own in sorted(grouped.items(), key=lambda item: -item[1]):
        out.write(f"  {name:<40} {own:8.2f} s  {own / total:6.1%}\n")
    out.write("\n")


async def lockgate_drain(
    settings: Settings, database: str, messages: int, rows: int, *, profile: bool
) -> LockgateRun:
    """reporting in this process from consumer registration until every batch committed."""
    reasons = ("unknown_computer", "unknown_update", "declined_update", "older_than_stored")
    ignored_before = {r: metric_value(metrics.REPORTS_IGNORED, reason=r) for r in reasons}
    profiler = cProfile.Profile() if profile else None
    process = ServiceProcess(REPORTING, settings, http_port=0)
    try:
        async with AsyncExitStack() as stack:
            sink = stack.enter_context(instrumented())
            marks = stack.enter_context(consume_started(REPORTS_QUEUE, database))
            waits = await stack.enter_async_context(wait_sampler(settings.database_url, database))
            if profiler is not None:
                profiler.enable()
            await process.start()

            async def drained() -> bool:
                return sink.committed >= messages or sink.failed > 0

            await wait_until(drained, "every report to be committed")
            seconds = time.perf_counter() - marks[0][0]
            if profiler is not None:
                profiler.disable()
            cpu = cpu_since(marks[0][1], database)
        if sink.failed:
            raise RuntimeError(f"{sink.failed} batches failed and fell back to one by one")
    finally:
        await process.stop()
    ignored = {
        r: metric_value(metrics.REPORTS_IGNORED, reason=r) - n for r, n in ignored_before.items()
    }
    text = None
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        print_grouped(stats, out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(45)
        text = out.getvalue()
    phase = Phase("lockgate reporting", messages, rows, seconds, cpu)
    return LockgateRun(phase, sink, waits, ignored, text)


async def check_round(bus: Bus, url: str, messages: int, derived: Derived) -> list[str]:
    """Everything that must hold after a prefetch round; returns what was found."""
    await asyncio.sleep(0.5)  # the broker processes the last acks
    depths = {
        q: await queue_depth(bus, q)
        for q in (
            REPORTS_QUEUE,
            RAW_QUEUE,
            dead_letter_queue_name(REPORTS_QUEUE),
            dead_letter_queue_name(RAW_QUEUE),
        )
    }
    conn = await asyncpg.connect(url)
    try:
        claimed = await conn.fetchval(
            "SELECT count(*) FROM reporting.inbox WHERE handler = $1", HANDLER
        )
        placeholders = await conn.fetchval(
            "SELECT count(*) FROM reporting.computer_updates WHERE state = 'none'"
        )
        stored = await conn.fetchval("SELECT count(*) FROM reporting.computer_updates")
        attempts = await conn.fetchval("SELECT count(*) FROM reporting.install_attempts")
        counters = [tuple(row) for row in await conn.fetch(COUNTERS)]
        recount = [tuple(row) for row in await conn.fetch(RECOUNT)]
        differences = await conn.fetchval(DIFFERENCES)
    finally:
        await conn.close()
    problems = []
    if any(depths.values()):
        problems.append(f"queues not empty: {depths}")
    if claimed != messages:
        problems.append(f"inbox claims {claimed} != {messages} messages")
    if placeholders:
        problems.append(f"{placeholders} placeholder rows left")
    if attempts != derived.installs:
        problems.append(f"install_attempts {attempts} != {derived.installs} install results")
    if counters != recount:
        problems.append("update_counts differ from a recount of computer_updates")
    if differences:
        problems.append(f"{differences} rows differ between lockgate and the raw upsert")
    summary = (
        f"checks: inbox {claimed} claims, queues and DLQs empty: {not any(depths.values())}, "
        f"computer_updates {stored} rows ({placeholders} placeholders), "
        f"install_attempts {attempts}, update_counts == recount: {counters == recount} "
        f"({len(counters)} (update, state) counters), rows differing from the raw upsert: "
        f"{differences}"
    )
    if problems:
        raise RuntimeError(summary + "\nPROBLEMS: " + "; ".join(problems))
    return [summary]


# --- SQL, summary and plans ---------------------------------------------------------------------


class Recorder:
    """Forwards to a connection and keeps every statement with its arguments.

    With `explain`, each statement first runs under EXPLAIN (ANALYZE, BUFFERS) inside a
    savepoint that is rolled back, then runs for real (so later statements see its effects).
    """

    def __init__(self, conn: asyncpg.Connection, *, explain: bool = False) -> None:
        self.conn = conn
        self.explain = explain
        self.statements: list[tuple[str, tuple[object, ...]]] = []
        self.plans: list[tuple[str, str]] = []

    async def _record(self, sql: str, args: tuple[object, ...]) -> None:
        self.statements.append((sql, args))
        if self.explain:
            savepoint = self.conn.transaction()
            await savepoint.start()
            try:
                rows = await self.conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
            finally:
                await savepoint.rollback()
            self.plans.append((sql, "\n".join(row[0] for row in rows)))

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        await self._record(sql, args)
        return await self.conn.fetch(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> object:
        await self._record(sql, args)
        return await self.conn.fetchval(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        await self._record(sql, args)
        return await self.conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: object) -> str:
        await self._record(sql, args)
        return await self.conn.execute(sql, *args)


def execution_ms(plan: str) -> float:
    for line in plan.splitlines():
        if line.startswith("Execution Time:"):
            return float(line.split()[2])
    return float("nan")


def short(sql: str, width: int = 90) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


@contextmanager
def store_timer() -> Iterator[list[float]]:
    """Wall time of each store query the summary handler awaits (cleared per call)."""
    spent: list[float] = []

    def wrap(original: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def timed(*args: object, **kwargs: object) -> T:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - started)

        return timed

    names = ("reported_updates", "compliance", "new_updates_to_approve", "computer_count")
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(patch.object(store, name, wrap(getattr(store, name))))
        yield spent


async def summary_sql(conn: Connection) -> r.SummaryReport:
    """What compliance.summary runs, on a plain connection."""
    page = r.Page(limit=SUMMARY_LIMIT)
    ids, total = await store.reported_updates(conn, page)
    found = {c.update_id: c for c in await store.compliance(conn, ids)}
    return r.SummaryReport(
        new_updates_to_approve=await store.new_updates_to_approve(conn),
        computers=await store.computer_count(conn),
        updates=[found[i] for i in ids if i in found],
        total=total,
    )


@dataclass(frozen=True)
class SummaryFigures:
    rpc: list[float]
    in_service: list[float]
    """Per RPC call: wall time of the store queries compliance.summary awaited."""
    direct: list[float]
    direct_no_jit: list[float]
    per_function: dict[str, list[float]]
    recount: list[float]
    plans: list[tuple[str, list[tuple[str, str]]]]
    checks: str


async def direct_timings(
    conn: asyncpg.Connection, repeats: int = SQL_REPEATS, recounts: int = RECOUNT_REPEATS
) -> tuple[list[float], dict[str, list[float]], list[float]]:
    """The summary's store queries on one connection: whole, per function; and the recount."""
    direct: list[float] = []
    per_function: dict[str, list[float]] = defaultdict(list)
    typed = cast(Connection, conn)
    page = r.Page(limit=SUMMARY_LIMIT)
    for _ in range(repeats):
        started = time.perf_counter()
        await summary_sql(typed)
        direct.append(time.perf_counter() - started)
    for _ in range(repeats):
        started = time.perf_counter()
        ids, _total = await store.reported_updates(typed, page)
        per_function["store.reported_updates"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await store.compliance(typed, ids)
        per_function["store.compliance (3 queries)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await store.new_updates_to_approve(typed)
        per_function["store.new_updates_to_approve"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await store.computer_count(typed)
        per_function["store.computer_count"].append(time.perf_counter() - started)
    recount: list[float] = []
    for _ in range(recounts):
        started = time.perf_counter()
        await conn.fetch(RECOUNT)
        recount.append(time.perf_counter() - started)
    return direct, per_function, recount


async def summary_phase(bus: Bus, settings: Settings, url: str, calls: int) -> SummaryFigures:
    process = ServiceProcess(REPORTING, settings, http_port=0)
    conn = await asyncpg.connect(url, server_settings={"search_path": "reporting"})
    try:
        await process.start()

        async def quiet() -> bool:
            pending: int = await conn.fetchval(
                "SELECT (SELECT count(*) FROM compliance_dirty)"
                " + (SELECT count(*) FROM outbox WHERE published_at IS NULL)"
            )
            return pending == 0

        await wait_until(quiet, "compliance_dirty and the outbox to drain")
        client = RpcClient(bus, source="bench", timeout=60.0)
        await client.start()
        rpc: list[float] = []
        in_service: list[float] = []
        reply: r.SummaryReport | None = None
        with store_timer() as spent:
            for _ in range(calls):
                spent.clear()
                started = time.perf_counter()
                reply = await client.call(r.SUMMARY, r.Summary(page=r.Page(limit=SUMMARY_LIMIT)))
                rpc.append(time.perf_counter() - started)
                in_service.append(sum(spent))
        assert reply is not None
        checks = await check_summary(conn, reply)

        direct, per_function, recount = await direct_timings(conn)
        await conn.execute("SET jit = off")
        no_jit, _, _ = await direct_timings(conn, repeats=SQL_REPEATS, recounts=0)
        await conn.execute("RESET jit")
        plans = []
        for jit in ("on (server default)", "off"):
            recorder = Recorder(conn, explain=True)
            async with conn.transaction():
                if jit == "off":
                    await conn.execute("SET LOCAL jit = off")
                await summary_sql(cast(Connection, recorder))
                rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + RECOUNT)
            plans.append((jit, [*recorder.plans, (RECOUNT, "\n".join(row[0] for row in rows))]))
    finally:
        await conn.close()
        await process.stop()
    return SummaryFigures(rpc, in_service, direct, no_jit, per_function, recount, plans, checks)


async def check_summary(conn: asyncpg.Connection, reply: r.SummaryReport) -> str:
    """The reply's counts per update equal a recount from computer_updates."""
    raw: dict[str, dict[str, int]] = defaultdict(dict)
    for row in await conn.fetch(
        "SELECT update_id::text, state, count(*) AS n FROM computer_updates"
        " WHERE state <> 'none' GROUP BY 1, 2"
    ):
        raw[row["update_id"]][row["state"]] = row["n"]
    wrong = []
    for item in reply.updates:
        expected = store.counts_of(raw.get(item.update_id, {}), FLEET)
        if item.counts != expected:
            wrong.append(item.update_id)
    text = (
        f"summary reply: {len(reply.updates)} updates, total {reply.total}, computers "
        f"{reply.computers}, new_updates_to_approve {reply.new_updates_to_approve}; "
        f"per-update counts equal to a recount of computer_updates: {not wrong}"
    )
    if wrong or len(reply.updates) != UPDATES or reply.computers != FLEET:
        raise RuntimeError(text + f" (wrong: {wrong[:5]})")
    return text


async def explain_ingest(url: str, first: int, batch: int) -> list[tuple[str, str]]:
    """EXPLAIN ANALYZE of what one batch of the next reports runs; rolled back after."""
    bodies = bodies_of(first, batch)
    reports = [
        (
            Envelope.new(source="agent/bench", type=ag.AGENT_STATUS.type),
            ag.AgentStatus.model_validate_json(body),
        )
        for body in bodies
    ]
    conn = await asyncpg.connect(url, server_settings={"search_path": "reporting"})
    recorder = Recorder(conn, explain=True)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            typed = cast(Connection, recorder)
            await inbox.claim_many(typed, [e.id for e, _ in reports], HANDLER)
            ctx = HandlerContext(
                conn=typed,
                envelope=reports[0][0],
                outbox=Outbox(typed, schema="reporting", source="lockgate/reporting"),
                now=datetime.now(UTC),
                instance=Instance("reporting", "bench", "0", datetime.now(UTC)),
                settings=Settings(),
            )
            await compliance.ingest(ctx, reports)
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
    return recorder.plans


# --- report -------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("| " + " | ".join(cells) + " |")


def print_cpu(phases: list[Phase]) -> None:
    header = ["phase", "wall s", *[g.split(" (")[0] for g in CPU_GROUPS], "rest", "machine busy"]
    rows = []
    for phase in phases:
        cpu = phase.cpu
        rows.append(
            [
                phase.name.split(" (")[0],
                f"{cpu.wall:.1f}",
                *[f"{cpu.groups[g]:.1f}" for g in CPU_GROUPS],
                f"{cpu.others:.1f}",
                f"{cpu.machine_busy / max(cpu.machine_total, 1e-9):.0%}",
            ]
        )
    print("CPU core-seconds per phase (2 cores: at most 2 x wall); 'rest' = machine busy minus")
    print("the listed groups: other tenants' processes, kernel")
    table(header, rows)


def busy_union(intervals: list[tuple[float, float, int]]) -> float:
    """Seconds during which at least one batch transaction was in flight."""
    total, reach = 0.0, float("-inf")
    for start, end, _ in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def print_instruments(run: LockgateRun) -> None:
    sink = run.instruments
    sizes = [n for _, _, n in sink.batches]
    summed = sum(end - start for start, end, _ in sink.batches)
    wall = run.phase.seconds
    union = busy_union(sink.batches)
    print(
        f"batches: {len(sizes)}, messages per batch min {min(sizes)} / median "
        f"{statistics.median(sizes):g} / mean {statistics.fmean(sizes):.0f} / max {max(sizes)}; "
        f"failed (fallback to one by one): {sink.failed}"
    )
    print(
        f"batch transactions (_commit_together: claim, handler, COMMIT, acks) in flight: "
        f"at least one during {union:.2f} s of {wall:.2f} s ({union / wall:.0%}); "
        f"on average {summed / wall:.2f} at once; summed {summed:.2f} s"
    )
    steps = {
        "BEGIN": "BEGIN (pool connection's BEGIN round trip)",
        "inbox.claim_many": "inbox.claim_many",
        "store.known": "store.known",
        "store.lock_rows": "store.lock_rows",
        "store.save_states": "store.save_states",
        "store.apply_deltas": "  of which store.apply_deltas",
        "store.save_attempts": "store.save_attempts",
        "COMMIT": "COMMIT",
        "acks": "acks, one awaited basic.ack per message",
    }
    rows = []
    accounted = 0.0
    for name, label in steps.items():
        seconds = sink.seconds.get(name, 0.0)
        if name != "store.apply_deltas":
            accounted += seconds
        rows.append(
            [
                label,
                f"{seconds:.2f}",
                f"{seconds / len(sizes) * 1000:.2f}",
                f"{seconds / summed:.0%}",
            ]
        )
    rest = summed - accounted
    rows.append(
        [
            "rest: pool acquire, ingest's Python, metrics",
            f"{rest:.2f}",
            f"{rest / len(sizes) * 1000:.2f}",
            f"{rest / summed:.0%}",
        ]
    )
    print(
        "steps of the batch transactions, wall time summed over batches (batches overlap, and "
        "a step's\nwall time includes waiting for the event loop and for locks held by another "
        "batch):"
    )
    table(["step", "s", "ms/batch", "of summed"], rows)
    decode = sink.seconds.get(DECODE, 0.0)
    print(
        f"decode before batching ({DECODE}): {decode:.2f} s, "
        f"{decode / run.phase.messages * 1e6:.0f} us per message"
    )
    waits = run.waits
    print(
        f"reporting's pool sessions, pg_stat_activity sampled {waits.samples} times "
        f"(every {SAMPLE_SECONDS * 1000:.0f} ms): average sessions per state (idle left out)"
    )
    table(
        ["state: wait", "avg sessions"],
        [[key, f"{n / waits.samples:.2f}"] for key, n in waits.seen.most_common(10)],
    )
    print(f"reports ignored (metric): {run.ignored}")


def print_plans(title: str, plans: list[tuple[str, str]], *, full: bool) -> None:
    print(f"\n{title}")
    for sql, plan in plans:
        print(f"-- {execution_ms(plan):8.2f} ms  {short(sql)}")
        if full:
            for line in plan.splitlines():
                print(f"     {line if len(line) <= 160 else line[:157] + '...'}")


async def environment(infra: Infra) -> dict[str, str]:
    conn = await asyncpg.connect(infra.database_url)
    try:
        postgres = str(await conn.fetchval("SHOW server_version"))
        knobs = {
            k: str(await conn.fetchval(f"SHOW {k}"))
            for k in ("shared_buffers", "synchronous_commit", "fsync", "work_mem")
        }
    finally:
        await conn.close()
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        transport = connection.transport
        rabbit = "?" if transport is None else transport.connection.server_properties["version"]
    finally:
        await connection.close()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.node()}",
        "python": platform.python_version(),
        "load avg": " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min, at start)",
        "versions": (
            f"aio-pika {version('aio-pika')}, asyncpg {version('asyncpg')}, "
            f"pydantic {version('pydantic')}, RabbitMQ "
            f"{rabbit.decode() if isinstance(rabbit, bytes) else rabbit}, PostgreSQL {postgres}"
        ),
        "postgres": ", ".join(f"{k}={v}" for k, v in knobs.items()),
    }


# --- run ----------------------------------------------------------------------------------------


@dataclass
class Round:
    prefetch: int
    publish_seconds: float
    raw: Phase
    upsert: Phase
    lockgate: LockgateRun
    checks: list[str]


async def one_round(
    infra: Infra, bus: Bus, database: str, bodies: list[bytes], prefetch: int, *, profile: bool
) -> Round:
    messages = len(bodies)
    print(f"[prefetch {prefetch}] deriving the raw upsert's rows ...", flush=True)
    derived = derive(bodies, prefetch)
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(RESET)
    finally:
        await conn.close()
    print(f"[prefetch {prefetch}] publishing {messages} reports with confirms ...", flush=True)
    publish_seconds = await publish(bus, bodies)
    depths = [await queue_depth(bus, q) for q in (REPORTS_QUEUE, RAW_QUEUE)]
    if depths != [messages, messages]:
        raise RuntimeError(f"queues hold {depths} after publishing {messages}")
    print(
        f"[prefetch {prefetch}] published in {publish_seconds:.1f} s; raw consume ...", flush=True
    )
    raw = await raw_consume(infra, database, messages, prefetch)
    print(f"[prefetch {prefetch}] raw upsert ...", flush=True)
    upsert = await raw_upsert(infra.database_url, database, derived, messages)
    print(f"[prefetch {prefetch}] lockgate ...", flush=True)
    settings = Settings(amqp_url=infra.amqp_url, database_url=infra.database_url, prefetch=prefetch)
    lockgate = await lockgate_drain(settings, database, messages, derived.rows, profile=profile)
    checks = await check_round(bus, infra.database_url, messages, derived)
    checks.append(
        f"messages {messages}: {derived.detections} detections + {derived.installs} install "
        f"results = {derived.detections + derived.installs} observations; "
        f"{derived.rows} (computer, update) rows after keeping the newest per key and batch"
    )
    return Round(prefetch, publish_seconds, raw, upsert, lockgate, checks)


def print_round(result: Round) -> None:
    lockgate, raw, upsert = result.lockgate.phase, result.raw, result.upsert
    print(f"\n=== prefetch {result.prefetch} (batch up to {result.prefetch} messages) ===")
    for line in result.checks:
        print(line)
    print(f"publish with confirms (not timed against anything): {result.publish_seconds:.1f} s")
    rows = [
        [p.name, f"{p.messages}", f"{p.seconds:.2f}", f"{p.rate:.0f}", f"{p.row_rate:.0f}"]
        for p in (raw, upsert, lockgate)
    ]
    table(["phase", "messages", "seconds", "msg/s", "rows/s"], rows)
    ingest_ratio = lockgate.rate / raw.rate
    row_ratio = lockgate.row_rate / upsert.row_rate
    print(
        f"ingest ratio lockgate/raw consume: {ingest_ratio:.3f} (goal >= 0.8: "
        f"{'met' if ingest_ratio >= 0.8 else 'NOT met'})"
    )
    print(
        f"rows ratio lockgate/raw upsert: {row_ratio:.3f} (goal >= 0.7: "
        f"{'met' if row_ratio >= 0.7 else 'NOT met'})"
    )
    print_cpu([raw, upsert, lockgate])
    print_instruments(result.lockgate)
    if result.lockgate.profile:
        print("\ncProfile of the lockgate phase (this process only; inflates its timing):")
        print(result.lockgate.profile)


def print_summary(figures: SummaryFigures, calls: int) -> None:
    print(f"\n=== fleet-wide summary ({FLEET} computers x {UPDATES} updates) ===")
    print(figures.checks)
    rows = [
        [
            f"RPC reporting.summary.v1 (RpcClient), {calls} sequential calls",
            f"{percentile(figures.rpc, 50) * 1000:.1f}",
            f"{percentile(figures.rpc, 95) * 1000:.1f}",
            f"{max(figures.rpc) * 1000:.1f}",
            f"{figures.rpc[0] * 1000:.1f}",
        ],
        [
            "  of which the store queries awaited by compliance.summary in the service",
            f"{percentile(figures.in_service, 50) * 1000:.1f}",
            f"{percentile(figures.in_service, 95) * 1000:.1f}",
            f"{max(figures.in_service) * 1000:.1f}",
            f"{figures.in_service[0] * 1000:.1f}",
        ],
        [
            f"same store queries on one asyncpg connection, {SQL_REPEATS} runs",
            f"{percentile(figures.direct, 50) * 1000:.1f}",
            f"{percentile(figures.direct, 95) * 1000:.1f}",
            f"{max(figures.direct) * 1000:.1f}",
            f"{figures.direct[0] * 1000:.1f}",
        ],
    ]
    rows.append(
        [
            f"same, with SET jit = off on that connection, {SQL_REPEATS} runs",
            f"{percentile(figures.direct_no_jit, 50) * 1000:.1f}",
            f"{percentile(figures.direct_no_jit, 95) * 1000:.1f}",
            f"{max(figures.direct_no_jit) * 1000:.1f}",
            f"{figures.direct_no_jit[0] * 1000:.1f}",
        ]
    )
    for name, samples in figures.per_function.items():
        rows.append(
            [
                f"  {name}",
                f"{percentile(samples, 50) * 1000:.1f}",
                f"{percentile(samples, 95) * 1000:.1f}",
                f"{max(samples) * 1000:.1f}",
                f"{samples[0] * 1000:.1f}",
            ]
        )
    rows.append(
        [
            f"recount from computer_updates (what the counters avoid), {RECOUNT_REPEATS} runs",
            f"{percentile(figures.recount, 50) * 1000:.1f}",
            f"{percentile(figures.recount, 95) * 1000:.1f}",
            f"{max(figures.recount) * 1000:.1f}",
            f"{figures.recount[0] * 1000:.1f}",
        ]
    )
    table(["what", "p50 ms", "p95 ms", "max ms", "first ms"], rows)
    p95 = percentile(figures.rpc, 95)
    print(f"summary goal p95 < 200 ms: {'met' if p95 < 0.2 else 'NOT met'} ({p95 * 1000:.1f} ms)")
    for jit, plans in figures.plans:
        print_plans(
            f"EXPLAIN (ANALYZE, BUFFERS) of the summary's statements, jit {jit}:",
            plans,
            full=jit != "off",
        )


async def run(
    infra: Infra, messages: int, prefetches: list[int], calls: int, profile: bool
) -> None:
    env = await environment(infra)
    for name, value in env.items():
        print(f"{name:>10}: {value}")
    database = infra.database_url.rsplit("/", 1)[-1]
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    try:
        await bus.declare_exchanges()
        settings = Settings(amqp_url=infra.amqp_url, database_url=infra.database_url)
        setup = ServiceProcess(REPORTING, settings, http_port=0)
        await setup.start()  # migrations and reporting's queues
        await setup.stop()
        loaded = await load_fleet(infra.database_url)
        print(
            "COPY: "
            + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in loaded.items())
        )
        await bus.declare_queue(RAW_QUEUE, [Binding(Exchange.AGENTS, ag.AGENT_STATUS.binding_key)])
        started = time.perf_counter()
        bodies = bodies_of(0, messages)
        sizes = [len(b) for b in bodies]
        print(
            f"generated {messages} report bodies in {time.perf_counter() - started:.1f} s "
            f"(body bytes: mean {statistics.fmean(sizes):.0f}, max {max(sizes)})",
            flush=True,
        )
        results = []
        for prefetch in prefetches:
            result = await one_round(infra, bus, database, bodies, prefetch, profile=profile)
            print_round(result)
            results.append(result)
        print("\n=== all prefetch values ===")
        table(
            [
                "prefetch",
                "raw consume msg/s",
                "raw upsert rows/s",
                "lockgate msg/s",
                "lockgate rows/s",
                "ingest ratio",
                "rows ratio",
            ],
            [
                [
                    str(x.prefetch),
                    f"{x.raw.rate:.0f}",
                    f"{x.upsert.row_rate:.0f}",
                    f"{x.lockgate.phase.rate:.0f}",
                    f"{x.lockgate.phase.row_rate:.0f}",
                    f"{x.lockgate.phase.rate / x.raw.rate:.3f}",
                    f"{x.lockgate.phase.row_rate / x.upsert.row_rate:.3f}",
                ]
                for x in results
            ],
        )
        print("\ngoals: ingest >= 0.8x raw consume, rows >= 0.7x raw upsert, summary p95 < 200 ms")
        last = prefetches[-1]
        plans = await explain_ingest(infra.database_url, messages, last)
        print_plans(
            f"EXPLAIN (ANALYZE, BUFFERS) of one ingest batch ({last} next reports, reports "
            f"{messages}..{messages + last - 1} of the stream, rolled back):",
            plans,
            full=True,
        )
        figures = await summary_phase(bus, settings, infra.database_url, calls)
        print_summary(figures, calls)
    finally:
        await bus.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument(
        "--messages", type=int, default=200_000, help="first N reports of the 1M stream"
    )
    parser.add_argument("--prefetch", type=int, nargs="+", default=[256, 500])
    parser.add_argument("--summary-calls", type=int, default=20)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the lockgate phases (slows them)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.messages <= STREAM or args.summary_calls < 1:
        parser.error(f"--messages must be 1..{STREAM}, --summary-calls positive")
    configure_logging("bench", "warning")
    started = time.perf_counter()
    cpu_before = cpu_seconds()
    with local_infra(Settings()) as infra:
        print(f"vhost {infra.vhost}, database {infra.database_url.rsplit('/', 1)[-1]}")
        asyncio.run(run(infra, args.messages, args.prefetch, args.summary_calls, args.profile))
    print(
        f"\ntotal run time {time.perf_counter() - started:.1f} s "
        f"(this process CPU {cpu_seconds() - cpu_before:.1f} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
