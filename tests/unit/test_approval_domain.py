"""The approval service's pure domain rules: group tree, inheritance, resolution, deadlines
and auto-approval rule matching (docs/product.md sections 3 and 5)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.contracts.approval import ACTIONS, ActionName, DeadlineKind
from services.approval.domain import deadlines
from services.approval.domain.deadlines import NO_DEADLINE, Deadline, add_month, earliest
from services.approval.domain.resolution import PRECEDENCE, resolve
from services.approval.domain.rules import Candidate, Criteria, matches
from services.approval.domain.tree import (
    OVERRIDING,
    Effective,
    Explicit,
    Tree,
    TreeError,
    effective,
)

# No example database: the tests must leave nothing behind in the working tree.
PROPERTY = settings(max_examples=60, database=None, deadline=None)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DATED_KINDS: tuple[DeadlineKind, ...] = (
    "as_soon_as_possible",
    "custom",
    "one_week",
    "two_weeks",
    "one_month",
)


# --- strategies and helpers ------------------------------------------------------------------


def explicit(action: ActionName, deadline: Deadline = NO_DEADLINE, tag: int = 0) -> Explicit:
    """An explicit approval; `tag` makes approvals set at different times tell apart."""
    return Explicit(
        action=action,
        deadline=deadline,
        approved_at=NOW + timedelta(minutes=tag),
        approved_by="operator",
    )


deadline_values = st.one_of(
    st.just(NO_DEADLINE),
    st.builds(
        Deadline,
        kind=st.sampled_from(DATED_KINDS),
        at=st.datetimes(
            min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
            max_value=datetime(2100, 1, 1),  # noqa: DTZ001
            timezones=st.just(UTC),
        ),
    ),
)


@st.composite
def trees(draw: st.DrawFn, max_size: int = 40) -> Tree:
    """A random tree: each group hangs under one created before it; names are shuffled so
    the alphabetical order of children differs from the order of creation."""
    size = draw(st.integers(min_value=1, max_value=max_size))
    names = draw(st.permutations([f"g{i:02d}" for i in range(size)]))
    parents: dict[str, str | None] = {names[0]: None}
    for i in range(1, size):
        parents[names[i]] = names[draw(st.integers(min_value=0, max_value=i - 1))]
    return Tree(parents)


@st.composite
def explicit_maps(draw: st.DrawFn, tree: Tree) -> dict[str, Explicit]:
    """Random explicit approvals (any of the four actions, or none) on a tree's groups."""
    found: dict[str, Explicit] = {}
    for tag, group in enumerate(sorted(tree.parents)):
        action = draw(st.one_of(st.none(), st.sampled_from(ACTIONS)))
        if action is not None:
            found[group] = explicit(action, draw(deadline_values), tag)
    return found


def subtree(tree: Tree, group: str) -> set[str]:
    return set(tree.walk(group))


def effective_of(group: str, action: ActionName, deadline: Deadline = NO_DEADLINE) -> Effective:
    return Effective(action, deadline, group, NOW, "operator")


# --- 1. setting an approval never reaches outside the group's subtree ------------------------


@PROPERTY
@given(data=st.data())
def test_explicit_change_only_affects_the_groups_subtree(data: st.DataObject) -> None:
    """Setting, changing or removing an approval on a group must never alter what applies
    to a group outside that group's subtree (siblings, ancestors, cousins)."""
    tree = data.draw(trees())
    before_explicit = data.draw(explicit_maps(tree))
    target = data.draw(st.sampled_from(sorted(tree.parents)))
    new_action = data.draw(st.one_of(st.none(), st.sampled_from(ACTIONS)))
    after_explicit = dict(before_explicit)
    if new_action is None:
        after_explicit.pop(target, None)
    else:
        after_explicit[target] = explicit(new_action, data.draw(deadline_values), tag=999)

    before = effective(tree, before_explicit)
    after = effective(tree, after_explicit)

    inside = subtree(tree, target)
    for group in tree.parents:
        if group not in inside:
            assert before.get(group) == after.get(group), group


# --- 2. inheritance --------------------------------------------------------------------------


def check_inheritance_rule(
    tree: Tree, given_explicit: Mapping[str, Explicit], result: Mapping[str, Effective]
) -> None:
    """The rule of tree.py's docstring, checked group by group against the parent's result."""
    for group, parent in tree.parents.items():
        own = given_explicit.get(group)
        passed_down = result.get(parent) if parent is not None else None
        got = result.get(group)
        if own is None:
            assert got == passed_down, group
        elif own.action in OVERRIDING:
            assert got == Effective.set_on(group, own), group
            assert got.source_group == group
        elif passed_down is not None and passed_down.action in OVERRIDING:
            # available install under an inherited required / do not install / uninstall
            assert got == passed_down, group
        else:
            assert got == Effective.set_on(group, own), group


