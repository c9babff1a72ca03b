"""The timed phases of a batch size: raw consume, raw ingest, lockgate; and checks."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.bench_reporting_ingest.fleet import (
    FLEET,
    INSTALL_STATE,
    UPDATE_IDS,
    UPDATES,
    Derived,
    computer_id,
    return_codes,
)
from bench.common.baselines import BatchWork, raw_batch_drain, raw_drain
from bench.common.infra import BenchFailure, wait_until
from bench.common.meters import CpuMeter, CpuUsage, counter_value
from bench.common.queues import QueueProbe, publish_confirmed
from bench.common.tracing import Trace
from libs.bus import Bus, to_amqp
from libs.contracts import agents as ag
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, dead_letter_queue_name, queue_name
from libs.domain.agent_reports import outcome_of
from libs.observability import metrics
from libs.service.batching import STEP_BATCH_TRANSACTION, batch_prefetch
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.reporting.handlers import SERVICE as REPORTING

INGEST = next(route for route in REPORTING.events if route.handle_many is not None)
HANDLER = INGEST.name
"""The batched route's inbox key."""
BATCH = f"batch {INGEST.name}"
"""Its label in a Trace."""
ONE_BY_ONE = f"handler {INGEST.name}"
"""The same route's one-message handler: what a failed batch falls back to."""
REPORTS_QUEUE = queue_name(REPORTING.name, INGEST.queue)
RAW_QUEUE = "bench.raw-agent-reports"
RAW_INGEST_QUEUES = ("bench.raw-ingest-agent-reports", "bench.raw-ingest-agent-reports-after")
"""The raw ingest runs once before Lockgate and once after (the mean is the baseline: the
machine's other load drifts during a round)."""
DRAIN_TIMEOUT = 900.0
SAMPLE_SECONDS = 0.02
RAW_INGEST = (
    # What a hand-written consumer would write: the newest state per (computer, update),
    # never backwards in time, an install result's code kept, and a later detection not
    # hiding a failed install or a pending restart (libs.domain.agent_reports.STICKY).
    "INSERT INTO bench_raw.computer_updates AS cu (computer_id, update_id, state, reported_at,"
    " last_return_code)"
    " SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[], $5::bigint[])"
    " ON CONFLICT (update_id, computer_id) DO UPDATE SET state = EXCLUDED.state,"
    " reported_at = EXCLUDED.reported_at,"
    " last_return_code = coalesce(EXCLUDED.last_return_code, cu.last_return_code)"
    " WHERE cu.reported_at < EXCLUDED.reported_at AND (EXCLUDED.last_return_code IS NOT NULL"
    "   OR (cu.state, EXCLUDED.state) NOT IN (('failed', 'needed'),"
    "   ('installed_pending_restart', 'installed')))"
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
RAW_OUTCOMES = {
    UPDATE_IDS[k]: {code: outcome_of(code, return_codes(k)) for code in (0, 1603, 1641, 3010)}
    for k in range(UPDATES)
}
"""Per update, the outcome of each return code the stream uses (the raw ingest's cache)."""
IGNORED = ("unknown_computer", "unknown_update", "declined_update", "older_than_stored")


@dataclass(frozen=True)
class Phase:
    name: str
    messages: int
    rows: int
    seconds: float
    cpu: CpuUsage
    transactions: list[float] = field(default_factory=list)
    """Seconds of each batch's transaction (the database time per batch), if batched."""
    runs: int = 1
    """How many runs over the same messages the figures are the mean of."""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def row_rate(self) -> float:
        return self.rows / self.seconds

    @property
    def database_rate(self) -> float:
        """Messages per second of batch transactions (their summed time)."""
        spent = sum(self.transactions)
        return self.messages * self.runs / spent if spent else 0.0


async def publish(bus: Bus, bodies: list[bytes]) -> float:
    """Publish every body with confirms; the exchange copies each into both queues."""
    items = []
    for index, body in enumerate(bodies):
        cid = computer_id(index % FLEET)
        envelope = Envelope.new(source=f"agent/{cid}", type=ag.AGENT_STATUS.type, subject=cid)
        items.append(
            (to_amqp(envelope, body), Exchange.AGENTS.value, ag.AGENT_STATUS.routing_key(cid))
        )
    return await publish_confirmed(bus, items)


async def raw_consume(amqp_url: str, database: str, messages: int, prefetch: int) -> Phase:
    """aio-pika: json.loads each body, ack each message."""
    rows = 0

    async def count(message: AbstractIncomingMessage) -> None:
        nonlocal rows
        data = json.loads(message.body)
        rows += len(data["detections"]) + len(data["installs"])

    meter = CpuMeter(database)
    seconds = await raw_drain(amqp_url, RAW_QUEUE, messages, prefetch, count, timeout=DRAIN_TIMEOUT)
    return Phase("raw aio-pika consume", messages, rows, seconds, meter.stop())


def raw_ingest_work(conn: asyncpg.Connection) -> BatchWork:
    """The raw ingest's work on one batch: json.loads each body, the newest observation per
    (computer, update) (an install result outranks a detection of the same report), the
    return code read through the update's map (known to the bench, as a cache would be),
    then one transaction with one unnest upsert."""

    async def work(messages: list[AbstractIncomingMessage]) -> float:
        newest: dict[tuple[str, str], tuple[datetime, int, str, int | None]] = {}
        for message in messages:
            data = json.loads(message.body)
            computer = data["computer_id"]
            at = datetime.fromisoformat(data["reported_at"])
            seen = [(d["update_id"], 0, d["state"], None) for d in data["detections"]]
            for result in data["installs"]:
                code = result["return_code"]
                outcome = RAW_OUTCOMES[result["update_id"]].get(code, "failure")
                state = (
                    ("failed" if outcome == "failure" else "needed")
                    if result["operation"] == "uninstall"
                    else INSTALL_STATE[outcome]
                )
                seen.append((result["update_id"], 1, state, code))
            for update, rank, state, code in seen:
                held = newest.get((computer, update))
                if held is None or (at, rank) >= held[:2]:
                    newest[computer, update] = (at, rank, state, code)
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                RAW_INGEST,
                [c for c, _ in newest],
                [u for _, u in newest],
                [v[2] for v in newest.values()],
                [v[0] for v in newest.values()],
                [v[3] for v in newest.values()],
            )
        return time.perf_counter() - started

    return work


