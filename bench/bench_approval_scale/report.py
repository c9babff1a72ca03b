"""The figures of each size, how they grow, and the measures handed to bench/RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.bench_approval_scale.fleet import Loaded, SchedulerLoaded
from bench.bench_approval_scale.phases import Phase
from bench.common.report import print_table
from bench.common.results import Goal, Measure

LEGEND = (
    "reply: send -> reply (effective approvals and events committed); internal: the "
    "approval's internal events (groups per change) published; events: every event of the "
    "approval published (approval's outbox empty); plans: every computer's plan current in "
    "the scheduler's database; to agents: messages the scheduler queued to agents; CPU and "
    "peak RSS per service process; MQ / PG CPU: RabbitMQ / every PostgreSQL process; busy: "
    "both cores, everything included"
)

COLUMNS = (
    *("phase", "groups", "computers", "reply s", "internal s", "events s", "plans s"),
    *("to agents", "sched CPU", "sched MiB", "appr CPU", "appr MiB", "MQ CPU", "PG CPU"),
    "busy",
)

ROOT_PHASE = "root (X, one week)"
EVENTS_GOAL = Goal("value", "at_most", 2.0, "< 2 s")
PLANS_GOAL = Goal("value", "at_most", 60.0, "< 60 s")
MEMORY_GOAL = Goal("value", "at_most", 1024.0, "< 1 GiB")
GOAL_GROUPS, GOAL_COMPUTERS = 10_000, 1_000_000


@dataclass
class SizeResult:
    computers: int
    groups: int
    loaded: Loaded
    scheduler_loaded: SchedulerLoaded
    child_subtree: int
    phases: list[Phase]
    load: str
    """Load average (1/5/15 min) when the size started."""
    raw_rewrite: float
    """Seconds raw asyncpg took to lock, read and rewrite every stored plan (baseline.py)."""
    raw_rewritten: int
    profiles: dict[str, str] = field(default_factory=dict)
    """Phase name -> profile file kept for it (a missed goal)."""

    @property
    def at_goal_size(self) -> bool:
        return self.groups >= GOAL_GROUPS and self.computers >= GOAL_COMPUTERS

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def report_size(result: SizeResult) -> None:
    loaded = result.loaded
    print()
    print(
        f"## {result.groups} groups, {result.computers} computers, {loaded.memberships} "
        f"memberships (loaded in {loaded.seconds + result.scheduler_loaded.seconds:.1f} s, "
        f"not timed; database {result.scheduler_loaded.database_mib:.0f} MiB)"
    )
    print(f"load average at the start of this size: {result.load} (1/5/15 min)")
    print(f"groups per depth: {', '.join(f'{d}: {n}' for d, n in loaded.depth_counts.items())}")
    print(f"child group's subtree: {result.child_subtree} groups")
    print_table(
        COLUMNS,
        [
            [
                p.name,
                str(p.groups_changed),
                str(p.computers_replanned),
                f"{p.reply:.3f}",
                _seconds(p.internal_published),
                f"{p.published:.3f}",
                f"{p.plans_current:.3f}",
                str(p.plan_messages),
                f"{p.processes['scheduler'].cpu_seconds:.1f}",
                f"{p.processes['scheduler'].rss_peak_mib:.0f}",
                f"{p.processes['approval'].cpu_seconds:.1f}",
                f"{p.processes['approval'].rss_peak_mib:.0f}",
                f"{p.rabbitmq_cpu:.1f}",
                f"{p.postgres_cpu:.1f}",
                f"{p.machine_busy:.0%}",
            ]
            for p in result.phases
        ],
    )
    print(
        f"baseline: raw asyncpg locked, read and rewrote {result.raw_rewritten} stored plans, "
        f"5,000 per transaction, in {result.raw_rewrite:.3f} s"
    )
    print(
        "events per phase (internal / public): "
        + ", ".join(f"{p.name}: {p.internal_events} / {p.public_events}" for p in result.phases)
    )


def report_growth(results: list[SizeResult]) -> None:
    if len(results) < 2:
        return
    print()
    print("## Growth of the root phase (seconds; per computer in microseconds)")
    rows = []
    for measure in ("reply", "published", "plans_current"):
        values = [getattr(r.phase(ROOT_PHASE), measure) for r in results]
        cells = [
            f"{v:.3f} ({v / r.computers * 1e6:.1f})" for v, r in zip(values, results, strict=True)
        ]
        rows.append([measure, *cells, f"{values[-1] / values[0]:.1f}"])
    print_table(["measure", *(f"{r.computers:,}" for r in results), "last/first"], rows)
    print(f"computers: last/first = {results[-1].computers / results[0].computers:.1f}")


def measures(results: list[SizeResult]) -> list[Measure]:
    """Per size, the root approval's figures; the issue's goals at 10k groups / 1M computers."""
    found: list[Measure] = []
    for result in results:
        root = result.phase(ROOT_PHASE)
        goals = result.at_goal_size
        where = f"root approval, {result.groups:,} groups / {result.computers:,} computers"
        profile = result.profiles.get(ROOT_PHASE)
        found += [
            Measure(
                f"{where}: every event published",
                root.published,
                "s",
                goal=EVENTS_GOAL if goals else None,
                higher_is_better=False,
                profile=profile if goals and root.published > EVENTS_GOAL.limit else None,
                note=f"{root.internal_events} internal + {root.public_events} public events",
            ),
            Measure(
                f"{where}: internal events published",
                root.internal_published if root.internal_published is not None else root.published,
                "s",
                higher_is_better=False,
                note="the events the scheduler re-plans from"
                if root.internal_published is not None
                else "no internal event: every event",
            ),
            Measure(
                f"{where}: every computer's plan current in the database",
                root.plans_current,
                "s",
                goal=PLANS_GOAL if goals else None,
                baseline="raw asyncpg: lock, read and rewrite every stored plan, 5,000 a "
                "transaction",
                baseline_value=result.raw_rewrite,
                higher_is_better=False,
                profile=profile if goals and root.plans_current > PLANS_GOAL.limit else None,
                note=f"{root.plan_messages} messages queued to agents",
            ),
        ]
        for service in ("scheduler", "approval"):
            use = root.processes[service]
            found.append(
                Measure(
                    f"{where}: {service} peak RSS",
                    use.rss_peak_mib,
                    "MiB",
                    goal=MEMORY_GOAL if goals else None,
                    higher_is_better=False,
                    note=f"{use.cpu_seconds:.1f} CPU s in the phase",
                )
            )
    return found