@PROPERTY
@given(data=st.data())
def test_effective_follows_the_inheritance_rule(data: st.DataObject) -> None:
    """No explicit approval: exactly the parent's; an explicit overriding action: itself;
    an explicit available install: itself unless an ancestor passes down an overriding one."""
    tree = data.draw(trees())
    given_explicit = data.draw(explicit_maps(tree))
    result = effective(tree, given_explicit)
    check_inheritance_rule(tree, given_explicit, result)
    assert set(result) <= set(tree.parents)


@PROPERTY
@given(data=st.data())
def test_effective_source_group_is_an_ancestor_or_self_with_that_explicit(
    data: st.DataObject,
) -> None:
    """What applies to a group was set explicitly on the group or on one of its ancestors,
    and is exactly what was set there."""
    tree = data.draw(trees())
    given_explicit = data.draw(explicit_maps(tree))
    for group, got in effective(tree, given_explicit).items():
        assert got.source_group in tree.path(group)
        assert got == Effective.set_on(got.source_group, given_explicit[got.source_group])


def test_effective_three_levels_example() -> None:
    """Root required with a deadline; child inherits it; grandchild overrides with uninstall;
    great-grandchild inherits uninstall from the grandchild."""
    tree = Tree({"root": None, "child": "root", "grand": "child", "great": "grand"})
    week = Deadline("one_week", NOW + timedelta(weeks=1))
    root_approval = explicit("required_install", week, tag=1)
    grand_approval = explicit("uninstall", NO_DEADLINE, tag=2)

    result = effective(tree, {"root": root_approval, "grand": grand_approval})

    assert result["root"] == Effective.set_on("root", root_approval)
    assert result["root"].deadline == week
    assert result["child"] == Effective.set_on("root", root_approval)
    assert result["child"].source_group == "root"
    assert result["grand"] == Effective.set_on("grand", grand_approval)
    assert result["great"].action == "uninstall"
    assert result["great"].source_group == "grand"
    assert result["great"].approved_at == grand_approval.approved_at


def test_nothing_approved_means_absent() -> None:
    """Groups with nothing approved here or above are not in the result."""
    tree = Tree({"root": None, "a": "root", "b": "root", "a1": "a"})
    approval = explicit("do_not_install")
    result = effective(tree, {"a": approval})
    assert set(result) == {"a", "a1"}
    assert result["a1"].source_group == "a"
    assert effective(tree, {}) == {}


@pytest.mark.parametrize("ancestor_action", sorted(OVERRIDING))
def test_available_install_under_an_overriding_ancestor_is_not_applied(
    ancestor_action: ActionName,
) -> None:
    """Available install is not one of the three actions that stop inheritance (literal
    reading of the source): under an inherited overriding action, that action applies."""
    tree = Tree({"root": None, "mid": "root", "leaf": "mid"})
    root_approval = explicit(ancestor_action)
    result = effective(tree, {"root": root_approval, "leaf": explicit("available_install")})
    assert result["leaf"] == Effective.set_on("root", root_approval)


def test_available_install_holds_under_available_install() -> None:
    """An explicit available install holds where the parent passes down only an available
    install, and its subtree inherits it from there."""
    tree = Tree({"root": None, "mid": "root", "leaf": "mid"})
    mid_approval = explicit("available_install", tag=5)
    result = effective(tree, {"root": explicit("available_install", tag=1), "mid": mid_approval})
    assert result["root"].source_group == "root"
    assert result["mid"] == Effective.set_on("mid", mid_approval)
    assert result["leaf"] == Effective.set_on("mid", mid_approval)


# --- 3. one computer in several groups --------------------------------------------------------


@st.composite
def group_approvals(draw: st.DrawFn) -> list[tuple[str, Effective]]:
    """(group id, effective approval) pairs of one computer's groups, distinct groups."""
    count = draw(st.integers(min_value=0, max_value=8))
    return [
        (
            f"grp-{i}",
            effective_of(f"grp-{i}", draw(st.sampled_from(ACTIONS)), draw(deadline_values)),
        )
        for i in range(count)
    ]


@PROPERTY
@given(data=st.data())
def test_resolve_does_not_depend_on_input_order(data: st.DataObject) -> None:
    """The same groups listed in any order resolve to the same result."""
    pairs = data.draw(group_approvals())
    shuffled = data.draw(st.permutations(pairs))
    assert resolve(shuffled) == resolve(pairs)


