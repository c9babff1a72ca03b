"""Where the time goes when the root approval misses a goal: one more root approval (of an
update not approved yet, not counted above) with py-spy recording the service that missed it
(the scheduler for plans, approval for events): a flame graph (SVG) and its collapsed stacks
(text, one stack and its sample count a line) under bench/profiles/."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.bench_approval_scale.phases import System, approve, root_choice
from bench.bench_approval_scale.report import EVENTS_GOAL, PLANS_GOAL, ROOT_PHASE, SizeResult
from bench.common.profile import py_spy
from bench.common.results import PROFILES_DIR

ROOT = Path(__file__).resolve().parents[2]


async def profile_root(
    system: System, result: SizeResult, timeout: float, *, always: bool = False
) -> dict[str, str]:
    """Phase name -> profile path (relative to the repository) when the root phase missed a
    goal at the goal's size (with `always`: both services at any size); nothing otherwise."""
    root = result.phase(ROOT_PHASE)
    missed = [
        service
        for service, late in (
            ("scheduler", root.plans_current > PLANS_GOAL.limit),
            ("approval", root.published > EVENTS_GOAL.limit),
        )
        if always or (late and result.at_goal_size)
    ]
    if not missed:
        return {}
    tool = py_spy()
    if tool is None:
        print("  a goal was missed, but py-spy is not installed: no profile", flush=True)
        return {}
    PROFILES_DIR.mkdir(parents=True, exist_ok=True)
    recorders = []
    paths = []
    for service in missed:
        for form, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            path = PROFILES_DIR / f"approval_scale_{service}_{result.computers}.{suffix}"
            paths.append(path)
            recorders.append(
                await asyncio.create_subprocess_exec(
                    tool,
                    "record",
                    "--nonblocking",
                    "--idle",
                    "--rate",
                    "50",
                    "--format",
                    form,
                    "--output",
                    str(path),
                    "--pid",
                    str(system.services.pids[service]),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
    await asyncio.sleep(1.0)  # py-spy attached
    update_id = system.updates.others[0]
    print(f"  profiling {', '.join(missed)}: one more root approval", flush=True)
    try:
        phase = await approve(
            system,
            "profiled root",
            update_id,
            root_choice("one_week"),
            system.tree.groups,
            timeout=timeout,
        )
    finally:
        for recorder in recorders:
            recorder.send_signal(2)  # SIGINT: py-spy writes its SVG and exits
        for recorder in recorders:
            await recorder.wait()
    print(
        f"  profiled root: events {phase.published:.3f} s, plans {phase.plans_current:.3f} s "
        f"(under py-spy); profiles in {PROFILES_DIR}",
        flush=True,
    )
    kept = [str(p.relative_to(ROOT)) for p in paths if p.exists()]
    return {ROOT_PHASE: ", ".join(kept)} if kept else {}
