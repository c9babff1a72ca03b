"""scheduler's handler table: every message the service reacts to, and its periodic work.

Agents: check-ins (answered with the plan), status and restart reports. Approval and
catalog events keep read copies and mark plans dirty; planner.py recomputes them and
timers.py fires what is due. Policies are commands (policies.py).
"""

from __future__ import annotations

from pathlib import Path

from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import policies as p
from libs.contracts.scheduler import (
    AGENT_CHECKIN,
    COMPUTER_REGISTERED,
    AgentCheckin,
    ComputerRegistered,
)
from libs.contracts.system import PING
from libs.domain import agent_reports
from libs.domain.resolution import Deadline
from libs.read_copies.groups import group_copy
from libs.service import (
    Answer,
    Every,
    HandlerContext,
    InvalidInput,
    NotFound,
    On,
    ServiceDefinition,
)
from libs.service.system import answer_ping
from services.scheduler import planner, policies, store, timers
from services.scheduler.domain import restarts
from services.scheduler.domain.checkin import check_sender


async def record_checkin(ctx: HandlerContext, checkin: AgentCheckin) -> None:
    """Refresh the computer and answer with its plan; the first check-in registers it.

    After a start or a restart, installs it missed run after the missed-install delay.
    """
    check_sender(ctx.envelope.subject, checkin.computer_id)
    if await store.record_checkin(ctx.conn, checkin, ctx.now):
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
    plans = await planner.replan(
        ctx.conn, ctx.outbox, [checkin.computer_id], ctx.now, always_publish=True
    )
    if checkin.reason in ("start", "restart"):
        await schedule_catch_up(ctx, checkin.computer_id, plans[checkin.computer_id])


async def schedule_catch_up(ctx: HandlerContext, computer_id: str, plan: ag.ComputerPlan) -> None:
    computer = (await store.computers(ctx.conn, [computer_id]))[computer_id]
    planned = (await store.progress(ctx.conn, [computer_id]))[computer_id]
    due = timers.catch_up_at(plan, planned, computer.last_window_at, ctx.now)
    if due is not None:
        await store.set_timer(ctx.conn, computer_id, "catch_up", due)


async def _require_computer(ctx: HandlerContext, computer_id: str) -> None:
    check_sender(ctx.envelope.subject, computer_id)
    if not await store.known(ctx.conn, computer_id):
        raise InvalidInput(
            f"computer_id {computer_id!r} is not registered: an agent checks in "
            "(agent.<computer_id>.checkin.v1) before it reports",
            field="computer_id",
        )


async def record_status(ctx: HandlerContext, status: ag.AgentStatus) -> None:
    """Detection and install results: states for the plan, restarts after 3010-like codes."""
    await _require_computer(ctx, status.computer_id)
    await store.set_user_logged_on(ctx.conn, status.computer_id, status.user_logged_on)
    facts = await store.facts(ctx.conn, [i.update_id for i in status.installs])
    codes = {update_id: fact.return_codes for update_id, fact in facts.items()}
    newest = agent_reports.latest(agent_reports.read_report(status, codes))
    held = await store.held_states(ctx.conn, status.computer_id, [u for _, u in newest])
    moved = agent_reports.changes(newest, held)
    await store.record_states(ctx.conn, status.computer_id, [seen for seen, _ in moved])
    needs_restart = max(
        (
            r.finished_at
            for r in status.installs
            if agent_reports.outcome_of(r.return_code, codes.get(r.update_id, ()))
            == "success_restart_required"
        ),
        default=None,
    )
    if needs_restart is not None:
        computer = (await store.computers(ctx.conn, [status.computer_id]))[status.computer_id]
        plan = await _plan(ctx, status.computer_id)
        state = restarts.after_install(
            computer.restart, plan.settings, needs_restart, user_logged_on=status.user_logged_on
        )
        await _set_restart(ctx, status.computer_id, state)
    await store.mark_dirty(ctx.conn, [status.computer_id], ctx.now)


async def _set_restart(ctx: HandlerContext, computer_id: str, state: restarts.RestartState) -> None:
    await store.set_restart(ctx.conn, computer_id, state)
    await store.set_timer(ctx.conn, computer_id, "restart", state.due_at)


async def _plan(ctx: HandlerContext, computer_id: str) -> ag.ComputerPlan:
    raw = await store.stored_plan(ctx.conn, computer_id)
    if raw is not None:
        return ag.ComputerPlan.model_validate_json(raw)
    plans = await planner.replan(ctx.conn, ctx.outbox, [computer_id], ctx.now)
    return plans[computer_id]