@PROPERTY
@given(pairs=group_approvals())
def test_resolve_picks_precedence_then_earliest_deadline(
    pairs: list[tuple[str, Effective]],
) -> None:
    """The highest action present wins, with every group that set it, and the earliest of
    those groups' deadlines; a conflict is reported only for uninstall beaten by required."""
    result = resolve(pairs)
    if not pairs:
        assert result is None
        return
    assert result is not None
    present = {e.action for _, e in pairs}
    assert result.action == next(a for a in PRECEDENCE if a in present)
    winners = [(g, e) for g, e in pairs if e.action == result.action]
    assert result.groups == tuple(sorted(g for g, _ in winners))
    assert result.deadline in [e.deadline for _, e in winners]
    assert all(result.deadline.sort_key <= e.deadline.sort_key for _, e in winners)
    if any(e.deadline.at is not None for _, e in winners):
        assert result.deadline.at is not None
    if {"required_install", "uninstall"} <= present:
        assert result.conflict is not None
        for group, e in pairs:
            if e.action == "uninstall":
                assert group in result.conflict
    else:
        assert result.conflict is None


def test_required_beats_uninstall_and_reports_the_conflict() -> None:
    """[decided] Uninstall and required in conflict: required wins, the conflict names the
    uninstall groups, and the uninstall deadline plays no part."""
    in_a_day = Deadline("custom", NOW + timedelta(days=1))
    in_a_week = Deadline("one_week", NOW + timedelta(weeks=1))
    result = resolve(
        [
            ("Retire-Old", effective_of("Retire-Old", "uninstall", in_a_day)),
            ("Pilot", effective_of("Pilot", "required_install", in_a_week)),
            ("Lab", effective_of("Lab", "uninstall", NO_DEADLINE)),
        ]
    )
    assert result is not None
    assert result.action == "required_install"
    assert result.groups == ("Pilot",)
    assert result.deadline == in_a_week
    assert result.conflict is not None
    assert "Retire-Old" in result.conflict
    assert "Lab" in result.conflict
    assert "Pilot" not in result.conflict


def test_earliest_deadline_wins_and_none_loses_to_any_date() -> None:
    """Among the winning groups the earliest deadline applies; no deadline loses even to a
    far one."""
    far = Deadline("custom", datetime(2099, 12, 31, tzinfo=UTC))
    soon = Deadline("one_week", NOW + timedelta(weeks=1))
    pairs = [
        ("a", effective_of("a", "required_install", NO_DEADLINE)),
        ("b", effective_of("b", "required_install", far)),
    ]
    result = resolve(pairs)
    assert result is not None
    assert result.deadline == far
    assert result.groups == ("a", "b")

    result = resolve([*pairs, ("c", effective_of("c", "required_install", soon))])
    assert result is not None
    assert result.deadline == soon
    assert result.conflict is None

    only_none = resolve([("a", effective_of("a", "uninstall", NO_DEADLINE))])
    assert only_none is not None
    assert only_none.deadline == NO_DEADLINE


def test_do_not_install_alone_and_empty_input() -> None:
    """Do not install alone means report applicability only; no groups: nothing applies."""
    result = resolve(
        [
            ("x", effective_of("x", "do_not_install")),
            ("w", effective_of("w", "do_not_install")),
        ]
    )
    assert result is not None
    assert result.action == "do_not_install"
    assert result.groups == ("w", "x")
    assert result.conflict is None
    assert resolve([]) is None


# --- 4. the tree itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "parents",
    [
        pytest.param({}, id="empty"),
        pytest.param({"a": "b", "b": "a"}, id="no-root"),
        pytest.param({"r": None, "s": None}, id="two-roots"),
        pytest.param({"r": None, "a": "ghost"}, id="unknown-parent"),
        pytest.param({"r": None, "a": "b", "b": "a"}, id="cycle-beside-root"),
        pytest.param({"r": None, "a": "a"}, id="self-parent"),
        pytest.param({"r": None, "x": "r", "a": "c", "b": "a", "c": "b"}, id="three-cycle"),
    ],
)
def test_tree_refuses_broken_shapes(parents: dict[str, str | None]) -> None:
    """A tree has exactly one root, known parents and no cycle."""
    with pytest.raises(TreeError):
        Tree(parents)


def test_check_move_refuses_the_root() -> None:
    tree = Tree({"root": None, "a": "root"})
    with pytest.raises(TreeError):
        tree.check_move("root", "a")


