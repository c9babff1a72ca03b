"""The figures of each prefetch value and of the summary."""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
from collections import defaultdict

from bench.bench_reporting_ingest.fleet import FLEET, UPDATES
from bench.bench_reporting_ingest.phases import BATCH, SAMPLE_SECONDS, LockgateRun, Phase
from bench.bench_reporting_ingest.summary import RECOUNT_REPEATS, SQL_REPEATS, SummaryFigures
from bench.common.explain import print_plans
from bench.common.meters import COMPONENTS, REST
from bench.common.report import goal, print_table, profile_text
from bench.common.stats import covered, percentile
from libs.contracts import reporting as r
from libs.service.batching import (
    STEP_BATCH_ACK,
    STEP_BATCH_DECODE,
    STEP_BATCH_TRANSACTION,
)

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
    return next((name for marker, name in PACKAGES if marker in filename), "other Python")


def by_package(profiler: cProfile.Profile) -> str:
    """Own time (tottime) per package: where this process's CPU goes."""
    grouped: defaultdict[str, float] = defaultdict(float)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, own, _cum, _callers) in raw.items():
        grouped[package_of(filename, function)] += own
    total = sum(grouped.values())
    out = io.StringIO()
    out.write(f"own time per package (profiled, inflated by the profiler), total {total:.2f} s\n")
    for name, own in sorted(grouped.items(), key=lambda item: -item[1]):
        out.write(f"  {name:<40} {own:8.2f} s  {own / total:6.1%}\n")
    return out.getvalue()


def print_cpu(phases: list[Phase]) -> None:
    print("CPU core-seconds per phase (2 cores: at most 2 x wall); 'rest of machine' = machine")
    print("busy minus the listed processes: other tenants' processes, kernel")
    print_table(
        ["phase", "wall s", *COMPONENTS, "machine busy"],
        [
            [
                phase.name.split(" (")[0],
                f"{phase.cpu.wall:.1f}",
                *[f"{phase.cpu.parts[c]:.1f}" for c in COMPONENTS],
                f"{phase.cpu.busy:.0%}",
            ]
            for phase in phases
        ],
    )


def print_lockgate(run: LockgateRun) -> None:
    batches = run.trace.named(BATCH)
    sizes = [span.size for span in batches]
    summed = sum(span.seconds for span in batches)
    wall = run.phase.seconds
    union = covered((span.began, span.began + span.seconds) for span in batches)
    print(
        f"batches: {len(sizes)}, messages per batch min {min(sizes)} / median "
        f"{statistics.median(sizes):g} / mean {statistics.fmean(sizes):.0f} / max {max(sizes)}; "
        "none failed, none fell back to one by one"
    )
    print(
        f"batch handlers in flight (inside each batch transaction, after BEGIN and the inbox "
        f"claims, before COMMIT and the acks): at least one during {union:.2f} s of "
        f"{wall:.2f} s ({union / wall:.0%}); on average {summed / wall:.2f} at once; summed "
        f"{summed:.2f} s"
    )
    print("the batch handler's statements, wall time summed over batches (batches overlap, and")
    print("a statement's wall time includes waiting for the event loop and for row locks):")
    print_table(
        ["step", "s", "ms/batch", "of the handler"],
        [
            [
                name,
                f"{seconds:.2f}",
                f"{seconds / len(sizes) * 1000:.2f}",
                f"{seconds / summed:.0%}",
            ]
            for name, _, seconds in run.trace.breakdown(BATCH)
            if not name.endswith("(concurrent)")
        ],
    )
    totals = run.trace.totals()
    print("the batching path's steps (libs/service/batching.py STEP_BATCH_*), wall time summed:")
    print_table(
        ["step", "calls", "s", "ms per call"],
        [
            [name, f"{calls}", f"{seconds:.2f}", f"{seconds / calls * 1000:.3f}"]
            for name in (STEP_BATCH_DECODE, STEP_BATCH_TRANSACTION, STEP_BATCH_ACK)
            for calls, seconds in [totals.get(name, (0, 0.0))]
            if calls
        ],
    )
    waits = run.waits
    print(
        f"reporting's pool sessions, pg_stat_activity sampled {waits.samples} times "
        f"(every {SAMPLE_SECONDS * 1000:.0f} ms): average sessions per state (idle left out)"
    )
    print_table(
        ["state: wait", "avg sessions"],
        [[key, f"{n / waits.samples:.2f}"] for key, n in waits.seen.most_common(10)],
    )
    print(f"reports ignored (metric): {run.ignored}")
    if run.profiler is not None:
        print("\ncProfile of the lockgate phase (this process only; inflates its timing):")
        print(by_package(run.profiler))
        print(profile_text(run.profiler, own=30, cumulative=45))


