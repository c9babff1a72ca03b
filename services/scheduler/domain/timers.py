"""Durable timers: their kinds, which ones a plan keeps, and what firing one does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from libs.contracts.agents import (
    AgentUpdateInstruction,
    AgentUpdatePlan,
    ComputerPlan,
    InstallInstruction,
    RestartInstruction,
    RestartPrompt,
)
from services.scheduler.domain.agent_updates import next_install
from services.scheduler.domain.computers import ManagedComputer
from services.scheduler.domain.plans import Progress, Schedule, due_items
from services.scheduler.domain.restarts import Prompt, Restart, RestartState, on_due
from services.scheduler.domain.windows import next_window

KINDS = ("window", "deadline", "immediate", "catch_up", "restart", "agent_update")


@dataclass(frozen=True)
class Timer:
    """A stored timer: one per (computer, kind), due at `due_at`."""

    computer_id: str
    kind: str
    due_at: datetime


@dataclass(frozen=True)
class TimerChange:
    """Keep one timer of a kind per computer at `due_at` (None: no such timer)."""

    computer_id: str
    kind: str
    due_at: datetime | None


@dataclass(frozen=True)
class TimerCount:
    """Timers of one kind: stored, and due now (for the Prometheus gauges)."""

    kind: str
    scheduled: int
    due: int


def plan_timers(
    computer_id: str, schedule: Schedule, agent_update: AgentUpdatePlan | None
) -> list[TimerChange]:
    """The timers a computer's plan keeps (those it does not ask for are dropped)."""
    return [
        TimerChange(computer_id, "window", schedule.window),
        TimerChange(computer_id, "deadline", schedule.deadline),
        TimerChange(computer_id, "immediate", schedule.immediate),
        TimerChange(
            computer_id, "agent_update", None if agent_update is None else agent_update.install_at
        ),
    ]


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
    restart: RestartState | None = None


def decide(kind: str, plan: ComputerPlan, computer: ManagedComputer, now: datetime) -> Decision:
    """One timer: which instruction to send and when it fires next (None: dropped)."""
    if kind == "restart":
        state, told = on_due(
            computer.restart, plan.settings, now, user_logged_on=computer.user_logged_on
        )
        decision = Decision(next_due=state.due_at, restart=state)
        if isinstance(told, Prompt):
            decision.prompt = RestartPrompt(
                computer_id=plan.computer_id,
                may_postpone=told.may_postpone,
                restart_at=told.restart_at,
                prompt=told.number,
                issued_at=now,
            )
        elif isinstance(told, Restart):
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
