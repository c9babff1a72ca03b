"""The figures of each size, then how they grow with the number of groups."""

from __future__ import annotations

from dataclasses import dataclass

from bench.bench_approval_scale.baseline import Baseline
from bench.bench_approval_scale.fleet import Loaded
from bench.bench_approval_scale.phases import Phase
from bench.common.meters import MIB
from bench.common.report import print_table

LEGEND = (
    "reply: send -> reply (effective state + events committed to the outbox); 1st ev / "
    "publ.: first / all events in the sink queue; marked: outbox has no unpublished row; "
    "CPU s: this process (service + client + bench); MQ / PG CPU: RabbitMQ's beam.smp / "
    "every PostgreSQL process alive at both ends of the phase (other sessions' backends "
    "included); busy: both cores, everything included; RSS: this process at the phase "
    "start and its peak (5 ms samples)"
)

PHASE_COLUMNS = (
    *("phase", "events", "reply s", "1st ev s", "publ. s", "marked s", "CPU s"),
    *("MQ CPU", "PG CPU", "busy", "RSS MiB", "peak MiB", "body B"),
)


@dataclass(frozen=True)
class SizeResult:
    groups: int
    loaded: Loaded
    child_name: str
    child_depth: int
    child_subtree: int
    phases: list[Phase]
    baseline_all: Baseline
    baseline_child: Baseline
    profile: str
    load: str
    """Load average (1/5/15 min) when the size started."""


def phase_baseline(result: SizeResult, phase: Phase) -> tuple[float, float, float]:
    """(db, db + events, publish) seconds of the baseline matching a phase."""
    if phase.name.startswith("child"):
        b = result.baseline_child
        return b.db_upsert, b.db_upsert_events, b.publish
    b = result.baseline_all
    if phase.name.startswith("root again"):
        return b.db_upsert, b.db_upsert_events, b.publish
    return b.db_insert, b.db_insert_events, b.publish


def report_size(result: SizeResult) -> None:
    loaded = result.loaded
    print()
    print(
        f"## {result.groups} groups, {loaded.computers} computers, {loaded.memberships} "
        f"memberships (loaded in {loaded.seconds:.1f} s, not timed; database "
        f"{loaded.database_mib:.0f} MiB)"
    )
    print(f"load average at the start of this size: {result.load} (1/5/15 min)")
    print(f"groups per depth: {', '.join(f'{d}: {n}' for d, n in loaded.depth_counts.items())}")
    print(
        f"child group: {result.child_name} at depth {result.child_depth}, "
        f"{result.child_subtree} groups in its subtree"
    )
    print_table(
        PHASE_COLUMNS,
        [
            [
                p.name,
                str(p.expected),
                f"{p.reply:.3f}",
                f"{p.first_event:.3f}",
                f"{p.published:.3f}",
                f"{p.marked:.3f}",
                f"{p.cpu:.2f}",
                f"{p.rabbitmq_cpu:.2f}",
                f"{p.postgres_cpu:.2f}",
                f"{p.machine_busy:.0%}",
                f"{p.rss_start / MIB:.1f}",
                f"{p.rss_peak / MIB:.1f}",
                f"{p.mean_body:.0f}",
            ]
            for p in result.phases
        ],
    )
    print("baseline (raw asyncpg one unnest statement in a transaction; raw aio-pika confirms):")
    print_table(
        ["rows", "insert s", "+events s", "upsert s", "+events s", "publish s"],
        [
            [str(b.rows)]
            + [f"{s:.3f}" for s in (b.db_insert, b.db_insert_events, b.db_upsert)]
            + [f"{s:.3f}" for s in (b.db_upsert_events, b.publish)]
            for b in (result.baseline_all, result.baseline_child)
        ],
    )
    print("ratios lockgate/baseline (db = insert for the first root approval, upsert after):")
    rows = []
    for p in result.phases:
        if not p.name.startswith("warm-up"):
            db, db_events, publish = phase_baseline(result, p)
            rows.append(
                [
                    p.name,
                    f"{p.reply / db:.1f}",
                    f"{p.reply / db_events:.1f}",
                    f"{p.published / (db + publish):.2f}",
                ]
            )
    print_table(["phase", "reply/db", "reply/(db+ev)", "published/(db+publish)"], rows)


def report_growth(results: list[SizeResult]) -> None:
    print()
    print("## Growth (seconds; per group in microseconds)")
    rows = []
    for index, phase in enumerate(results[0].phases):
        for measure in ("reply", "published"):
            values = [getattr(r.phases[index], measure) for r in results]
            cells = [
                f"{v:.3f} ({v / r.phases[index].expected * 1e6:.0f})"
                for v, r in zip(values, results, strict=True)
            ]
            rows.append([f"{phase.name}, {measure}", *cells, f"{values[-1] / values[0]:.1f}"])
    print_table(["phase, measure", *(str(r.groups) for r in results), "last/first"], rows)
    print(f"groups: last/first = {results[-1].groups / results[0].groups:.1f}")
