"""Agents' reports: status (detections and install results) and restart events."""

from __future__ import annotations

from libs.contracts import agents as ag
from libs.domain import agent_reports
from libs.service import HandlerContext, InvalidInput
from services.scheduler import store
from services.scheduler.domain.deadlines import forced_by_deadline
from services.scheduler.domain.restarts import (
    after_install,
    held_to_windows,
    on_postponed,
    on_restarted,
    restart_requested_at,
    restart_requesting,
)
from services.scheduler.domain.windows import converted, within_windows
from services.scheduler.use_cases.planner import current_plan
from services.scheduler.use_cases.restarts import schedule_catch_up, set_restart


async def require_computer(ctx: HandlerContext, computer_id: str) -> None:
    """Only a checked-in computer reports (the pipeline already checked that the sender is
    this computer: libs/service/pipeline.py, Pipeline.check_sender)."""
    if not await store.computers.known(ctx.conn, computer_id):
        raise InvalidInput(
            f"computer_id {computer_id!r} is not registered: an agent checks in "
            "(agent.<computer_id>.checkin.v1) before it reports",
            field="computer_id",
        )


async def record_status(ctx: HandlerContext, status: ag.AgentStatus) -> None:
    """Detection and install results: states for the plan, restarts after 3010-like codes."""
    computer_id = status.computer_id
    await require_computer(ctx, computer_id)
    await store.computers.set_user_logged_on(ctx.conn, computer_id, status.user_logged_on)
    facts = await store.updates.facts(ctx.conn, [i.update_id for i in status.installs])
    codes = {update_id: fact.return_codes for update_id, fact in facts.items()}
    newest = agent_reports.latest(agent_reports.read_report(status, codes))
    held = await store.progress.held_states(ctx.conn, computer_id, [u for _, u in newest])
    moved = agent_reports.changes(newest, held)
    await store.progress.record_states(ctx.conn, computer_id, [seen for seen, _ in moved])
    finished_at = restart_requested_at(status.installs, codes)
    if finished_at is not None:
        computer = (await store.computers.find(ctx.conn, [computer_id]))[computer_id]
        plan = await current_plan(ctx, computer_id)
        # Forced by a passed deadline (the computer's own, as its plan shows it): a policy's
        # grace may hold the forced restart (domain/deadlines.py).
        forced = forced_by_deadline(
            restart_requesting(status.installs, codes),
            {item.update_id: item.deadline for item in plan.items},
            finished_at,
        )
        state = after_install(
            computer.restart,
            plan.settings,
            finished_at,
            user_logged_on=status.user_logged_on,
            deadline_forced=forced,
        )
        if not forced and state != computer.restart:
            # Not forced by a deadline: the restart waits for a maintenance window.
            limits = converted(plan.maintenance_windows)
            state = held_to_windows(
                state, lambda at: within_windows(limits, plan.timezone, at) or at
            )
        await set_restart(ctx, computer_id, state)
    await store.plans.mark_dirty(ctx.conn, [computer_id], ctx.now)


async def record_restart(ctx: HandlerContext, event: ag.AgentRestart) -> None:
    """Postponed: prompt again after the interval. Restarted: done, then missed installs."""
    computer_id = event.computer_id
    await require_computer(ctx, computer_id)
    await store.computers.set_user_logged_on(ctx.conn, computer_id, event.user_logged_on)
    computer = (await store.computers.find(ctx.conn, [computer_id]))[computer_id]
    plan = await current_plan(ctx, computer_id)
    if event.event == "postponed":
        await set_restart(ctx, computer_id, on_postponed(computer.restart, plan.settings, ctx.now))
    elif event.event == "restarted":
        await store.progress.complete_restart(ctx.conn, computer_id, event.at)
        await store.plans.mark_dirty(ctx.conn, [computer_id], ctx.now)  # its plan's states moved
        await set_restart(ctx, computer_id, on_restarted(computer.restart))
        await schedule_catch_up(ctx, computer_id, plan)
