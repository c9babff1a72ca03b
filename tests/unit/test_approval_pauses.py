"""Pause, resume and roll back (services/approval/domain/pauses.py): where a pause holds,
what resuming lifts, which groups a rollback turns into uninstall; and how the scheduler's
plan treats a paused approval (services/scheduler/domain/plans.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts.agents import ComputerPlan
from libs.contracts.approval import ActionName, Pause
from libs.contracts.policies import PolicySettings
from libs.domain.resolution import NO_DEADLINE, Deadline
from libs.service.errors import InvalidInput
from services.approval.domain.pauses import to_resume, to_roll_back, with_pauses
from services.approval.domain.tree import Explicit, Paused, Tree, effective
from services.scheduler.domain import plans
from services.scheduler.domain.timers import timer_plan

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ROOT, PILOT, PILOT_EU, BROAD, LAB = "root", "pilot", "pilot-eu", "broad", "lab"
NAMES = {ROOT: "All computers", PILOT: "Pilot", PILOT_EU: "Pilot EU", BROAD: "Broad", LAB: "Lab"}
TREE = Tree({ROOT: None, PILOT: ROOT, PILOT_EU: PILOT, BROAD: ROOT, LAB: PILOT})


def set_(action: ActionName, minutes: int = 0) -> Explicit:
    return Explicit(action, NO_DEADLINE, NOW + timedelta(minutes=minutes), "operator")


def pause(group: str | None, minutes: int = 0) -> Paused:
    return Paused("token:alice", "bad patch", NOW + timedelta(minutes=minutes), group)


def held(explicit: dict[str, Explicit], pauses: dict[str | None, Paused]) -> dict[str, str | None]:
    """Per approved group: the group its pause was set on ('fleet'), or None: not paused."""
    found = with_pauses(TREE, effective(TREE, explicit), pauses)
    return {g: None if e.paused is None else (e.paused.group or "fleet") for g, e in found.items()}


# --- where a pause holds -----------------------------------------------------------------------


def test_fleet_wide_pause_holds_every_group_that_installs() -> None:
    """A fleet-wide pause holds every approved group, whatever its approval's source."""
    explicit = {ROOT: set_("required_install"), BROAD: set_("available_install", 1)}
    assert held(explicit, {None: pause(None)}) == dict.fromkeys(
        (ROOT, PILOT, PILOT_EU, LAB, BROAD), "fleet"
    )


def test_a_pause_never_holds_a_removal() -> None:
    """Uninstall goes on while paused: a rollback is never held by the pause before it."""
    explicit = {ROOT: set_("required_install"), BROAD: set_("uninstall", 1)}
    result = held(explicit, {None: pause(None)})
    assert result[BROAD] is None
    assert result[PILOT] == "fleet"


def test_group_pause_holds_the_group_and_what_inherits_from_it() -> None:
    """Paused on Pilot: Pilot and the groups below that inherit its approval are held; a
    group below with its own explicit approval, and the rest of the fleet, are not."""
    explicit = {ROOT: set_("required_install"), LAB: set_("do_not_install", 1)}
    result = held(explicit, {PILOT: pause(PILOT)})
    assert result == {ROOT: None, PILOT: PILOT, PILOT_EU: PILOT, LAB: None, BROAD: None}


def test_group_pause_where_the_approval_is_set_below_only_holds_the_group() -> None:
    """Pilot EU set its own required install: a pause on Pilot does not reach it."""
    explicit = {ROOT: set_("required_install"), PILOT_EU: set_("required_install", 2)}
    result = held(explicit, {PILOT: pause(PILOT)})
    assert result[PILOT] == PILOT
    assert result[PILOT_EU] is None


def test_unpaused_effective_approvals_are_unchanged() -> None:
    """No pause: exactly what inheritance gives (nothing for a recompute to publish)."""
    explicit = {ROOT: set_("required_install"), LAB: set_("uninstall", 1)}
    wanted = effective(TREE, explicit)
    assert with_pauses(TREE, wanted, {}) == wanted


# --- resume --------------------------------------------------------------------------------------


def test_resume_fleet_wide_lifts_every_pause() -> None:
    pauses = {None: pause(None), PILOT: pause(PILOT)}
    assert set(to_resume(pauses, None, None, names=NAMES)) == {None, PILOT}


def test_resume_a_group_lifts_its_own_pause() -> None:
    pauses = {None: pause(None), PILOT: pause(PILOT)}
    assert to_resume(pauses, PILOT, None, names=NAMES) == [PILOT]


def test_resume_a_group_held_from_elsewhere_is_refused_naming_where() -> None:
    """Pilot EU inherits Pilot's pause: resuming Pilot EU cannot lift it, and says so."""
    pauses: dict[str | None, Paused] = {PILOT: pause(PILOT)}
    value = with_pauses(TREE, effective(TREE, {ROOT: set_("required_install")}), pauses)
    with pytest.raises(InvalidInput, match=r"'Pilot EU' has no pause of its own.*'Pilot'") as e:
        to_resume(pauses, PILOT_EU, value[PILOT_EU], names=NAMES)
    assert e.value.field == "group"


