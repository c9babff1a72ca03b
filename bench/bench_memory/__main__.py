"""python -m bench.bench_memory [--computers N] [--small]: every service's RSS at N computers."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from bench import bench_memory
from bench.bench_memory.processes import SERVICES, RssWatch
from bench.bench_memory.system import (
    GOAL,
    ROOT,
    Settings,
    mib,
    print_rss,
    run_system,
)
from bench.common import results
from bench.common.infra import bench_main, description, environment, in_fresh_infra
from bench.common.meters import MIB
from bench.common.report import print_environment
from tests.support.infra import Infra


def profile_for(watch: RssWatch, service: str) -> str:
    path = results.PROFILES_DIR / f"memory-{service}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(watch.timeline_text(service))
    return str(path.relative_to(ROOT))


async def measure(infra: Infra, settings: Settings) -> None:
    started_at = datetime.now(UTC)
    print_environment(await environment(infra))
    run = await run_system(infra, settings)
    print_rss(run)
    fleet, replan, watch, paced = run.fleet, run.replan, run.watch, run.paced
    measures = []
    for service in SERVICES:
        peak = watch.service_peak(service)
        met = GOAL.met(peak / MIB, None)
        measures.append(
            results.Measure(
                measure=f"memory: {service} peak RSS, {fleet.computers:,} computers",
                value=mib(peak),
                unit="MiB",
                goal=GOAL,
                higher_is_better=False,
                profile=None if met else profile_for(watch, service),
                note="peak over idle, root approval + replanning, agent events and drain",
            )
        )
    measures.append(
        results.Measure(
            measure=f"memory run: root approval -> every plan current, {fleet.computers:,}"
            " computers",
            value=round(
                replan.current if replan.current is not None else settings.replan_timeout, 1
            ),
            unit="s",
            higher_is_better=False,
            note=(
                ""
                if replan.current is not None
                else f"not finished: {replan.dirty_left} plans still dirty at the timeout"
            ),
        )
    )
    measures.append(
        results.Measure(
            measure="memory run: agent status reports published", value=round(paced.rate), unit="/s"
        )
    )
    results.save(
        "memory",
        measures,
        parameters={
            "computers": fleet.computers,
            "groups": fleet.groups,
            "memberships": fleet.memberships,
            "database_mib": round(fleet.database_mib),
            "load_seconds": round(fleet.seconds, 1),
            "events_rate": settings.rate,
            "events_seconds": settings.events_seconds,
            "events_sent": paced.sent,
            "replan": {
                "reply_s": round(replan.replied, 2),
                "events_published_s": replan.published,
                "plans_current_s": replan.current,
                "dirty_left": replan.dirty_left,
                "scheduler_outbox_left": replan.outbox_left,
            },
            "drained_s": run.drain,
            "msrc_import_s": round(run.imported, 2),
            "console_pages": {"ok": run.pages[0], "failed": run.pages[1]},
            "peaks_mib": {
                phase: {name: mib(v) for name, v in peaks.items()}
                for phase, peaks in watch.peaks.items()
            },
        },
        started_at=started_at,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=description(bench_memory.__doc__))
    parser.add_argument("--computers", type=int, default=1_000_000, help="fleet size")
    parser.add_argument("--rate", type=float, default=1000.0, help="agent events per second")
    parser.add_argument("--events-seconds", type=float, default=60.0, help="how long they flow")
    parser.add_argument("--replan-timeout", type=float, default=300.0, help="seconds at most")
    parser.add_argument("--small", action="store_true", help="20,000 computers, 15 s of events")
    args = parser.parse_args()
    settings = Settings(
        computers=20_000 if args.small else args.computers,
        rate=args.rate,
        events_seconds=15.0 if args.small else args.events_seconds,
        idle_seconds=3.0 if args.small else 10.0,
        replan_timeout=120.0 if args.small else args.replan_timeout,
        drain_timeout=60.0 if args.small else 180.0,
    )
    bench_main(lambda: in_fresh_infra(lambda infra: measure(infra, settings)))


if __name__ == "__main__":
    main()
