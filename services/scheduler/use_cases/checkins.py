"""Agent check-ins: register or refresh the computer and answer with its plan."""

from __future__ import annotations

from libs.contracts.scheduler import COMPUTER_REGISTERED, AgentCheckin, ComputerRegistered
from libs.service import HandlerContext
from services.scheduler import store
from services.scheduler.use_cases.planner import replan
from services.scheduler.use_cases.restarts import schedule_catch_up


async def record_checkin(ctx: HandlerContext, checkin: AgentCheckin) -> None:
    """Refresh the computer and its inventory and answer with its plan; the first check-in
    registers it. The inventory decides which third-party updates apply (domain/applicability).

    After a start or a restart, installs it missed run after the missed-install delay.
    """
    if await store.computers.record_checkin(ctx.conn, checkin, ctx.now):
        await ctx.outbox.add(
            COMPUTER_REGISTERED,
            ComputerRegistered(
                computer_id=checkin.computer_id,
                hostname=checkin.hostname,
                timezone=checkin.timezone,
                registered_at=ctx.now,
            ),
            subject=checkin.computer_id,
        )
    plans = await replan(
        ctx.conn,
        ctx.outbox,
        [checkin.computer_id],
        ctx.now,
        links=ctx.settings.content_links(),
        always_publish=True,
    )
    if checkin.reason in ("start", "restart"):
        await schedule_catch_up(ctx, checkin.computer_id, plans[checkin.computer_id])