def print_round(
    batch: int, prefetch: int, publish_seconds: float, phases: list[Phase], checks: str
) -> None:
    raw, by_hand, lockgate = phases
    print(f"\n=== batches of up to {batch} messages, prefetch {prefetch} ===")
    print(checks)
    print(f"publish with confirms (not timed against anything): {publish_seconds:.1f} s")
    print_table(
        ["phase", "messages", "seconds", "msg/s", "rows/s", "batches", "db ms/batch", "db msg/s"],
        [
            [
                p.name,
                f"{p.messages}",
                f"{p.seconds:.2f}",
                f"{p.rate:.0f}",
                f"{p.row_rate:.0f}",
                f"{len(p.transactions)}" if p.transactions else "-",
                f"{statistics.fmean(p.transactions) * 1000:.2f}" if p.transactions else "-",
                f"{p.database_rate:.0f}" if p.transactions else "-",
            ]
            for p in phases
        ],
    )
    ingest = lockgate.rate / by_hand.rate
    database = lockgate.database_rate / by_hand.database_rate
    print(goal("ingest >= 0.8x raw ingest", ingest >= 0.8, f"{ingest:.3f}"))
    print(goal("database time per batch >= 0.8x raw upsert", database >= 0.8, f"{database:.3f}"))
    bare = lockgate.rate / raw.rate
    print(f"(for scale: lockgate / raw consume without any database: {bare:.3f})")
    print(f"(rest of machine in the lockgate phase: {lockgate.cpu.parts[REST]:.1f} core-s)")
    print_cpu(phases)


def ms_row(name: str, samples: list[float]) -> list[str]:
    """p50, p95, max and first of `samples` (seconds), in ms."""
    cells = [percentile(samples, 50), percentile(samples, 95), max(samples), samples[0]]
    return [name, *(f"{value * 1000:.1f}" for value in cells)]


def print_summary(figures: SummaryFigures, calls: int) -> None:
    print(f"\n=== fleet-wide summary ({FLEET} computers x {UPDATES} updates) ===")
    print(figures.checks)
    rows = [
        ms_row(f"RPC {r.SUMMARY.type} (RpcClient), {calls} sequential calls", figures.rpc),
        ms_row("  of which the summary handler in the service", figures.handler),
        ms_row("    of which its SQL statements", figures.statements),
        ms_row(f"the handler on one asyncpg connection, {SQL_REPEATS} runs", figures.direct),
        ms_row(
            f"same, with SET jit = off on that connection, {SQL_REPEATS} runs",
            figures.direct_no_jit,
        ),
    ]
    rows += [ms_row(f"  {name}", samples) for name, samples in figures.per_statement.items()]
    rows.append(
        ms_row(
            f"recount from computer_updates (what the counters avoid), {RECOUNT_REPEATS} runs",
            figures.recount,
        )
    )
    print_table(["what", "p50 ms", "p95 ms", "max ms", "first ms"], rows)
    p95 = percentile(figures.rpc, 95)
    print(goal("summary p95 < 200 ms", p95 < 0.2, f"{p95 * 1000:.1f} ms"))
    for jit, plans in figures.plans:
        print_plans(
            f"EXPLAIN (ANALYZE, BUFFERS) of the summary's statements, jit {jit}:",
            plans,
            full=jit != "off",
        )