def test_check_move_refuses_itself_and_every_descendant() -> None:
    """Not only the direct children: a great-grandchild is just as much a cycle."""
    tree = Tree({"root": None, "a": "root", "b": "a", "c": "b", "d": "c", "x": "root"})
    for new_parent in ("a", "b", "c", "d"):
        with pytest.raises(TreeError):
            tree.check_move("a", new_parent)
    tree.check_move("a", "x")
    tree.check_move("c", "root")
    tree.check_move("x", "d")


@PROPERTY
@given(tree=trees(max_size=20))
def test_check_move_refuses_exactly_moves_into_the_own_subtree(tree: Tree) -> None:
    """For every (group, new parent) pair: moving the root, or a group under itself or any
    of its descendants, is refused; every other move is accepted and yields a valid tree."""
    for group in tree.parents:
        inside = subtree(tree, group)
        for new_parent in tree.parents:
            if group == tree.root or new_parent in inside:
                with pytest.raises(TreeError):
                    tree.check_move(group, new_parent)
                continue
            tree.check_move(group, new_parent)
            moved = tree.moved(group, new_parent)
            assert moved.parents[group] == new_parent
            assert sorted(moved.walk()) == sorted(tree.parents)
            assert subtree(moved, group) == inside


@PROPERTY
@given(tree=trees())
def test_walk_yields_parents_first_and_every_group_once(tree: Tree) -> None:
    order = list(tree.walk())
    assert sorted(order) == sorted(tree.parents)
    assert order[0] == tree.root
    position = {group: i for i, group in enumerate(order)}
    for group, parent in tree.parents.items():
        if parent is not None:
            assert position[parent] < position[group]


@PROPERTY
@given(data=st.data())
def test_walk_from_a_group_is_its_subtree(data: st.DataObject) -> None:
    tree = data.draw(trees(max_size=25))
    start = data.draw(st.sampled_from(sorted(tree.parents)))
    order = list(tree.walk(start))
    assert order[0] == start
    assert len(order) == len(set(order))
    assert set(order) == {g for g in tree.parents if start in tree.path(g)}


# --- 5. deadlines ----------------------------------------------------------------------------


def test_deadline_none_and_as_soon_as_possible() -> None:
    assert deadlines.resolve("none", None, NOW) == NO_DEADLINE
    assert deadlines.resolve("as_soon_as_possible", None, NOW) == Deadline(
        "as_soon_as_possible", NOW
    )


def test_custom_deadline_in_the_past_is_as_soon_as_possible() -> None:
    past = NOW - timedelta(days=3)
    assert deadlines.resolve("custom", past, NOW) == Deadline("as_soon_as_possible", NOW)


def test_custom_deadline_in_the_future_is_kept_in_utc() -> None:
    paris_summer = timezone(timedelta(hours=2))
    at = datetime(2026, 4, 1, 9, 0, tzinfo=paris_summer)
    result = deadlines.resolve("custom", at, NOW)
    assert result == Deadline("custom", datetime(2026, 4, 1, 7, 0, tzinfo=UTC))
    assert result.at is not None
    assert result.at.utcoffset() == timedelta(0)
    assert result.at.tzinfo is UTC


def test_custom_deadline_needs_an_instant() -> None:
    with pytest.raises(ValueError, match="custom"):
        deadlines.resolve("custom", None, NOW)


@pytest.mark.parametrize(("kind", "days"), [("one_week", 7), ("two_weeks", 14)])
def test_relative_week_deadlines(kind: DeadlineKind, days: int) -> None:
    assert deadlines.resolve(kind, None, NOW) == Deadline(kind, NOW + timedelta(days=days))


@pytest.mark.parametrize(
    ("now", "due"),
    [
        pytest.param(
            datetime(2026, 1, 31, 10, 30, tzinfo=UTC),
            datetime(2026, 2, 28, 10, 30, tzinfo=UTC),
            id="31-jan-to-28-feb",
        ),
        pytest.param(
            datetime(2024, 1, 31, 10, 30, tzinfo=UTC),
            datetime(2024, 2, 29, 10, 30, tzinfo=UTC),
            id="leap-year",
        ),
        pytest.param(
            datetime(2026, 12, 15, 8, 0, tzinfo=UTC),
            datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
            id="year-end",
        ),
        pytest.param(
            # 1 Feb 01:00 at UTC+2 is still 31 Jan in UTC: the month is added in UTC
            datetime(2026, 2, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 2, 28, 23, 0, tzinfo=UTC),
            id="converted-to-utc-first",
        ),
    ],
)
def test_one_month_deadline(now: datetime, due: datetime) -> None:
    result = deadlines.resolve("one_month", None, now)
    assert result == Deadline("one_month", due)
    assert result.at is not None
    assert result.at.tzinfo is UTC


