"""Install requests: the user on a computer asks for an available install now
(docs/product.md section 5, "Available install")."""

from __future__ import annotations

from libs.contracts import agents as ag
from libs.service import HandlerContext
from services.scheduler import store
from services.scheduler.domain.plans import requested_item
from services.scheduler.use_cases.planner import fresh_plans
from services.scheduler.use_cases.reports import require_computer


async def request_install(ctx: HandlerContext, request: ag.InstallRequest) -> None:
    """Answer with `computer.<id>.install.v1` (reason `requested`) carrying the item's
    installation, and record the request. Refused (InvalidInput, dead-lettered with the
    reason) unless the computer's plan, recomputed now, lists the update as optional."""
    await require_computer(ctx, request.computer_id)
    plan = (await fresh_plans(ctx, [request.computer_id]))[request.computer_id]
    item = requested_item(plan, request.update_id)
    await store.requests.record(ctx.conn, request, ctx.now)
    await ctx.outbox.add(
        ag.INSTALL,
        ag.InstallInstruction(
            computer_id=request.computer_id,
            reason="requested",
            updates=[item],
            prompt_user=False,
            issued_at=ctx.now,
        ),
        subject=request.computer_id,
    )
