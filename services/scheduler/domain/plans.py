"""A computer's plan: what applies to it, when each update installs, which timers to keep."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from libs.contracts.agents import ComputerPlan, InstallItem, PlanItem
from libs.contracts.approval import ActionName, Pause
from libs.contracts.catalog import Package, RestartName, ReturnCode
from libs.contracts.policies import PolicySettings
from libs.contracts.windows import MaintenanceWindow
from libs.domain.content_urls import ContentLinks
from libs.domain.deadline_spread import computer_deadline
from libs.domain.resolution import Deadline, resolve
from libs.service.errors import InvalidInput
from services.scheduler.domain.applicability import Inventory, applies
from services.scheduler.domain.installations import installation, requirements_of
from services.scheduler.domain.windows import (
    converted,
    next_scheduled_install,
    within_windows,
)

NO_POLICY = "no policy"
NOT_APPLICABLE = "not_applicable"
PUSH_LIMIT = 10_000
"""A change that reaches at most this many computers sends each its new plan
(`computer.<id>.plan.v1`); after a bigger one each agent gets its plan at its next check-in
and its install instructions when they are due, so one root approval is not a million
messages through the broker (docs/agent-protocol.md section 4)."""


class GroupApproval(NamedTuple):
    """A group's effective approval of an update (the scheduler's read copy of approval's)."""

    group_id: str
    update_id: str
    action: ActionName
    deadline: Deadline
    paused: Pause | None = None
    """Set while the approval is paused (approval's services/approval/domain/pauses.py)."""


ApprovalInput = tuple[str, str, ActionName, Deadline] | GroupApproval
"""A group's approval as build_plan takes it: (group, update, action, deadline), or the read
copy's row with its pause."""


def paused_for(
    approvals: Sequence[tuple[str, ActionName, Pause | None]], action: ActionName
) -> Pause | None:
    """The pause that holds an update for a computer: one of its groups whose approval has the
    winning action is paused (a pause stops that group's computers installing it, whatever
    another group says); the earliest such pause when several."""
    held = [p for _, a, p in approvals if a == action and p is not None]
    return min(held, key=lambda p: p.paused_at) if held else None


@dataclass(frozen=True)
class UpdateFacts:
    """What the catalog said of an update (scheduler's read copy)."""

    kb: str | None
    title: str
    restart: RestartName
    command_line: str | None
    return_codes: list[ReturnCode]
    package: Package | None = None
    """How to install it (third-party updates only)."""
    sha256: str | None = None
    """The installer's sha256 (third-party updates)."""
    offered: bool = True
    """Whether the catalog settings offer it (docs/product.md section 2); never planned if not."""


@dataclass(frozen=True)
class Progress:
    """What the agent reported of one update and what was already sent for it."""

    state: str = "unknown"
    planned_at: datetime | None = None
    immediate_sent_at: datetime | None = None


@dataclass(frozen=True)
class Computer:
    computer_id: str
    timezone: str
    deadline_fired_through: datetime | None = None
    inventory: Inventory = field(default_factory=Inventory)
    windows: tuple[MaintenanceWindow, ...] = ()
    """Maintenance windows of its groups and their ancestors (domain/windows.py)."""


@dataclass(frozen=True)
class PolicyInForce:
    policy_id: str | None
    name: str
    settings: PolicySettings
    conflict: str | None


@dataclass
class Schedule:
    """The timers a plan asks for (None: no such timer)."""

    window: datetime | None = None
    deadline: datetime | None = None
    immediate: datetime | None = None
    immediate_updates: list[str] = field(default_factory=list)


def pending(action: ActionName, state: str) -> bool:
    """Whether something is left to do: install what is missing, remove what is there.

    States come from libs/domain/agent_reports.py. A failed install or uninstall is tried
    again at the next window (the failure says nothing was changed); an update installed
    pending a restart is there, so an uninstall still has work to do.
    """
    if action == "required_install":
        return state in ("needed", "failed", "unknown")
    if action == "uninstall":
        return state in ("installed", "installed_pending_restart", "failed", "unknown")
    return False


def state_for(fact: UpdateFacts, held: str, inventory: Inventory) -> str:
    """What the plan shows: `not_applicable` when the computer does not meet the update's
    requirements (derived at plan time from the last check-in, never stored: a computer
    whose inventory changes is planned anew), else what the agent's reports left."""
    requirements = None if fact.package is None else requirements_of(fact.package)
    if not applies(requirements, inventory):
        return NOT_APPLICABLE
    return held


