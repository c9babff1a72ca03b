"""The figures of the four phases."""

from __future__ import annotations

from collections.abc import Sequence

from bench.bench_scheduler_timers.backlog import Backlog
from bench.bench_scheduler_timers.fleet import Load
from bench.bench_scheduler_timers.paced import Paced
from bench.bench_scheduler_timers.raw import Rate
from bench.common.meters import COMPONENTS, MIB, CpuUsage
from bench.common.report import goal, print_environment, print_table
from bench.common.results import Goal, Measure, save
from bench.common.stats import percentile

FAIR_GOAL = 0.8
"""Issue 19: fired -> published at >= 0.8x the raw claim + outbox write + commit + publish."""
PUBLISH_GOAL = 0.5
"""Issue 19: and >= 0.5x raw confirmed publish alone."""


def lag_row(name: str, samples: Sequence[float]) -> list[str]:
    cells = [percentile(samples, 50), percentile(samples, 95), percentile(samples, 99)]
    return [name, *(f"{value:.3f}" for value in [*cells, max(samples)])]


def report(  # noqa: PLR0917 - one report of the run's phases
    env: dict[str, str],
    settings: str,
    load: Load,
    backlog: Backlog,
    raw: Rate,
    claim: Rate,
    pace: Paced | None,
) -> None:
    print()
    print_environment(env)
    print(f"settings: {settings}")
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
    rows: list[tuple[str, int, float, CpuUsage]] = [
        ("lockgate fired+published", backlog.target, backlog.seconds, backlog.usage),
        ("raw aio-pika confirmed publish", raw.count, raw.seconds, raw.usage),
        ("raw claim + outbox + commit + publish", claim.count, claim.seconds, claim.usage),
    ]
    if pace is not None:
        rows.append(("paced lockgate (not a max rate)", pace.count, pace.seconds, pace.usage))
    print_table(
        ["what", "count", "seconds", "per s", "CPU s", "CPU ms/timer", "machine busy"],
        [
            [
                name,
                str(count),
                f"{seconds:.2f}",
                f"{count / seconds:.0f}",
                f"{usage.cpu:.2f}",
                f"{usage.cpu / count * 1000:.3f}",
                f"{usage.busy:.0%}",
            ]
            for name, count, seconds, usage in rows
        ],
    )
    print()
    print(
        "CPU seconds by component during each phase (from /proc; 'rest of machine' is every"
        " other process on the 2 cores, other users of the shared servers included)"
    )
    print_table(
        ["phase", "wall s", *COMPONENTS, "idle"],
        [
            [name, f"{seconds:.2f}"]
            + [f"{usage.parts[c]:.2f}" for c in COMPONENTS]
            + [f"{1 - usage.busy:.0%}"]
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
    fair = backlog.rate / claim.rate
    print(
        goal(
            f">= {FAIR_GOAL:g}x raw claim + outbox + commit + confirmed publish",
            fair >= FAIR_GOAL,
            f"ratio {fair:.3f}",
        )
    )
    ratio = backlog.rate / raw.rate
    print(
        goal(
            f">= {PUBLISH_GOAL:g}x raw confirmed publish",
            ratio >= PUBLISH_GOAL,
            f"ratio {ratio:.3f}",
        )
    )
    print(
        f"scheduler process RSS: start {backlog.rss_start / MIB:.1f} MiB, peak"
        f" {backlog.rss_peak / MIB:.1f} MiB, delta"
        f" {(backlog.rss_peak - backlog.rss_start) / MIB:.1f} MiB"
    )
    print()
    print(
        "Where lockgate's wall time went (traced: the timers task and each statement it ran,"
        " the relay's steps; the two run concurrently in one event loop, so an await's time"
        " includes the other's work)"
    )
    print_table(
        ["step", "calls", "seconds", "share of phase"],
        [
            [name, f"{calls or ''}", f"{seconds:.2f}", f"{seconds / backlog.seconds:.0%}"]
            for name, calls, seconds in backlog.steps
        ],
    )
    print()
    print(
        "Timer lag. Backlog: every timer counted as due when the timers task first ran (the"
        " ManualClock is past all due times), over the first N instructions"
    )
    lags = [
        lag_row("backlog: due -> fired (outbox row)", backlog.fired_lag),
        lag_row("backlog: due -> published", backlog.published_lag),
    ]
    if pace is not None:
        lags += [
            lag_row("paced: due -> fired", pace.fired_lag),
            lag_row("paced: due -> published", pace.published_lag),
        ]
    print_table(["timer lag, s", "p50", "p95", "p99", "max"], lags)
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


def save_results(  # noqa: PLR0917 - one run's figures
    load: Load,
    backlog: Backlog,
    raw: Rate,
    claim: Rate,
    pace: Paced | None,
    parameters: dict[str, object],
    profile: str | None,
) -> None:
    """bench/results/scheduler_timers.json: the issue's two goals, measured in this run."""
    rate = "lockgate timers fired -> instructions published"
    fair = backlog.rate / claim.rate >= FAIR_GOAL
    publish = backlog.rate / raw.rate >= PUBLISH_GOAL
    measures = [
        Measure(
            measure=rate,
            value=backlog.rate,
            unit="timers/s",
            goal=Goal("ratio", "at_least", FAIR_GOAL),
            baseline="raw SKIP LOCKED claim + outbox write + commit + confirmed publish",
            baseline_value=claim.rate,
            profile=None if fair else profile,
            note=f"{backlog.target} of {load.computers} due timers, one process",
        ),
        Measure(
            measure=rate,
            value=backlog.rate,
            unit="timers/s",
            goal=Goal("ratio", "at_least", PUBLISH_GOAL),
            baseline="raw aio-pika confirmed publish of the same messages",
            baseline_value=raw.rate,
            profile=None if publish else profile,
        ),
        Measure(
            measure="scheduler process peak RSS, backlog",
            value=backlog.rss_peak / MIB,
            unit="MiB",
            higher_is_better=False,
        ),
    ]
    if pace is not None:
        measures.append(
            Measure(
                measure=f"paced timers ({pace.rate:.0f}/s): due -> published p99",
                value=percentile(pace.published_lag, 99),
                unit="s",
                higher_is_better=False,
            )
        )
    save("scheduler_timers", measures, parameters=parameters)
