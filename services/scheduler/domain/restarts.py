"""The restart state machine after an install that needs a restart (docs/product.md section 1).

idle --install needing a restart--> waiting (restart delay) or restart_now (nobody logged on)
waiting --due--> prompting (user may postpone; re-prompt every interval)
               | warning (user may not: restart 5 minutes after the warning)
               | restarting (nobody logged on any more)
prompting --due or postponed--> prompting (next prompt)
warning --due--> restarting;   any --restarted--> idle
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from libs.contracts.agents import InstallResult
from libs.contracts.catalog import ReturnCode
from libs.contracts.policies import PolicySettings
from libs.domain.agent_reports import outcome_of

WARNING_BEFORE_RESTART = timedelta(minutes=5)
Phase = Literal["idle", "waiting", "restart_now", "prompting", "warning", "restarting"]


@dataclass(frozen=True)
class RestartState:
    phase: Phase
    due_at: datetime | None
    """When the next step happens (the restart timer); None: waiting on the agent."""
    prompts: int = 0


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


def after_install(
    state: RestartState, settings: PolicySettings, finished_at: datetime, *, user_logged_on: bool
) -> RestartState:
    """An install ended needing a restart: wait the restart delay, or restart at once when
    nobody is logged on. A restart already under way keeps its course."""
    if state.phase != "idle":
        return state
    if not user_logged_on:
        return RestartState("restart_now", finished_at)
    return RestartState("waiting", finished_at + timedelta(minutes=settings.restart_delay_minutes))


def on_due(
    state: RestartState, settings: PolicySettings, now: datetime, *, user_logged_on: bool
) -> tuple[RestartState, Instruction]:
    """The restart timer fired: what to tell the agent, and the next state."""
    interval = timedelta(minutes=settings.restart_prompt_interval_minutes)
    if state.phase == "restart_now" or (state.phase == "waiting" and not user_logged_on):
        return RestartState("restarting", None), Restart("nobody_logged_on")
    if state.phase == "waiting":
        if settings.user_controls_restart:
            return RestartState("prompting", now + interval, 1), Prompt(
                may_postpone=True, restart_at=None, number=1
            )
        restart_at = now + WARNING_BEFORE_RESTART
        return RestartState("warning", restart_at, 1), Prompt(
            may_postpone=False, restart_at=restart_at, number=1
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
    return replace(state, due_at=now + timedelta(minutes=settings.restart_prompt_interval_minutes))


def on_restarted(state: RestartState) -> RestartState:  # noqa: ARG001 - any state ends here
    """The computer restarted: nothing more to do."""
    return IDLE