def build_plan(  # noqa: PLR0917 - the inputs of one plan, each a different thing
    computer: Computer,
    policy: PolicyInForce,
    approvals: Iterable[ApprovalInput],
    facts: Mapping[str, UpdateFacts],
    progress: Mapping[str, Progress],
    now: datetime,
    links: ContentLinks | None = None,
) -> tuple[ComputerPlan, Schedule]:
    """The plan of one computer from its groups' approvals (group, update, action, deadline).

    Updates the scheduler has no facts for yet are left out until the catalog event arrives,
    and so are updates the catalog settings do not offer (approved before they were withdrawn).
    Third-party items carry their installation, its content URLs signed for this computer
    with `links` (None: no installation, for callers that only look at the schedule).
    An update whose requirements the computer does not meet is `not_applicable`, with
    nothing to do; an available install that applies is `optional` (the user may ask for it).
    """
    per_update: dict[str, list[tuple[str, ActionName, Deadline]]] = {}
    pauses: dict[str, list[tuple[str, ActionName, Pause | None]]] = {}
    for approval in approvals:
        group, update_id, action, chosen = approval[:4]
        per_update.setdefault(update_id, []).append((group, action, chosen))
        if isinstance(approval, GroupApproval) and approval.paused is not None:
            pauses.setdefault(update_id, []).append((group, action, approval.paused))
    settings = policy.settings
    # The policy's day and time, moved to the next maintenance window when outside all.
    limits = converted(computer.windows)
    window = next_scheduled_install(settings, limits, computer.timezone, now)
    opening = within_windows(limits, computer.timezone, now) or now
    schedule = Schedule()
    items: list[PlanItem] = []
    for update_id in sorted(per_update):
        resolved = resolve(per_update[update_id])
        fact = facts.get(update_id)
        if resolved is None or fact is None or not fact.offered:
            continue
        done = progress.get(update_id, Progress())
        state = state_for(fact, done.state, computer.inventory)
        done = replace(done, state=state)
        # The computer's own deadline: the approved one moved by its share of the spread.
        deadline = computer_deadline(
            resolved.deadline.at, computer.computer_id, settings.deadline_spread_hours
        )
        install_at = None
        paused = paused_for(pauses.get(update_id, ()), resolved.action)
        if paused is None and pending(resolved.action, done.state):
            install_at = _install_at(resolved.action, fact, done, deadline, window, settings, now)
            if limits and _immediate(resolved.action, fact, done, settings):
                install_at = opening  # needing no restart, it still waits for a window
            schedule.window = window
            if deadline is not None and (
                computer.deadline_fired_through is None
                or deadline > computer.deadline_fired_through
            ):
                schedule.deadline = (
                    deadline if schedule.deadline is None else min(schedule.deadline, deadline)
                )
            if _immediate(resolved.action, fact, done, settings):
                schedule.immediate = opening
                schedule.immediate_updates.append(update_id)
        items.append(
            PlanItem(
                update_id=update_id,
                kb=fact.kb,
                title=fact.title,
                action=resolved.action,
                deadline=deadline,
                state=done.state,
                install_at=install_at,
                restart=fact.restart,
                command_line=fact.command_line,
                return_codes=fact.return_codes,
                optional=resolved.action == "available_install"
                and state != NOT_APPLICABLE
                and paused is None,
                installation=None
                if fact.package is None or links is None
                else installation(fact.package, fact.sha256, computer.computer_id, links, now),
                paused=paused,
            )
        )
    plan = ComputerPlan(
        computer_id=computer.computer_id,
        policy_id=policy.policy_id,
        policy_name=policy.name,
        policy_conflict=policy.conflict,
        settings=settings,
        timezone=computer.timezone,
        next_window=window if schedule.window else None,
        maintenance_windows=list(computer.windows),
        items=items,
        computed_at=now,
    )
    return plan, schedule


def _immediate(
    action: ActionName, fact: UpdateFacts, done: Progress, settings: PolicySettings
) -> bool:
    """Updates needing no restart install at once when the policy allows, once."""
    return (
        settings.allow_immediate_install
        and action == "required_install"
        and fact.restart == "never"
        and done.immediate_sent_at is None
    )


