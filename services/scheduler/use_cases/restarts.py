"""One computer's restart and catch-up timers, set when it must restart, restarts or starts."""

from __future__ import annotations

from libs.contracts.agents import ComputerPlan
from libs.service import HandlerContext
from services.scheduler import store
from services.scheduler.domain.restarts import RestartState
from services.scheduler.domain.timers import TimerChange, catch_up_at


async def set_restart(ctx: HandlerContext, computer_id: str, state: RestartState) -> None:
    """Keep the restart state and its timer (due at the state's next step)."""
    await store.computers.set_restart(ctx.conn, computer_id, state)
    await store.timers.schedule(ctx.conn, [TimerChange(computer_id, "restart", state.due_at)])


async def schedule_catch_up(ctx: HandlerContext, computer_id: str, plan: ComputerPlan) -> None:
    """After a start or a restart: a catch-up timer when the computer missed installs."""
    computer = (await store.computers.find(ctx.conn, [computer_id]))[computer_id]
    planned = (await store.progress.of_computers(ctx.conn, [computer_id]))[computer_id]
    due = catch_up_at(plan, planned, computer.last_window_at, ctx.now)
    if due is not None:
        await store.timers.schedule(ctx.conn, [TimerChange(computer_id, "catch_up", due)])
