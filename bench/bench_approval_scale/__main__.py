"""python -m bench.bench_approval_scale: every size in its own vhost and database, then figures."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, datetime

from bench import bench_approval_scale
from bench.bench_approval_scale.baseline import rewrite_plans
from bench.bench_approval_scale.fleet import TOP_LEVEL_GROUPS, build_tree
from bench.bench_approval_scale.phases import running_system, timed_phases
from bench.bench_approval_scale.profile import profile_root
from bench.bench_approval_scale.report import (
    LEGEND,
    SizeResult,
    measures,
    report_growth,
    report_size,
)
from bench.bench_approval_scale.services import service_processes
from bench.common import results
from bench.common.infra import bench_main, description, environment, fresh_infra
from bench.common.report import print_environment
from tests.support.infra import Infra

SIZES = (10_000, 100_000, 1_000_000)
SMALL = (10_000,)
COMPUTERS_PER_GROUP = 100
SEED = 20_261_125
PHASE_TIMEOUT = 900.0


async def run_size(
    infra: Infra,
    computers: int,
    per_group: int,
    env: dict[str, str],
    *,
    timeout: float,
    profile: bool,
    profile_always: bool,
) -> SizeResult:
    if not env:
        env.update(await environment(infra))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    groups = max(TOP_LEVEL_GROUPS + 2, computers // per_group)
    seed = SEED + groups
    tree = build_tree(groups, computers, seed)
    with service_processes(infra) as services:
        async with running_system(infra, services, tree, seed) as system:
            phases = await timed_phases(system, timeout)
            print("  baseline: every stored plan rewritten by hand", flush=True)
            raw_seconds, raw_computers = await rewrite_plans(infra.database_url)
            result = SizeResult(
                computers=computers,
                groups=groups,
                loaded=system.loaded,
                scheduler_loaded=system.scheduler_loaded,
                child_subtree=len(tree.subtree_ids(tree.child)),
                phases=phases,
                load=load,
                raw_rewrite=raw_seconds,
                raw_rewritten=raw_computers,
            )
            if profile or profile_always:
                result.profiles.update(
                    await profile_root(system, result, timeout, always=profile_always)
                )
    return result


def run(
    sizes: list[int], per_group: int, timeout: float, *, profile: bool, profile_always: bool
) -> None:
    started = datetime.now(UTC)
    env: dict[str, str] = {}
    found: list[SizeResult] = []
    for computers in sizes:
        print(f"{computers} computers ...", flush=True)
        with fresh_infra() as infra:
            found.append(
                asyncio.run(
                    run_size(
                        infra,
                        computers,
                        per_group,
                        env,
                        timeout=timeout,
                        profile=profile,
                        profile_always=profile_always,
                    )
                )
            )
    print()
    print_environment(env)
    print(LEGEND)
    for result in found:
        report_size(result)
    report_growth(found)
    results.save(
        "approval_scale",
        measures(found),
        parameters={
            "computers": sizes,
            "computers_per_group": per_group,
            "groups": [r.groups for r in found],
            "memberships": [r.loaded.memberships for r in found],
            "seed": SEED,
            "phases": [
                {
                    "computers": r.computers,
                    "groups": r.groups,
                    "phase": p.name,
                    "groups_changed": p.groups_changed,
                    "reply_s": round(p.reply, 4),
                    "internal_published_s": None
                    if p.internal_published is None
                    else round(p.internal_published, 4),
                    "published_s": round(p.published, 4),
                    "plans_current_s": round(p.plans_current, 4),
                    "agents_drained_s": round(p.agents_drained, 4),
                    "internal_events": p.internal_events,
                    "public_events": p.public_events,
                    "messages_to_agents": p.plan_messages,
                    "scheduler_rss_peak_mib": round(p.processes["scheduler"].rss_peak_mib, 1),
                    "scheduler_cpu_s": round(p.processes["scheduler"].cpu_seconds, 2),
                    "approval_rss_peak_mib": round(p.processes["approval"].rss_peak_mib, 1),
                    "approval_cpu_s": round(p.processes["approval"].cpu_seconds, 2),
                    "rabbitmq_cpu_s": round(p.rabbitmq_cpu, 2),
                    "postgres_cpu_s": round(p.postgres_cpu, 2),
                    "machine_busy": round(p.machine_busy, 3),
                }
                for r in found
                for p in r.phases
            ],
            "load_average_at_start": [r.load for r in found],
            "raw_rewrite_s": [round(r.raw_rewrite, 3) for r in found],
        },
        started_at=started,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_approval_scale.__doc__))
    parser.add_argument(
        "--computers",
        default=",".join(str(s) for s in SIZES),
        help="comma-separated fleet sizes, each with computers/--computers-per-group groups",
    )
    parser.add_argument("--computers-per-group", type=int, default=COMPUTERS_PER_GROUP)
    parser.add_argument(
        "--small", action="store_true", help="one size of 10,000 computers (about a minute)"
    )
    parser.add_argument(
        "--timeout", type=float, default=PHASE_TIMEOUT, help="seconds a phase may take"
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="no profile of a phase that misses a goal"
    )
    parser.add_argument(
        "--profile-always",
        action="store_true",
        help="one more root approval under py-spy at every size (both services)",
    )
    args = parser.parse_args(argv)
    sizes = list(SMALL) if args.small else sorted(int(s) for s in args.computers.split(","))
    if args.computers_per_group < 1 or sizes[0] < args.computers_per_group * (TOP_LEVEL_GROUPS + 2):
        parser.error(
            f"each size needs at least {TOP_LEVEL_GROUPS + 2} groups of --computers-per-group"
        )
    bench_main(
        lambda: run(
            sizes,
            args.computers_per_group,
            args.timeout,
            profile=not args.no_profile,
            profile_always=args.profile_always,
        )
    )


if __name__ == "__main__":
    main()
