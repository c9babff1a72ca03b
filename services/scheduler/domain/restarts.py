"""The restart state machine after an install that needs a restart (docs/product.md section 1).

idle --install needing a restart--> waiting (restart delay) or restart_now (nobody logged on)
waiting --due--> prompting (user may postpone; re-prompt every interval)
               | warning (user may not: restart 5 minutes after the warning)
               | restarting (nobody logged on any more)
prompting --due or postponed--> prompting (next prompt)
warning --due--> restarting;   any --restarted--> idle

A restart after an install forced by a passed deadline, under a policy that forces restarts
(`user_controls_restart = false`) and gives a grace (`deadline_grace_days`), prompts like a
postponable restart until the grace ends (`grace_until`), then warns and restarts
(domain/deadlines.py). Without a grace it is the cycle above, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from libs.contracts.agents import InstallResult
from libs.contracts.catalog import ReturnCode
from libs.contracts.policies import PolicySettings
from libs.domain.agent_reports import outcome_of
from services.scheduler.domain.deadlines import grace_end

WARNING_BEFORE_RESTART = timedelta(minutes=5)
Phase = Literal["idle", "waiting", "restart_now", "prompting", "warning", "restarting"]


@dataclass(frozen=True)
class RestartState:
    phase: Phase
    due_at: datetime | None
    """When the next step happens (the restart timer); None: waiting on the agent."""
    prompts: int = 0
    grace_until: datetime | None = None
    """Before this instant the restart is not forced (a deadline's grace); None: no grace."""


IDLE = RestartState("idle", None)


@dataclass(frozen=True)
class Prompt:
    may_postpone: bool
    restart_at: datetime | None
    number: int


@dataclass(frozen=True)
class Restart:
    reason: Literal["nobody_logged_on", "warning_elapsed"]


Instruction = Prompt | Restart | None


def restart_requested_at(
    installs: Iterable[InstallResult], return_codes: Mapping[str, Sequence[ReturnCode]]
) -> datetime | None:
    """When the last install whose return code asks for a restart finished (None: none did).

    A code is read through its update's map (`return_codes`; the default map when missing).
    """
    return max(
        (
            r.finished_at
            for r in installs
            if outcome_of(r.return_code, return_codes.get(r.update_id, ()))
            == "success_restart_required"
        ),
        default=None,
    )


def restart_requesting(
    installs: Iterable[InstallResult], return_codes: Mapping[str, Sequence[ReturnCode]]
) -> list[str]:
    """The updates whose install's return code asks for a restart."""
    return [
        r.update_id
        for r in installs
        if outcome_of(r.return_code, return_codes.get(r.update_id, ()))
        == "success_restart_required"
    ]


def after_install(
    state: RestartState,
    settings: PolicySettings,
    finished_at: datetime,
    *,
    user_logged_on: bool,
    deadline_forced: bool = False,
) -> RestartState:
    """An install ended needing a restart: wait the restart delay, or restart at once when
    nobody is logged on. A restart already under way keeps its course.

    `deadline_forced`: the install was forced by a passed deadline; the restart a policy
    without user control would force waits the grace (`deadline_grace_days`) after the
    install finished, the user being prompted meanwhile."""
    if state.phase != "idle":
        return state
    if not user_logged_on:
        return RestartState("restart_now", finished_at)
    due = finished_at + timedelta(minutes=settings.restart_delay_minutes)
    grace = None
    if deadline_forced and not settings.user_controls_restart:
        grace = grace_end(finished_at, settings.deadline_grace_days)
    if grace is not None and grace <= due:
        grace = None
    return RestartState("waiting", due, grace_until=grace)


def held_to_windows(state: RestartState, opening: Callable[[datetime], datetime]) -> RestartState:
    """A restart cycle not forced by a passed deadline starts inside a maintenance window:
    its first step (the end of the restart delay, or at once with nobody logged on) moves to
    `opening(due)`, the first instant at or after it inside one of the computer's windows
    (domain/windows.py within_windows). Later prompts keep their interval."""
    if state.due_at is None or state.phase not in ("waiting", "restart_now"):
        return state
    return replace(state, due_at=opening(state.due_at))


def _graced(state: RestartState, now: datetime) -> bool:
    """Whether the restart's grace still runs at `now`."""
    return state.grace_until is not None and now < state.grace_until


def _next_prompt(state: RestartState, at: datetime) -> datetime:
    """The next prompt, no later than the end of the grace (when the warning comes)."""
    return at if state.grace_until is None else min(at, state.grace_until)


def on_due(
    state: RestartState, settings: PolicySettings, now: datetime, *, user_logged_on: bool
) -> tuple[RestartState, Instruction]:
    """The restart timer fired: what to tell the agent, and the next state."""
    interval = timedelta(minutes=settings.restart_prompt_interval_minutes)
    if state.phase == "restart_now" or (state.phase == "waiting" and not user_logged_on):
        return RestartState("restarting", None), Restart("nobody_logged_on")
    if state.phase == "waiting" or (state.phase == "prompting" and state.grace_until is not None):
        number = state.prompts + 1
        if settings.user_controls_restart or _graced(state, now):
            due = _next_prompt(state, now + interval)
            return RestartState("prompting", due, number, state.grace_until), Prompt(
                may_postpone=True, restart_at=None, number=number
            )
        restart_at = now + WARNING_BEFORE_RESTART
        return RestartState("warning", restart_at, number), Prompt(
            may_postpone=False, restart_at=restart_at, number=number
        )
    if state.phase == "prompting":
        number = state.prompts + 1
        return RestartState("prompting", now + interval, number), Prompt(
            may_postpone=True, restart_at=None, number=number
        )
    if state.phase == "warning":
        return RestartState("restarting", None, state.prompts), Restart("warning_elapsed")
    return state, None


def on_postponed(state: RestartState, settings: PolicySettings, now: datetime) -> RestartState:
    """The user postponed: prompt again after the interval (only where postponing is allowed)."""
    if state.phase != "prompting":
        return state
    return replace(
        state,
        due_at=_next_prompt(
            state, now + timedelta(minutes=settings.restart_prompt_interval_minutes)
        ),
    )


def on_restarted(state: RestartState) -> RestartState:  # noqa: ARG001 - any state ends here
    """The computer restarted: nothing more to do."""
    return IDLE