def test_earliest_of_nothing_is_no_deadline() -> None:
    assert earliest([]) == NO_DEADLINE


@PROPERTY
@given(
    at=st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone.min]),
    )
)
def test_custom_deadline_is_never_before_now(at: datetime) -> None:
    """Whatever instant is chosen, the deadline is due no earlier than the approval."""
    result = deadlines.resolve("custom", at, NOW)
    assert result.at is not None
    assert result.at >= NOW
    assert result.kind == ("custom" if at > NOW else "as_soon_as_possible")
    assert result.at == (at if at > NOW else NOW)


@PROPERTY
@given(
    instant=st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
def test_add_month_is_next_month_same_time_clamped_day(instant: datetime) -> None:
    later = add_month(instant)
    assert (later.year * 12 + later.month) - (instant.year * 12 + instant.month) == 1
    assert later.day == instant.day or (later.day < instant.day and (later + timedelta(1)).day == 1)
    assert later.time() == instant.time()
    assert later > instant


# --- 6. auto-approval rules --------------------------------------------------------------------


UPDATE = Candidate(
    product_families=["Windows 11", "Windows Server"],
    classification="Security Updates",
    severity="Critical",
    title="2026-02 Cumulative Update for Windows 11 Version 25H2",
    superseded=False,
    expired=False,
    declined=False,
)
RULE = Criteria(
    products=["windows 11"],
    classifications=["Security Updates", "Critical Updates"],
    severities=[],
    title_contains=None,
)


def test_rule_matches_a_shared_product_in_any_case() -> None:
    assert matches(RULE, UPDATE)
    assert matches(dataclasses.replace(RULE, products=["Office", "WINDOWS SERVER"]), UPDATE)
    assert not matches(dataclasses.replace(RULE, products=["Office"]), UPDATE)


def test_rule_without_products_matches_any_product() -> None:
    assert matches(dataclasses.replace(RULE, products=[]), UPDATE)
    assert matches(
        dataclasses.replace(RULE, products=[]),
        dataclasses.replace(UPDATE, product_families=["Visual Studio"]),
    )


def test_rule_classification_must_be_listed() -> None:
    assert not matches(dataclasses.replace(RULE, classifications=["Critical Updates"]), UPDATE)
    assert not matches(dataclasses.replace(RULE, classifications=[]), UPDATE)


def test_rule_severity_filter() -> None:
    assert matches(dataclasses.replace(RULE, severities=["Critical", "Important"]), UPDATE)
    assert not matches(dataclasses.replace(RULE, severities=["Important"]), UPDATE)
    no_severity = dataclasses.replace(UPDATE, severity=None)
    assert not matches(dataclasses.replace(RULE, severities=["Critical"]), no_severity)
    assert matches(RULE, no_severity)


def test_rule_title_filter_is_case_insensitive() -> None:
    assert matches(dataclasses.replace(RULE, title_contains="cumulative update"), UPDATE)
    assert matches(dataclasses.replace(RULE, title_contains="25H2"), UPDATE)
    assert not matches(dataclasses.replace(RULE, title_contains="Preview"), UPDATE)
    assert matches(dataclasses.replace(RULE, title_contains=""), UPDATE)


@pytest.mark.parametrize(
    "update",
    [
        pytest.param(dataclasses.replace(UPDATE, superseded=True), id="superseded"),
        pytest.param(dataclasses.replace(UPDATE, expired=True), id="expired"),
        pytest.param(dataclasses.replace(UPDATE, declined=True), id="declined"),
    ],
)
def test_rule_never_matches_superseded_expired_or_declined(update: Candidate) -> None:
    """The superseding update is the one to approve; expired cannot be; declined was refused."""
    anything = Criteria(
        products=[], classifications=["Security Updates"], severities=[], title_contains=None
    )
    assert matches(anything, UPDATE)
    assert not matches(anything, update)


@PROPERTY
@given(
    family=st.text(alphabet="abcdefghijklmnopqrstuvwxyz 0123456789", min_size=1, max_size=20),
    swaps=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_rule_product_match_ignores_case(family: str, swaps: list[bool]) -> None:
    shouted = "".join(c.upper() if s else c for c, s in zip(family, swaps, strict=False))
    update = dataclasses.replace(UPDATE, product_families=[shouted])
    assert matches(dataclasses.replace(RULE, products=[family]), update)
