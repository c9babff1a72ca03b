"""Durable timers: their kinds, which ones a plan keeps, and what firing one does.

Firing reads a computer's `TimerPlan` (what firing needs from its plan, kept beside the
timers: store/timers.py) rather than its whole plan; `decide` on a plan and `fire` on the
TimerPlan made of it are one rule (`decide` is `fire` of `timer_plan(plan)`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, Field

from libs.contracts.agents import (
    AgentUpdateInstruction,
    AgentUpdatePlan,
    ComputerPlan,
    InstallInstruction,
    InstallItem,
    PlanItem,
    RestartInstruction,
    RestartPrompt,
)
from libs.contracts.policies import PolicySettings
from libs.contracts.spec import Contract
from libs.contracts.windows import MaintenanceWindow
from services.scheduler.domain.agent_updates import next_install
from services.scheduler.domain.computers import ManagedComputer
from services.scheduler.domain.plans import Progress, Schedule, due_items, pending
from services.scheduler.domain.restarts import IDLE, Prompt, Restart, RestartState, on_due
from services.scheduler.domain.windows import (
    converted,
    inside,
    next_occurrence,
    next_scheduled_install,
    window_of,
    within_windows,
)

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
class DueTimer:
    """A due timer, claimed, with what its computer holds for firing it."""

    timer: Timer
    plan: TimerPlan | None
    """The computer's TimerPlan, kept for the plan it has now (None: not kept, or no plan)."""
    known: bool
    """Whether the computer is known at all (an unknown one's timer is dropped)."""
    restart: RestartState
    user_logged_on: bool


@dataclass(frozen=True)
class Marks:
    """When a window and a deadline timer last fired for a computer (None: unchanged)."""

    computer_id: str
    last_window_at: datetime | None
    deadline_fired_through: datetime | None


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


class FiringItem(Contract):
    """A plan item a window, deadline, immediate or catch-up timer may send."""

    install: InstallItem = Field(
        description="What an install instruction carries for it, `forced` false (a fired "
        "timer sets it when the deadline has passed)."
    )
    deadline: AwareDatetime | None = Field(description="Its deadline; null: none.")


class TimerPlan(Contract):
    """What firing a computer's timers needs from its plan (`timer_plan`), stored beside
    the timers so that firing neither reads nor validates the whole plan. It does not name
    the computer: computers whose plans differ only by their id share its text (and firing
    parses each distinct text once: store/timers.py)."""

    settings: PolicySettings = Field(description="The policy settings of the plan.")
    timezone: str = Field(description="The computer's IANA time zone (windows are local).")
    items: list[FiringItem] = Field(
        description="The plan's items with something to do (a required install or an "
        "uninstall still pending), in plan order."
    )
    deadlines: list[AwareDatetime] = Field(
        description="Deadlines of the items the plan schedules an install of (a fired "
        "deadline timer comes back at the next one)."
    )
    agent_update: AgentUpdatePlan | None = Field(
        description="The mandatory agent update of the plan; null: none."
    )
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        description="The computer's maintenance windows (the plan's): the next window install "
        "moves to the next one when the policy's time falls outside them.",
    )


def timer_plan(plan: ComputerPlan) -> TimerPlan:
    """The part of a plan its timers fire from."""
    return TimerPlan(
        settings=plan.settings,
        timezone=plan.timezone,
        items=[
            FiringItem(install=install, deadline=item.deadline)
            for item, install in zip(
                _pending(plan), due_items(plan, forced_only=False, now=_NEVER), strict=True
            )
        ],
        deadlines=[
            i.deadline for i in plan.items if i.deadline is not None and i.install_at is not None
        ],
        agent_update=plan.agent_update,
        maintenance_windows=plan.maintenance_windows,
    )


_NEVER = datetime.min.replace(tzinfo=UTC)
"""Before every deadline: `due_items` at this instant forces nothing."""


