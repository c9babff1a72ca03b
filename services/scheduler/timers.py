"""Durable timers: claimed with FOR UPDATE SKIP LOCKED, fired once, by any replica.

A timer's effect (its instruction in the outbox, its next due time) commits in the
transaction that claimed it, so a crash before commit leaves it due, and two replicas
never fire the same one: the second skips the locked row, then sees its new due time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import structlog

from libs.contracts.agents import (
    AGENT_UPDATE,
    INSTALL,
    RESTART,
    RESTART_PROMPT,
    AgentUpdateInstruction,
    ComputerPlan,
    InstallInstruction,
    RestartInstruction,
    RestartPrompt,
)
from libs.db.outbox import Outbox
from libs.db.pool import Connection
from libs.observability import metrics
from libs.service import TaskContext
from services.scheduler import store
from services.scheduler.domain import restarts
from services.scheduler.domain.agent_updates import next_install
from services.scheduler.domain.plans import Progress, due_items
from services.scheduler.domain.windows import next_window

log = structlog.get_logger(__name__)

KINDS = ("window", "deadline", "immediate", "catch_up", "restart", "agent_update")


@dataclass
class Decision:
    """What firing one timer does (computed without I/O, applied in bulk)."""

    next_due: datetime | None = None
    install: InstallInstruction | None = None
    prompt: RestartPrompt | None = None
    restart_now: RestartInstruction | None = None
    agent_update: AgentUpdateInstruction | None = None
    last_window_at: datetime | None = None
    deadline_fired: datetime | None = None
    immediate_sent: list[str] = field(default_factory=list)
    restart: restarts.RestartState | None = None


async def sample_gauges(task: TaskContext) -> None:
    """Timers due and stored per kind, and restarts pending, for Prometheus."""
    async with task.pool.acquire() as conn:
        counts = {row["kind"]: row for row in await store.timer_counts(conn, task.clock.now())}
        pending = await store.restarts_pending(conn)
    for kind in KINDS:
        row = counts.get(kind)
        metrics.TIMERS_DUE.labels(kind).set(row["due"] if row else 0)
        metrics.TIMERS_SCHEDULED.labels(kind).set(row["scheduled"] if row else 0)
    metrics.RESTARTS_PENDING.set(pending)


async def fire_due_timers(task: TaskContext) -> int:
    """Fire every due timer, a batch per transaction; returns how many fired."""
    fired = 0
    while True:
        now = task.clock.now()
        async with task.pool.acquire() as conn, conn.transaction():
            claimed = await store.claim_due_timers(conn, now, task.settings.timer_batch_size)
            if not claimed:
                return fired
            found = await store.plans(conn, sorted({c for c, _, _ in claimed}))
            decisions = []
            for computer_id, kind, due_at in claimed:
                plan, computer = found.get(computer_id, (None, None))
                decision = (
                    Decision()
                    if plan is None or computer is None
                    else decide(kind, plan, computer, now)
                )
                decisions.append((computer_id, kind, decision))
                metrics.TIMERS_FIRED.labels(kind).inc()
                metrics.TIMER_LAG.labels(kind).observe(max((now - due_at).total_seconds(), 0.0))
            await apply(conn, task.outbox(conn), decisions, now)
        fired += len(claimed)


def decide(kind: str, plan: ComputerPlan, computer: store.ComputerRow, now: datetime) -> Decision:
    """One timer: which instruction to send and when it fires next (None: dropped)."""
    if kind == "restart":
        state, told = restarts.on_due(
            computer.restart, plan.settings, now, user_logged_on=computer.user_logged_on
        )
        decision = Decision(next_due=state.due_at, restart=state)
        if isinstance(told, restarts.Prompt):
            decision.prompt = RestartPrompt(
                computer_id=plan.computer_id,
                may_postpone=told.may_postpone,
                restart_at=told.restart_at,
                prompt=told.number,
                issued_at=now,
            )
        elif isinstance(told, restarts.Restart):
            decision.restart_now = RestartInstruction(
                computer_id=plan.computer_id, reason=told.reason, issued_at=now
            )
        return decision
    if kind == "agent_update":
        return _agent_update(plan, now)
    decision = Decision()
    reason: Literal["window", "deadline", "immediate", "catch_up"]
    if kind == "window":
        items = due_items(plan, forced_only=False, now=now)
        decision.last_window_at = now
        decision.next_due = next_window(plan.settings, plan.timezone, now) if items else None
        reason = "window"
    elif kind == "deadline":
        items = due_items(plan, forced_only=True, now=now)
        decision.deadline_fired = now
        later = [
            i.deadline
            for i in plan.items
            if i.deadline is not None and i.deadline > now and i.install_at is not None
        ]
        decision.next_due = min(later, default=None)
        reason = "deadline"
    elif kind == "immediate":
        immediate = [i.update_id for i in plan.items if i.restart == "never"]
        items = due_items(plan, forced_only=False, now=now, only=immediate)
        decision.immediate_sent = [i.update_id for i in items]
        reason = "immediate"
    else:
        items = due_items(plan, forced_only=False, now=now)
        reason = "catch_up"
    if items:
        decision.install = InstallInstruction(
            computer_id=plan.computer_id,
            reason=reason,
            updates=items,
            prompt_user=plan.settings.install_mode == "prompt_user"
            and not all(i.forced for i in items),
            issued_at=now,
        )
    return decision


def _agent_update(plan: ComputerPlan, now: datetime) -> Decision:
    """Send the mandatory agent update; again at the schedule's next occurrence if the agent
    has not checked in with it by then (with no schedule, at its next check-in)."""
    upgrade = plan.agent_update
    if upgrade is None:
        return Decision()
    schedule = plan.settings.agent_update_schedule
    return Decision(
        next_due=None if schedule is None else next_install(schedule, plan.timezone, now),
        agent_update=AgentUpdateInstruction(
            computer_id=plan.computer_id,
            version=upgrade.version,
            prompt_restart=upgrade.prompt_restart,
            issued_at=now,
        ),
    )


async def apply(
    conn: Connection, outbox: Outbox, decisions: list[tuple[str, str, Decision]], now: datetime
) -> None:
    """Write a batch of decisions in a handful of statements."""
    await store.set_timers(conn, [(c, k, d.next_due) for c, k, d in decisions])
    await store.set_marks(
        conn,
        last_window=[c for c, _, d in decisions if d.last_window_at],
        deadline_fired=[c for c, _, d in decisions if d.deadline_fired],
        at=now,
    )
    sent = [(c, u) for c, _, d in decisions for u in d.immediate_sent]
    if sent:
        await store.mark_immediate_sent_many(conn, sent, now)
    for computer_id, _, decision in decisions:
        if decision.restart is not None:
            await store.set_restart(conn, computer_id, decision.restart)
    await outbox.add_many(INSTALL, [(d.install, c) for c, _, d in decisions if d.install])
    await outbox.add_many(RESTART_PROMPT, [(d.prompt, c) for c, _, d in decisions if d.prompt])
    await outbox.add_many(RESTART, [(d.restart_now, c) for c, _, d in decisions if d.restart_now])
    await outbox.add_many(
        AGENT_UPDATE, [(d.agent_update, c) for c, _, d in decisions if d.agent_update]
    )


def catch_up_at(
    plan: ComputerPlan,
    progress: Mapping[str, Progress],
    last_window_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """After a start or a restart: missed installs run after the missed-install delay.

    Missed means pending and either past its deadline, or planned before a window that
    fired (while the computer was away, or before it restarted).
    """
    missed = [
        item
        for item in plan.items
        if item.install_at is not None
        and (
            (item.deadline is not None and item.deadline <= now)
            or (
                last_window_at is not None
                and (planned := progress.get(item.update_id)) is not None
                and planned.planned_at is not None
                and planned.planned_at <= last_window_at
            )
        )
    ]
    if not missed:
        return None
    return now + timedelta(minutes=plan.settings.missed_install_delay_minutes)
