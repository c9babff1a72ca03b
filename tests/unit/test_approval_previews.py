"""What the console's approval pages are shown before and after a change: the plan an approval
makes (the same for a dry run and a real one), the groups a preview covers, an update's
approvals across the tree, a rule run's preview, and the list's states and sorts as SQL
(docs/product.md sections 3 and 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.contracts import approval as a
from services.approval.domain.approvals import (
    ExplicitApproval,
    approvals_of_update,
    plan,
    previewed_groups,
    rule_preview,
    same_decision,
)
from services.approval.domain.deadlines import NO_DEADLINE, Deadline
from services.approval.domain.groups import Groups
from services.approval.domain.tree import Explicit, Tree, effective
from services.approval.domain.updates import HIDDEN_BY_DEFAULT, Update
from services.approval.store.updates import SORT_SQL, STATE_SQL

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ROOT = a.ROOT_GROUP_ID
EUROPE = "00000000-0000-0000-0000-0000000000e1"
FRANCE = "00000000-0000-0000-0000-0000000000e2"
PARIS = "00000000-0000-0000-0000-0000000000e3"
ASIA = "00000000-0000-0000-0000-0000000000a1"
GROUPS = Groups(
    tree=Tree({ROOT: None, EUROPE: ROOT, FRANCE: EUROPE, PARIS: FRANCE, ASIA: ROOT}),
    names={ROOT: "All computers", EUROPE: "Europe", FRANCE: "France", PARIS: "Paris", ASIA: "Asia"},
)
UPDATE = Update(
    update_id="7d3bd8e5-3a43-4b5e-9f0c-2a1a6a0e6f01",
    kb="5034123",
    revision=1,
    origin="microsoft",
    title="2026-02 Cumulative Update for Windows 11",
    classification="Security Updates",
    severity="Critical",
    product_families=["Windows 11"],
    release_date=NOW,
    superseded_by=[],
    expired_at=None,
    declined_at=None,
    products=[],
    supersedes=[],
)


def operator(action: a.ActionName = "required_install", minutes: int = 0) -> Explicit:
    return Explicit(action, NO_DEADLINE, NOW + timedelta(minutes=minutes), "operator")


def test_a_plan_sets_drops_and_leaves_what_a_group_already_has() -> None:
    """`inherit` drops, a new decision is written, the same decision is left as it was (with
    when it was set), so a dry run counts exactly what the real approval writes."""
    held = {"u1": {FRANCE: operator("do_not_install")}, "u2": {EUROPE: operator()}}
    later = operator(minutes=5)
    planned = plan(held, {EUROPE: later, FRANCE: None})
    assert [(e.update_id, e.group_id) for e in planned.written] == [("u1", EUROPE)]
    assert planned.dropped == 1
    assert planned.after == {"u1": {EUROPE: later}, "u2": {EUROPE: operator()}}
    assert same_decision(operator(), later)
    assert held == {"u1": {FRANCE: operator("do_not_install")}, "u2": {EUROPE: operator()}}


def test_a_preview_covers_the_chosen_groups_and_everything_below_in_tree_order() -> None:
    assert previewed_groups(GROUPS.tree, [FRANCE, EUROPE]) == [EUROPE, FRANCE, PARIS]
    assert previewed_groups(GROUPS.tree, [PARIS, ASIA]) == [ASIA, PARIS]  # siblings by id
    assert previewed_groups(GROUPS.tree, [ROOT]) == list(GROUPS.tree.walk())


def test_an_updates_approvals_list_every_group_it_reaches_root_first() -> None:
    explicit = {EUROPE: operator(), PARIS: operator("do_not_install")}
    found = approvals_of_update(GROUPS, UPDATE, explicit, effective(GROUPS.tree, explicit))
    assert [(s.group_name, s.why) for s in found] == [
        ("Europe", "explicit here"),
        ("France", "inherited from Europe"),
        ("Paris", "explicit here"),
    ]
    assert approvals_of_update(GROUPS, UPDATE, {}, {}) == []


def test_a_rule_preview_shows_each_approval_with_what_its_group_would_have() -> None:
    rule = Explicit("required_install", Deadline("one_week", NOW + timedelta(weeks=1)), NOW, "r")
    written = [
        ExplicitApproval(UPDATE.update_id, FRANCE, rule),
        ExplicitApproval(UPDATE.update_id, ASIA, rule),
    ]
    held = {UPDATE.update_id: {EUROPE: operator("uninstall")}}
    shown = rule_preview(GROUPS, {UPDATE.update_id: UPDATE}, held, written, limit=1)
    (france,) = shown
    assert (france.group_name, france.why) == ("France", "explicit here")
    assert france.explicit is not None
    assert france.explicit.deadline.kind == "one_week"


def test_every_state_and_sort_has_its_sql() -> None:
    """A state or a sort added to the contract without its SQL would fail every list."""
    assert set(STATE_SQL) == set(a.UPDATE_STATES)
    assert set(STATE_SQL) >= HIDDEN_BY_DEFAULT
    assert set(SORT_SQL) == set(a.UPDATE_SORTS)