def _install_at(  # noqa: PLR0917 - private helper of build_plan
    action: ActionName,
    fact: UpdateFacts,
    done: Progress,
    deadline: datetime | None,
    window: datetime,
    settings: PolicySettings,
    now: datetime,
) -> datetime:
    if _immediate(action, fact, done, settings):
        return done.planned_at or now
    if deadline is not None and deadline <= window:
        return deadline  # a deadline before the next window (or already past) forces it
    return window


def plan_digest(plan: ComputerPlan) -> str:
    """What identifies a plan's content for its computer: not when it was computed, nor the
    computer id it is for (each computer keeps its own), so computers that share a plan
    share its digest (PlanText)."""
    return PlanText.of(plan).digest


_HEAD = '{"computer_id":'


def _quoted(computer_id: str) -> str:
    return json.dumps(computer_id, ensure_ascii=False)


@dataclass(frozen=True)
class PlanText:
    """A plan's JSON with its computer id cut out, so that computers whose plans differ only
    by their id (same inputs: groups' approvals, time zone, inventory, progress ...) share
    one computed plan: `text(c)` is exactly the JSON of the plan with `computer_id` c.

    A plan whose items depend on the computer otherwise (third-party content URLs are signed
    for it) is not `shareable`.
    """

    tail: str
    """The JSON after the computer id's string."""
    digest: str
    """plan_digest: sha256 of the JSON after the id, without `computed_at`."""
    shareable: bool

    @classmethod
    def of(cls, plan: ComputerPlan) -> PlanText:
        full = plan.model_dump_json()
        bare = plan.model_dump_json(exclude={"computed_at"})
        quoted = _HEAD + _quoted(plan.computer_id)
        if not (full.startswith(quoted) and bare.startswith(quoted)):
            raise ValueError("a plan's JSON starts with its computer id")
        return cls(
            tail=full[len(quoted) :],
            digest=hashlib.sha256(bare[len(quoted) :].encode()).hexdigest(),
            shareable=all(item.installation is None for item in plan.items),
        )

    def text(self, computer_id: str) -> str:
        return _HEAD + _quoted(computer_id) + self.tail


def due_items(
    plan: ComputerPlan, *, forced_only: bool, now: datetime, only: Sequence[str] | None = None
) -> list[InstallItem]:
    """Items of a plan to install now: every pending one, or those whose deadline passed."""
    found: list[InstallItem] = []
    for item in plan.items:
        if item.paused is not None:
            continue  # a paused approval starts no install
        if item.action not in ("required_install", "uninstall") or not pending(
            item.action, item.state
        ):
            continue
        if only is not None and item.update_id not in only:
            continue
        forced = item.deadline is not None and item.deadline <= now
        if forced_only and not forced:
            continue
        found.append(
            InstallItem(
                update_id=item.update_id,
                kb=item.kb,
                action=item.action,
                command_line=item.command_line,
                forced=forced,
                restart=item.restart,
                return_codes=item.return_codes,
                installation=item.installation,
            )
        )
    return found


def requested_item(plan: ComputerPlan, update_id: str) -> InstallItem:
    """The install a user asked for: only an update the plan lists as optional (an available
    install that applies to the computer) may be asked for."""
    item = next((i for i in plan.items if i.update_id == update_id), None)
    if item is not None and item.paused is not None:
        raise InvalidInput(
            f"update_id {update_id!r} is paused ({item.paused.reason}, by "
            f"{item.paused.paused_by} at {item.paused.paused_at.isoformat()}): it may not be "
            "installed until an operator resumes it",
            field="update_id",
        )
    if item is None or not item.optional:
        why = (
            "is not in its plan (not approved for any of its groups, or unknown)"
            if item is None
            else f"is not an available install for it (action {item.action}, state {item.state})"
        )
        raise InvalidInput(
            f"update_id {update_id!r} {why}: a user may only ask for an update the plan lists "
            "as optional",
            field="update_id",
        )
    return InstallItem(
        update_id=item.update_id,
        kb=item.kb,
        action="required_install",
        command_line=item.command_line,
        forced=False,
        restart=item.restart,
        return_codes=item.return_codes,
        installation=item.installation,
    )