async def raw_ingest(
    settings: Settings, database: str, messages: int, *, rows: int, queue: str
) -> Phase:
    """The fair baseline: consume, decode, one unnest upsert and one ack per batch, with
    Lockgate's prefetch, batch size and batch wait, into an emptied table."""
    prefetch = batch_prefetch(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("TRUNCATE bench_raw.computer_updates")
        meter = CpuMeter(database)
        seconds, transactions = await raw_batch_drain(
            settings.amqp_url,
            queue,
            messages,
            prefetch=prefetch,
            batch=settings.batch_size,
            wait=settings.batch_wait_seconds,
            work=raw_ingest_work(conn),
            timeout=DRAIN_TIMEOUT,
        )
        cpu = meter.stop()
        stored = await conn.fetchval("SELECT count(*) FROM bench_raw.computer_updates")
    finally:
        await conn.close()
    name = f"raw ingest ({stored} rows stored)"
    return Phase(name, messages, rows, seconds, cpu, transactions)


def mean_of(before: Phase, after: Phase) -> Phase:
    """The baseline of a round: the raw ingest's two runs (before and after Lockgate)."""
    return Phase(
        "raw ingest, mean of a run before and after lockgate",
        before.messages,
        before.rows,
        (before.seconds + after.seconds) / 2,
        before.cpu,
        before.transactions + after.transactions,
        runs=2,
    )


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
                " WHERE datname = $1 AND application_name = $2",
                database,
                f"lockgate-{REPORTING.name}",
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


@dataclass(frozen=True)
class LockgateRun:
    phase: Phase
    trace: Trace
    waits: Waits
    ignored: dict[str, float]
    profiler: cProfile.Profile | None


async def lockgate_drain(
    settings: Settings, database: str, messages: int, rows: int, *, profile: bool = False
) -> LockgateRun:
    """reporting in this process, from its consumer's registration until every delivery of
    the batched route is acked (after its batch committed)."""
    ignored_before = {r: counter_value(metrics.REPORTS_IGNORED, reason=r) for r in IGNORED}
    profiler = cProfile.Profile() if profile else None
    meter = CpuMeter(database)

    def at_consume(queue: str) -> None:
        if queue == REPORTS_QUEUE:
            meter.restart()

    trace = Trace(count_deliveries=True, at_consume=at_consume)
    process = ServiceProcess(
        trace.definition(REPORTING),
        settings,
        http_port=0,
        on_step=trace.step,
        wrap_consumer=trace.consumer,
    )
    try:
        async with wait_sampler(settings.database_url, database) as waits:
            if profiler is not None:
                profiler.enable()
            await process.start()

            async def drained() -> bool:
                return trace.delivered[REPORTS_QUEUE] >= messages or bool(trace.raised[BATCH])

            await wait_until(drained, "every report to be committed", timeout=DRAIN_TIMEOUT)
            seconds = time.perf_counter() - trace.consuming[REPORTS_QUEUE]
            if profiler is not None:
                profiler.disable()
            cpu = meter.stop()
    finally:
        await process.stop()
    fallbacks = len(trace.named(ONE_BY_ONE))
    if trace.raised[BATCH] or fallbacks:
        raise BenchFailure(
            f"{trace.raised[BATCH]} batches failed; {fallbacks} messages went one by one"
        )
    ignored = {
        r: counter_value(metrics.REPORTS_IGNORED, reason=r) - n for r, n in ignored_before.items()
    }
    transactions = [span.seconds for span in trace.named(STEP_BATCH_TRANSACTION)]
    phase = Phase("lockgate reporting", messages, rows, seconds, cpu, transactions)
    return LockgateRun(phase, trace, waits, ignored, profiler)


async def check_round(queues: QueueProbe, url: str, messages: int, derived: Derived) -> str:
    """Everything that must hold after a prefetch round; returns what was found."""
    await asyncio.sleep(0.5)  # the broker processes the last acks
    names = [REPORTS_QUEUE, RAW_QUEUE, *RAW_INGEST_QUEUES]
    depths = {q: await queues.depth(q) for q in (*names, *map(dead_letter_queue_name, names))}
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
        problems.append(f"{differences} rows differ between lockgate and the raw ingest")
    summary = (
        f"checks: inbox {claimed} claims, queues and DLQs empty: {not any(depths.values())}, "
        f"computer_updates {stored} rows ({placeholders} placeholders), "
        f"install_attempts {attempts}, update_counts == recount: {counters == recount} "
        f"({len(counters)} (update, state) counters), rows differing from the raw ingest: "
        f"{differences}"
    )
    if problems:
        raise BenchFailure(summary + "\nPROBLEMS: " + "; ".join(problems))
    return summary
