"""Where the time goes at the largest size: a traced approval, a profiled one, and the plans."""

from __future__ import annotations

import cProfile

from bench.bench_approval_scale.phases import System, approve, root_choice
from bench.common.explain import explain_handler, print_plans
from bench.common.report import print_table, profile_text
from bench.common.tracing import Trace, answer_for
from libs.contracts import approval as a
from libs.contracts.envelope import Envelope
from libs.db.outbox import RELAY_FETCH, RELAY_PUBLISH
from services.approval.handlers import SERVICE as APPROVAL

APPROVE = answer_for(APPROVAL, a.APPROVE.type)
APPROVE_HANDLER = f"handler {APPROVE.name}"


async def where_time_goes(system: System, update_id: str, groups: int) -> None:
    """The service restarted traced; one approval reported step by step, one under cProfile
    (root approvals of `update_id`, not counted above); then EXPLAIN of the handler's SQL."""
    print(f"\n## Where the time goes ({groups} groups; root approvals of W, not counted above)")
    trace = Trace()
    await system.traced(trace)
    phase = await approve(
        system, "traced (W, two weeks)", update_id, root_choice("two_weeks"), groups
    )
    print(
        f"Traced approval: reply {phase.reply:.3f} s, published {phase.published:.3f} s; wall "
        "time per step (a step's time includes the indented lines below it; the relay runs "
        "concurrently with the rest)"
    )
    rows = trace.breakdown(APPROVE_HANDLER, since=phase.started_at)
    print_table(
        ["step", "calls", "wall s"],
        [[name, f"{calls or ''}", f"{seconds:.3f}"] for name, calls, seconds in rows],
        indent="  ",
    )
    print("  per call, in call order (ms):")
    for step in (RELAY_FETCH, RELAY_PUBLISH):
        spans = [span for span in trace.named(step) if span.began >= phase.started_at]
        print(f"  {step}: " + " ".join(f"{span.seconds * 1000:.0f}" for span in spans))

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        phase = await approve(
            system, "cProfile (W, one month)", update_id, root_choice("one_month"), groups
        )
    finally:
        profiler.disable()
    print(
        f"cProfile: reply {phase.reply:.3f} s, published {phase.published:.3f} s (slowed by "
        "the profiler; awaits are not counted in async functions' own time)"
    )
    print(profile_text(profiler, own=25, cumulative=30))

    approval = a.Approve(updates=[update_id], groups=[root_choice("one_week")])
    plans = await explain_handler(
        system.infra.database_url,
        APPROVAL.name,
        Envelope.new(source="bench", type=a.APPROVE.type),
        lambda ctx: APPROVE.handle(ctx, approval),
        system.settings,
    )
    print_plans(
        f"EXPLAIN (ANALYZE, BUFFERS) of every statement of the approve handler ({groups} groups"
        " change; each rolled back):",
        plans,
    )
