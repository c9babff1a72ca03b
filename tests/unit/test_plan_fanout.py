"""Fan-out that scales with groups: approval's internal events list the groups of one change
(services/approval/domain/approvals.py `fan_out`), and computers whose plans differ only by
their id share one computed plan (services/scheduler/domain/plans.py `PlanText`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from libs.contracts import approval as a
from libs.contracts.agents import (
    ComputerPlan,
    Installation,
    PlanItem,
    Prerequisites,
    Requirements,
)
from libs.contracts.policies import RECOMMENDED
from services.approval.domain.approvals import fan_out
from services.approval.domain.deadlines import Deadline
from services.approval.domain.groups import Groups
from services.approval.domain.tree import Effective, Tree
from services.approval.domain.updates import Update
from services.scheduler.domain.plans import PlanText, plan_digest

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ROOT = a.ROOT_GROUP_ID
PILOT, LAB, DESKS = (f"00000000-0000-0000-0000-00000000000{n}" for n in (2, 3, 4))
UPDATE = Update(
    update_id="0496b64b-4a42-52f3-a887-fcddb4f2f23d",
    kb="5073455",
    revision=1,
    origin="microsoft",
    title="2026-02 Security Update for Windows (KB5073455)",
    classification="Security Updates",
    severity="Critical",
    product_families=["Windows"],
    release_date=NOW,
    superseded_by=[],
    expired_at=None,
    declined_at=None,
    products=[],
    supersedes=[],
)


def tree() -> Groups:
    parents = {ROOT: None, PILOT: ROOT, LAB: PILOT, DESKS: ROOT}
    names = {ROOT: a.ROOT_GROUP_NAME, PILOT: "Pilot", LAB: "Lab", DESKS: "Desks"}
    return Groups(Tree(parents), names)


def on(group: str, weeks: int) -> Effective:
    return Effective(
        "required_install",
        Deadline("one_week", NOW + timedelta(weeks=weeks)),
        group,
        NOW,
        "operator",
    )


def test_a_root_approval_is_one_event_listing_every_group() -> None:
    """Every group inherits the same approval: one message, not one per group."""
    groups = tree()
    changed = [ROOT, PILOT, LAB, DESKS]
    events = fan_out(groups, UPDATE, changed, dict.fromkeys(changed, on(ROOT, 1)), "approve")
    assert len(events) == 1
    (event,) = events
    assert event.group_ids == changed
    assert event.update_id == UPDATE.update_id
    assert event.cause == "approve"
    assert event.effective is not None
    assert event.effective.source_group_id == ROOT
    assert event.effective.source_group_name == a.ROOT_GROUP_NAME


def test_groups_are_listed_per_approval_now_applying_and_removals_apart() -> None:
    """Pilot's subtree has its own approval, Desks lost its: three changes, groups in order."""
    groups = tree()
    wanted = {ROOT: on(ROOT, 1), PILOT: on(PILOT, 2), LAB: on(PILOT, 2)}
    events = fan_out(groups, UPDATE, [ROOT, PILOT, LAB, DESKS], wanted, "rule:r1")
    found = {
        None if e.effective is None else e.effective.source_group_id: e.group_ids for e in events
    }
    assert found == {ROOT: [ROOT], PILOT: [PILOT, LAB], None: [DESKS]}
    assert {e.cause for e in events} == {"rule:r1"}


def test_a_long_list_of_groups_is_cut_into_events_of_at_most_the_limit() -> None:
    groups = tree()
    changed = [ROOT, PILOT, LAB, DESKS]
    events = fan_out(
        groups, UPDATE, changed, dict.fromkeys(changed, on(ROOT, 1)), "approve", limit=3
    )
    assert [e.group_ids for e in events] == [[ROOT, PILOT, LAB], [DESKS]]


def plan(computer_id: str, items: list[PlanItem]) -> ComputerPlan:
    return ComputerPlan(
        computer_id=computer_id,
        policy_id=None,
        policy_name="no policy",
        policy_conflict=None,
        settings=RECOMMENDED,
        timezone="Europe/Paris",
        next_window=NOW + timedelta(hours=14),
        items=items,
        computed_at=NOW,
    )


ITEM = PlanItem(
    update_id=UPDATE.update_id,
    kb="5073455",
    title=UPDATE.title,
    action="required_install",
    deadline=NOW + timedelta(weeks=1),
    state="unknown",
    install_at=NOW + timedelta(hours=14),
    restart="always",
    command_line=None,
    return_codes=[],
)


def test_a_shared_plan_gives_each_computer_exactly_its_own_json_and_digest() -> None:
    """The text made for another computer is what serialising that computer's plan gives;
    the digest names the content, whichever computer it is for."""
    first = plan("pc-0001", [ITEM])
    text = PlanText.of(first)
    assert text.shareable
    for other in ("pc-0001", "pc-0999", "PC_x-42"):
        own = first.model_copy(update={"computer_id": other})
        assert text.text(other) == own.model_dump_json()
        assert text.digest == plan_digest(own)
        assert ComputerPlan.model_validate_json(text.text(other)) == own
    assert json.loads(text.text("pc-0002"))["computer_id"] == "pc-0002"
    later = first.model_copy(update={"computed_at": NOW + timedelta(hours=1)})
    assert PlanText.of(later).digest == text.digest
    assert PlanText.of(plan("pc-0001", [])).digest != text.digest


def test_a_plan_with_content_signed_for_its_computer_is_not_shared() -> None:
    installation = Installation(
        kind="msi",
        files=[],
        detection_rules=[],
        prerequisites=Prerequisites(package=None, rules=[]),
        requirements=Requirements(architecture="x64", operating_systems=[]),
    )
    third_party = ITEM.model_copy(update={"installation": installation})
    assert not PlanText.of(plan("pc-0001", [third_party])).shareable
    assert PlanText.of(plan("pc-0001", [])).shareable
