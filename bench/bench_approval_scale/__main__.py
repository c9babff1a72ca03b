"""python -m bench.bench_approval_scale: every size in its own vhost and database, then figures."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
from collections.abc import Sequence
from contextlib import redirect_stdout

from bench import bench_approval_scale
from bench.bench_approval_scale.baseline import baseline, create_schema
from bench.bench_approval_scale.fleet import TOP_LEVEL_GROUPS, build_tree
from bench.bench_approval_scale.phases import running_system, timed_phases
from bench.bench_approval_scale.profile import where_time_goes
from bench.bench_approval_scale.report import LEGEND, SizeResult, report_growth, report_size
from bench.common.infra import bench_main, check, description, environment, fresh_infra
from bench.common.report import print_environment
from tests.support.infra import Infra

SIZES = (1_000, 2_500, 5_000, 10_000)
COMPUTERS_PER_GROUP = 100
SEED = 20_261_125


async def run_size(
    infra: Infra, groups: int, per_group: int, profile: bool, env: dict[str, str]
) -> SizeResult:
    if not env:
        env.update(await environment(infra))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    seed = SEED + groups
    tree = build_tree(groups, groups * per_group, seed)
    async with running_system(infra, tree, seed) as system:
        await create_schema(infra.database_url)
        every = {str(g) for g in tree.ids}
        below = tree.subtree_ids(tree.child)
        check(len(below) == tree.subtree[tree.child], "subtree sizes agree")
        phases = await timed_phases(system, every, below)
        print("  baselines", flush=True)
        x = system.updates.measured
        baseline_all = await baseline(system, x, every, phases[1].messages)
        baseline_child = await baseline(system, x, below, phases[3].messages)
        profile_text = ""
        if profile:
            print("  where the time goes: two more root approvals of W, then EXPLAIN", flush=True)
            text = io.StringIO()
            with redirect_stdout(text):
                await where_time_goes(system, system.updates.warmup, groups)
            profile_text = text.getvalue()
        for phase in phases:
            phase.messages.clear()
    return SizeResult(
        groups=groups,
        loaded=system.loaded,
        child_name=f"Group {tree.child:05d}",
        child_depth=tree.depth[tree.child],
        child_subtree=len(below),
        phases=phases,
        baseline_all=baseline_all,
        baseline_child=baseline_child,
        profile=profile_text,
        load=load,
    )


def run(sizes: list[int], per_group: int, profile: bool) -> None:
    env: dict[str, str] = {}
    results: list[SizeResult] = []
    for groups in sizes:
        print(f"{groups} groups ...", flush=True)
        with fresh_infra() as infra:
            last = profile and groups == sizes[-1]
            results.append(asyncio.run(run_size(infra, groups, per_group, last, env)))
    print()
    print_environment(env)
    print(LEGEND)
    for result in results:
        report_size(result)
    report_growth(results)
    for result in results:
        print(result.profile, end="")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_approval_scale.__doc__))
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in SIZES),
        help="comma-separated group counts (All computers included)",
    )
    parser.add_argument("--computers-per-group", type=int, default=COMPUTERS_PER_GROUP)
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the traced, profiled and EXPLAIN part"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if sizes[0] <= TOP_LEVEL_GROUPS + 1 or args.computers_per_group < 1:
        parser.error(f"sizes must exceed {TOP_LEVEL_GROUPS + 1}; computers per group >= 1")
    bench_main(lambda: run(sizes, args.computers_per_group, not args.no_profile))


if __name__ == "__main__":
    main()