def test_resume_where_nothing_is_paused_lifts_nothing() -> None:
    value = effective(TREE, {ROOT: set_("required_install")})
    assert to_resume({}, PILOT, value[PILOT], names=NAMES) == []
    assert to_resume({}, None, None, names=NAMES) == []


# --- roll back -----------------------------------------------------------------------------------


def test_fleet_rollback_turns_every_install_approval_into_uninstall() -> None:
    """Every group with an explicit install approval; do-not-install and uninstall stay."""
    explicit = {
        ROOT: set_("required_install"),
        PILOT: set_("available_install", 1),
        LAB: set_("do_not_install", 2),
        BROAD: set_("uninstall", 3),
    }
    wanted = effective(TREE, explicit)
    targets = to_roll_back(TREE, explicit, wanted, None, update="KB1", names=NAMES)
    assert targets == [ROOT, PILOT]
    after = effective(TREE, {**explicit, **dict.fromkeys(targets, set_("uninstall", 9))})
    assert {g: e.action for g, e in after.items()} == {
        ROOT: "uninstall",
        PILOT: "uninstall",
        PILOT_EU: "uninstall",
        LAB: "do_not_install",
        BROAD: "uninstall",
    }


def test_group_rollback_needs_an_install_approval_there() -> None:
    explicit = {ROOT: set_("required_install"), LAB: set_("do_not_install", 1)}
    wanted = effective(TREE, explicit)
    assert to_roll_back(TREE, explicit, wanted, PILOT, update="KB1", names=NAMES) == [PILOT]
    with pytest.raises(InvalidInput, match="approved for do_not_install in group 'Lab'"):
        to_roll_back(TREE, explicit, wanted, LAB, update="KB1", names=NAMES)


def test_rollback_of_an_update_approved_nowhere_is_refused() -> None:
    with pytest.raises(InvalidInput, match="approved for install in no group") as e:
        to_roll_back(TREE, {}, {}, None, update="KB1", names=NAMES)
    assert e.value.field == "update"


# --- the scheduler's plan ------------------------------------------------------------------------

FACT = plans.UpdateFacts(kb="1", title="KB1", restart="never", command_line=None, return_codes=[])
PAUSE = Pause(
    paused_by="alert:LockgateUpdateFailureRateHigh",
    reason="bad patch",
    paused_at=NOW,
    group_id=None,
    group_name=None,
)
POLICY = plans.PolicyInForce(None, plans.NO_POLICY, PolicySettings(), None)


def plan_of(
    approvals: list[plans.GroupApproval], state: str = "needed"
) -> tuple[ComputerPlan, plans.Schedule]:
    return plans.build_plan(
        plans.Computer("pc-1", "UTC"),
        POLICY,
        approvals,
        {"u1": FACT, "u2": FACT},
        {u: plans.Progress(state=state) for u in ("u1", "u2")},
        NOW,
    )


def test_paused_item_gets_no_install_and_no_timer_while_another_installs() -> None:
    """u1 paused, u2 not: u1 shows its pause and has nothing scheduled; u2 installs."""
    deadline = Deadline("custom", NOW + timedelta(hours=1))
    plan, schedule = plan_of(
        [
            plans.GroupApproval("g", "u1", "required_install", deadline, PAUSE),
            plans.GroupApproval("g", "u2", "required_install", NO_DEADLINE),
        ]
    )
    items = {i.update_id: i for i in plan.items}
    assert items["u1"].paused == PAUSE
    assert items["u1"].install_at is None
    assert items["u2"].paused is None
    assert items["u2"].install_at is not None
    assert schedule.immediate_updates == ["u2"]
    assert schedule.deadline is None  # u1's deadline is not kept while it is paused
    due = plans.due_items(plan, forced_only=False, now=NOW + timedelta(days=2))
    assert [i.update_id for i in due] == ["u2"]
    assert [f.install.update_id for f in timer_plan(plan).items] == ["u2"]


def test_paused_group_holds_the_computer_even_when_another_group_installs() -> None:
    """One of the computer's groups that installs it is paused: the computer waits."""
    plan, _ = plan_of(
        [
            plans.GroupApproval("a", "u1", "required_install", NO_DEADLINE, PAUSE),
            plans.GroupApproval("b", "u1", "required_install", NO_DEADLINE),
        ]
    )
    assert plan.items[0].paused == PAUSE
    assert plan.items[0].install_at is None


def test_paused_available_install_is_not_offered_to_users() -> None:
    plan, _ = plan_of([plans.GroupApproval("g", "u1", "available_install", NO_DEADLINE, PAUSE)])
    assert not plan.items[0].optional
    with pytest.raises(InvalidInput, match="is paused"):
        plans.requested_item(plan, "u1")


def test_uninstall_is_never_held() -> None:
    """A pause on an install group does not hold an uninstall that wins elsewhere."""
    plan, _ = plan_of(
        [plans.GroupApproval("g", "u1", "uninstall", NO_DEADLINE, None)], state="installed"
    )
    assert plan.items[0].paused is None
    assert plan.items[0].install_at is not None