def _pending(plan: ComputerPlan) -> list[PlanItem]:
    """The plan items `due_items` installs (in the same order; paused ones never)."""
    return [
        i
        for i in plan.items
        if i.action in ("required_install", "uninstall")
        and pending(i.action, i.state)
        and i.paused is None
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
    return fire(
        kind,
        plan.computer_id,
        timer_plan(plan),
        now,
        restart=computer.restart,
        user_logged_on=computer.user_logged_on,
    )


def fire(
    kind: str,
    computer_id: str,
    plan: TimerPlan,
    now: datetime,
    *,
    restart: RestartState = IDLE,
    user_logged_on: bool = False,
) -> Decision:
    """One timer of a computer with this TimerPlan (`restart` and `user_logged_on`: the
    computer's, read for restart timers only): which instruction to send and when it fires
    next (None: dropped)."""
    if kind == "restart":
        return _restart(computer_id, plan, now, restart, user_logged_on)
    if kind == "agent_update":
        return _agent_update(computer_id, plan, now)
    decision = Decision()
    reason: Literal["window", "deadline", "immediate", "catch_up"]
    if kind == "window":
        items = _due(plan, forced_only=False, now=now)
        decision.last_window_at = now
        decision.next_due = _next_install(plan, now) if items else None
        reason = "window"
    elif kind == "deadline":
        items = _due(plan, forced_only=True, now=now)
        decision.deadline_fired = now
        decision.next_due = min((d for d in plan.deadlines if d > now), default=None)
        reason = "deadline"
    elif kind == "immediate":
        items = _due(plan, forced_only=False, now=now, immediate_only=True)
        decision.immediate_sent = [i.update_id for i in items]
        reason = "immediate"
    else:
        # Outside every maintenance window only what a passed deadline forces catches up.
        items = _due(plan, forced_only=not _in_window(plan, now), now=now)
        reason = "catch_up"
    if items:
        # Made of validated parts (the TimerPlan's items, a claimed timer's computer, the
        # clock's aware time): not validated again.
        decision.install = InstallInstruction.model_construct(
            computer_id=computer_id,
            reason=reason,
            updates=items,
            prompt_user=plan.settings.install_mode == "prompt_user"
            and not all(i.forced for i in items),
            issued_at=now,
        )
    return decision


def _next_window(settings: PolicySettings, timezone: str, after: datetime) -> datetime:
    """next_window, computed once per window setting, zone and instant (a batch fires many
    computers of one policy and zone at one `now`)."""
    day, at = window_of(settings)
    return _next_occurrence(day, at, timezone, after)


_next_occurrence = functools.lru_cache(maxsize=4096)(next_occurrence)


def _next_install(plan: TimerPlan, after: datetime) -> datetime:
    """The next window install: the policy's day and time, moved to the next maintenance
    window when outside them all (domain/windows.py next_scheduled_install)."""
    if not plan.maintenance_windows:
        return _next_window(plan.settings, plan.timezone, after)
    limits = converted(plan.maintenance_windows)
    return next_scheduled_install(plan.settings, limits, plan.timezone, after)


def _due(
    plan: TimerPlan, *, forced_only: bool, now: datetime, immediate_only: bool = False
) -> list[InstallItem]:
    """What `due_items` of the plan gives at `now` (immediate: updates needing no restart)."""
    found: list[InstallItem] = []
    for item in plan.items:
        if immediate_only and item.install.restart != "never":
            continue
        forced = item.deadline is not None and item.deadline <= now
        if forced_only and not forced:
            continue
        found.append(item.install.model_copy(update={"forced": True}) if forced else item.install)
    return found


def _in_window(plan: TimerPlan, at: datetime) -> bool:
    """Whether installs not forced by a deadline may happen at `at`."""
    return not plan.maintenance_windows or inside(
        converted(plan.maintenance_windows), plan.timezone, at
    )


def _restart(
    computer_id: str, plan: TimerPlan, now: datetime, restart: RestartState, user_logged_on: bool
) -> Decision:
    state, told = on_due(restart, plan.settings, now, user_logged_on=user_logged_on)
    decision = Decision(next_due=state.due_at, restart=state)
    if isinstance(told, Prompt):
        decision.prompt = RestartPrompt(
            computer_id=computer_id,
            may_postpone=told.may_postpone,
            restart_at=told.restart_at,
            prompt=told.number,
            issued_at=now,
        )
    elif isinstance(told, Restart):
        decision.restart_now = RestartInstruction(
            computer_id=computer_id, reason=told.reason, issued_at=now
        )
    return decision


def _agent_update(computer_id: str, plan: TimerPlan, now: datetime) -> Decision:
    """Send the mandatory agent update; again at the schedule's next occurrence if the agent
    has not checked in with it by then (with no schedule, at its next check-in)."""
    upgrade = plan.agent_update
    if upgrade is None:
        return Decision()
    schedule = plan.settings.agent_update_schedule
    return Decision(
        next_due=None if schedule is None else next_install(schedule, plan.timezone, now),
        agent_update=AgentUpdateInstruction(
            computer_id=computer_id,
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
    due = now + timedelta(minutes=plan.settings.missed_install_delay_minutes)
    if any(item.deadline is not None and item.deadline <= now for item in missed):
        return due  # a passed deadline overrides the maintenance windows
    return within_windows(converted(plan.maintenance_windows), plan.timezone, due) or due
