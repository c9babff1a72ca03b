"""The approval rules that used to sit in the service layer, now pure in domain/: approval
choices, what changed after inheritance, update states and lists, group checks, rule
definitions and rule approvals, and the views events and queries show (docs/product.md
sections 3 and 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts import approval as a
from libs.domain.references import as_id, kb_number
from libs.service.errors import Conflict, InvalidInput, NotFound
from services.approval.domain.approvals import (
    changes,
    computer_approval,
    explicit_choice,
    group_state,
)
from services.approval.domain.deadlines import NO_DEADLINE, Deadline
from services.approval.domain.groups import (
    GroupCounts,
    Groups,
    check_deletable,
    check_known_computers,
    check_member_group,
    check_renamable,
    clean_name,
    views,
)
from services.approval.domain.resolution import resolve_each
from services.approval.domain.rules import approvals_by, candidate, criteria, define, matches
from services.approval.domain.tree import Effective, Explicit, Tree, effective
from services.approval.domain.updates import (
    ListedUpdate,
    Update,
    check_approvable,
    search_text,
    shown,
    states,
    view,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ROOT = a.ROOT_GROUP_ID
SITE = "00000000-0000-0000-0000-0000000000a1"
LAB = "00000000-0000-0000-0000-0000000000a2"
GROUPS = Groups(
    tree=Tree({ROOT: None, SITE: ROOT, LAB: SITE}),
    names={ROOT: "All computers", SITE: "Site", LAB: "Lab"},
)


def an_update(**changed: object) -> Update:
    fields: dict[str, object] = {
        "update_id": "7d3bd8e5-3a43-4b5e-9f0c-2a1a6a0e6f01",
        "kb": "5034123",
        "revision": 1,
        "origin": "microsoft",
        "title": "2026-02 Cumulative Update for Windows 11",
        "classification": "Security Updates",
        "severity": "Critical",
        "product_families": ["Windows 11"],
        "release_date": NOW,
        "superseded_by": [],
        "expired_at": None,
        "declined_at": None,
        "products": ["Windows 11 Version 25H2"],
        "supersedes": [],
    }
    fields.update(changed)
    return Update(**fields)  # type: ignore[arg-type]


def operator(action: a.ActionName = "required_install", minutes: int = 0) -> Explicit:
    return Explicit(action, NO_DEADLINE, NOW + timedelta(minutes=minutes), "operator")


def a_rule(**changed: object) -> a.Rule:
    fields: dict[str, object] = {
        "rule_id": "00000000-0000-0000-0000-0000000000c1",
        "name": "Critical",
        "description": "",
        "products": [],
        "classifications": ["Security Updates"],
        "severities": [],
        "title_contains": None,
        "group_ids": [SITE],
        "deadline": "one_week",
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(changed)
    return a.Rule.model_validate(fields)


# Choosing an approval for a group.


def test_inherit_drops_the_explicit_approval_and_takes_no_deadline() -> None:
    assert explicit_choice(a.GroupChoice(group="Lab", action="inherit"), NOW, "g", "op") is None
    with pytest.raises(InvalidInput, match="`inherit` takes no deadline"):
        explicit_choice(
            a.GroupChoice(
                group="Lab", action="inherit", deadline=a.DeadlineChoice(kind="one_week")
            ),
            NOW,
            "g",
            "op",
        )


def test_only_required_install_and_uninstall_take_a_deadline() -> None:
    with pytest.raises(InvalidInput, match="not allowed with action 'do_not_install'") as raised:
        explicit_choice(
            a.GroupChoice(
                group="Lab", action="do_not_install", deadline=a.DeadlineChoice(kind="one_week")
            ),
            NOW,
            "groups[0]",
            "op",
        )
    assert raised.value.field == "groups[0].deadline"
    chosen = explicit_choice(
        a.GroupChoice(group="Lab", action="uninstall", deadline=a.DeadlineChoice(kind="one_week")),
        NOW,
        "groups[0]",
        "op",
    )
    assert chosen == Explicit(
        "uninstall", Deadline("one_week", NOW + timedelta(weeks=1)), NOW, "op"
    )


def test_expired_updates_cannot_be_approved() -> None:
    check_approvable(an_update(), "updates[0]")
    with pytest.raises(Conflict, match="update 5034123 expired at 2026-03-10T12:00:00") as raised:
        check_approvable(an_update(expired_at=NOW), "updates[0]")
    assert raised.value.field == "updates[0]"


# What changed after inheritance.


def test_changes_are_upserts_and_removals_parents_first() -> None:
    wanted = effective(GROUPS.tree, {ROOT: operator()})
    stored = {LAB: Effective.set_on(LAB, operator("uninstall"))}
    diff = changes(GROUPS.tree, wanted, stored)
    assert diff.upserts == wanted
    assert diff.removed == []
    assert diff.changed == [ROOT, SITE, LAB]
    assert changes(GROUPS.tree, {}, stored).removed == [LAB]
    assert changes(GROUPS.tree, wanted, wanted).changed == []


def test_changes_compare_only_the_groups_given() -> None:
    wanted = effective(GROUPS.tree, {ROOT: operator()})
    diff = changes(GROUPS.tree, wanted, {}, only=[LAB])
    assert list(diff.upserts) == [LAB]
    assert diff.changed == [LAB]


# Update states and lists.


def test_update_states() -> None:
    assert states(an_update(), 0) == ["new"]
    assert states(an_update(), 2) == ["approved"]
    assert states(an_update(declined_at=NOW), 2) == ["declined"]
    assert states(an_update(superseded_by=["x"], expired_at=NOW, origin="third_party"), 0) == [
        "new",
        "superseded",
        "expired",
        "third_party",
    ]


def test_lists_hide_declined_updates_unless_asked_for() -> None:
    declined = ListedUpdate(an_update(declined_at=NOW), 0)
    approved = ListedUpdate(an_update(), 1)
    assert not shown(declined, [])
    assert shown(approved, [])
    assert shown(declined, ["declined"])
    assert not shown(approved, ["new", "declined"])
    listed = view(approved)
    assert listed.states == ["approved"]
    assert listed.approved_groups == 1
    assert not listed.expired
    assert not listed.declined


def test_references() -> None:
    assert str(as_id(SITE)) == SITE
    assert as_id("Site") is None
    assert kb_number(" kb5034123 ") == "5034123"
    assert kb_number("5034123") == "5034123"
    assert search_text(" KB5034 ") == "5034"
    assert search_text("kb5034") == "5034"
    assert search_text("") is None
    assert search_text(None) is None


# Groups.


def test_group_names_are_trimmed_and_never_blank() -> None:
    assert clean_name("  Lab ") == "Lab"
    with pytest.raises(InvalidInput, match="cannot be blank"):
        clean_name("   ")


def test_all_computers_cannot_be_renamed_deleted_or_filled() -> None:
    check_renamable(SITE)
    check_member_group(SITE)
    with pytest.raises(Conflict, match="cannot be renamed"):
        check_renamable(ROOT)
    with pytest.raises(Conflict, match="cannot be deleted"):
        check_deletable(GROUPS, ROOT, 0, [])
    with pytest.raises(InvalidInput, match="always in All computers"):
        check_member_group(ROOT)


@pytest.mark.parametrize(
    ("group", "members", "rules", "message"),
    [
        (SITE, 0, [], "'Site' has child groups \\(Lab\\)"),
        (LAB, 3, [], "'Lab' still has 3 computer\\(s\\)"),
        (LAB, 0, ["Critical", "Monthly"], "rules target 'Lab' \\(Critical, Monthly\\)"),
    ],
)
def test_only_empty_groups_are_deleted(
    group: str, members: int, rules: list[str], message: str
) -> None:
    with pytest.raises(Conflict, match=message):
        check_deletable(GROUPS, group, members, rules)


def test_an_empty_group_can_be_deleted() -> None:
    check_deletable(GROUPS, LAB, 0, [])


def test_unknown_computers_are_named_five_at_most() -> None:
    check_known_computers(["a", "b"], {"a", "b", "c"})
    wanted = [f"pc{i}" for i in range(7)]
    with pytest.raises(NotFound, match=r"7 are not managed computers \(pc0, .*, pc4 \.\.\.\)"):
        check_known_computers(wanted, set())


def test_group_views_walk_the_tree_with_counts() -> None:
    counts = {ROOT: GroupCounts(5, 1), SITE: GroupCounts(2, 1), LAB: GroupCounts(1, 0)}
    found = views(GROUPS, counts)
    assert [(g.name, g.computers, g.children) for g in found] == [
        ("All computers", 5, 1),
        ("Site", 2, 1),
        ("Lab", 1, 0),
    ]
    assert found[2].path == ["All computers", "Site", "Lab"]


# Auto-approval rules.


def test_a_rule_is_defined_without_repeats() -> None:
    spec = a.RuleSpec(
        name="  Critical ",
        products=["Windows 11", "Windows 10", "Windows 11"],
        classifications=["Security Updates", "Critical Updates", "Security Updates"],
        title_contains="",
        groups=["Lab"],
    )
    rule = define(spec, rule_id="r", group_ids=[LAB, SITE, LAB], created_at=NOW, now=NOW)
    assert rule.name == "Critical"
    assert rule.products == ["Windows 10", "Windows 11"]
    assert rule.classifications == ["Critical Updates", "Security Updates"]
    assert rule.title_contains is None
    assert rule.group_ids == [LAB, SITE]


def test_a_rule_looks_at_the_update_it_is_given() -> None:
    rule = a_rule(products=["windows 11"])
    assert matches(criteria(rule), candidate(an_update()))
    assert not matches(criteria(rule), candidate(an_update(declined_at=NOW)))
    assert not matches(criteria(rule), candidate(an_update(superseded_by=["x"])))
    assert not matches(criteria(rule), candidate(an_update(product_families=["Office"])))


def test_rule_approvals_leave_explicit_ones_and_unknown_groups_alone() -> None:
    gone = "00000000-0000-0000-0000-0000000000ff"
    rule = a_rule(group_ids=[SITE, LAB, gone])
    found = approvals_by(rule, GROUPS, {"u1": {}, "u2": {LAB: operator("do_not_install")}}, NOW)
    assert [(e.update_id, e.group_id) for e in found] == [("u1", SITE), ("u1", LAB), ("u2", SITE)]
    value = found[0].explicit
    assert value == Explicit(
        "required_install",
        Deadline("one_week", NOW + timedelta(weeks=1)),
        NOW,
        "rule:00000000-0000-0000-0000-0000000000c1",
    )


# What events and queries show.


def test_group_state_says_why() -> None:
    update = an_update()
    explicit = {ROOT: operator()}
    wanted = effective(GROUPS.tree, explicit)
    here = group_state(GROUPS, update, ROOT, explicit[ROOT], wanted[ROOT])
    assert here.why == "explicit here"
    assert here.explicit is not None
    assert here.explicit.source_group_name == "All computers"
    below = group_state(GROUPS, update, LAB, None, wanted[LAB])
    assert below.why == "inherited from All computers"
    assert below.explicit is None
    assert group_state(GROUPS, update, LAB, None, None).why == "not approved"


def test_computer_approval_names_groups_in_conflicts() -> None:
    pairs = {
        "u1": [
            (SITE, Effective.set_on(SITE, operator("uninstall"))),
            (LAB, Effective.set_on(LAB, operator("required_install"))),
        ]
    }
    resolved = resolve_each(pairs)
    assert list(resolved) == ["u1"]
    shown_to_operator = computer_approval(GROUPS, an_update(), resolved["u1"])
    assert shown_to_operator.action == "required_install"
    assert shown_to_operator.from_groups == ["Lab"]
    assert shown_to_operator.conflict == "uninstall in Site overruled by required install"
    assert resolve_each({"u2": []}) == {}