async def record_restart(ctx: HandlerContext, event: ag.AgentRestart) -> None:
    """Postponed: prompt again after the interval. Restarted: done, then missed installs."""
    await _require_computer(ctx, event.computer_id)
    await store.set_user_logged_on(ctx.conn, event.computer_id, event.user_logged_on)
    computer = (await store.computers(ctx.conn, [event.computer_id]))[event.computer_id]
    plan = await _plan(ctx, event.computer_id)
    if event.event == "postponed":
        await _set_restart(
            ctx, event.computer_id, restarts.on_postponed(computer.restart, plan.settings, ctx.now)
        )
    elif event.event == "restarted":
        await store.complete_restart(ctx.conn, event.computer_id, event.at)
        await store.mark_dirty(ctx.conn, [event.computer_id], ctx.now)  # its plan's states moved
        await _set_restart(ctx, event.computer_id, restarts.on_restarted(computer.restart))
        await schedule_catch_up(ctx, event.computer_id, plan)


async def get_plan(ctx: HandlerContext, query: ag.GetPlan) -> ag.ComputerPlan:
    """A computer's plan, recomputed now (and sent to it if it changed)."""
    if not await store.known(ctx.conn, query.computer):
        raise NotFound(
            f"computer: {query.computer!r} has never checked in; every registered computer is "
            "at least in All computers and has a plan",
            field="computer",
        )
    return (await planner.replan(ctx.conn, ctx.outbox, [query.computer], ctx.now))[query.computer]


# --- read copies from approval and catalog --------------------------------------------------


async def learn_approval(ctx: HandlerContext, event: a.ApprovalChanged) -> None:
    state = event.state
    if state.effective is None:
        await store.delete_group_approval(ctx.conn, state.group_id, state.update_id)
    else:
        deadline = Deadline(state.effective.deadline.kind, state.effective.deadline.at)
        await store.put_group_approval(
            ctx.conn, state.group_id, state.update_id, state.effective.action, deadline
        )
    await store.mark_group_dirty(ctx.conn, state.group_id, ctx.now)


async def replan_all(ctx: HandlerContext, group_id: str) -> None:  # noqa: ARG001 - a hook
    """A group moved or went: the nearest-group policy rule may pick differently anywhere."""
    await store.mark_all_dirty(ctx.conn, ctx.now)


async def forget_group(ctx: HandlerContext, group_id: str) -> None:
    await store.delete_group(ctx.conn, group_id)
    await replan_all(ctx, group_id)


async def replan_computer(ctx: HandlerContext, computer_id: str) -> None:
    await store.mark_dirty(ctx.conn, [computer_id], ctx.now)


async def learn_update(ctx: HandlerContext, event: c.UpdatePublished | c.UpdateRevised) -> None:
    if await store.put_update(ctx.conn, event.update):
        await store.mark_update_dirty(ctx.conn, event.update.update_id, ctx.now)


async def forget_update(ctx: HandlerContext, event: c.UpdateDeleted) -> None:
    await store.mark_update_dirty(ctx.conn, event.update_id, ctx.now)
    await store.delete_update(ctx.conn, event.update_id)


SERVICE = ServiceDefinition(
    name="scheduler",
    migrations=Path(__file__).parent / "migrations",
    events=(
        On(AGENT_CHECKIN, queue="agent-checkins", handle=record_checkin),
        On(ag.AGENT_STATUS, queue="agent-reports", handle=record_status),
        On(ag.AGENT_RESTART, queue="agent-reports", handle=record_restart),
        On(a.APPROVAL_CHANGED, queue="approvals", handle=learn_approval),
        On(c.UPDATE_PUBLISHED, queue="updates", handle=learn_update),
        On(c.UPDATE_REVISED, queue="updates", handle=learn_update),
        On(c.UPDATE_DELETED, queue="updates", handle=forget_update),
    ),
    commands=(
        Answer(PING["scheduler"], answer_ping),
        Answer(ag.GET_PLAN, get_plan),
        Answer(p.CREATE_POLICY, policies.create_policy),
        Answer(p.EDIT_POLICY, policies.edit_policy),
        Answer(p.DELETE_POLICY, policies.delete_policy),
        Answer(p.ASSIGN_POLICY, policies.assign_policy),
        Answer(p.UNASSIGN_POLICY, policies.unassign_policy),
        Answer(p.LIST_POLICIES, policies.list_policies),
        Answer(p.PUBLISH_AGENT_RELEASE, policies.publish_agent_release),
        Answer(p.LIST_AGENT_RELEASES, policies.list_agent_releases),
    ),
    read_copies=(
        group_copy(
            queue="approvals",
            moved=replan_all,
            deleted=forget_group,
            membership_changed=replan_computer,
        ),
    ),
    tasks=(
        Every("planner", lambda s: s.planner_poll_seconds, planner.plan_dirty_computers),
        Every("timers", lambda s: s.timer_poll_seconds, timers.fire_due_timers),
        Every("timer-gauges", lambda s: s.metrics_sample_seconds, timers.sample_gauges),
    ),
)
