"""Approving: a choice made into an explicit approval, what changed after inheritance, and the
(group, update) state events and queries show (docs/product.md section 5)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.contracts import approval as a
from libs.service.errors import InvalidInput
from services.approval.domain import deadlines
from services.approval.domain.groups import Groups
from services.approval.domain.resolution import Resolved
from services.approval.domain.tree import Effective, Explicit, Paused, Tree, effective
from services.approval.domain.updates import Update


@dataclass(frozen=True)
class ExplicitApproval:
    """An explicit approval with the (update, group) it is set on."""

    update_id: str
    group_id: str
    explicit: Explicit


@dataclass(frozen=True)
class GroupApproval:
    """An update that applies to a group: what applies, and what is set there if anything."""

    update: Update
    explicit: Explicit | None
    effective: Effective


@dataclass(frozen=True)
class Changes:
    """How one update's stored effective approvals must change to match its explicit ones."""

    upserts: dict[str, Effective]
    removed: list[str]
    changed: list[str]
    """Groups that changed (upserted or removed), parents before children."""


def changes(
    tree: Tree,
    wanted: Mapping[str, Effective],
    stored: Mapping[str, Effective],
    only: Collection[str] | None = None,
) -> Changes:
    """Compare what should apply with what is stored; `only` limits the comparison to the
    groups that may have changed (a moved subtree)."""
    scope = set(tree.parents) | set(stored) if only is None else set(only)
    upserts = {g: wanted[g] for g in scope if g in wanted and stored.get(g) != wanted[g]}
    removed = [g for g in scope if g in stored and g not in wanted]
    return Changes(upserts, removed, sorted([*upserts, *removed], key=tree.path))


@dataclass(frozen=True)
class Plan:
    """What an approval does to the explicit approvals of its updates (docs/product.md
    section 5), decided before anything is written, so a dry run shows the very same."""

    written: list[ExplicitApproval]
    """Explicit approvals to set; a group that already holds the same decision is left out."""
    dropped: int
    """(update, group) explicit approvals `inherit` removes."""
    after: dict[str, dict[str, Explicit]]
    """Each update's explicit approvals once the approval is applied, by group."""


def same_decision(held: Explicit | None, wanted: Explicit) -> bool:
    """The group already has this very approval (action, resolved deadline, who set it): a
    repeated call, such as a client retrying after a crash lost its answer, changes nothing,
    keeps when it was set and publishes no event. A relative deadline (`one_week`, ...,
    `as_soon_as_possible`) resolves anew at each call, so its repeat is a new decision."""
    return held is not None and (held.action, held.deadline, held.approved_by) == (
        wanted.action,
        wanted.deadline,
        wanted.approved_by,
    )


def plan(
    held: Mapping[str, Mapping[str, Explicit]], choices: Mapping[str, Explicit | None]
) -> Plan:
    """Apply the choices per group (None: `inherit`) to each update's explicit approvals
    (`held`: by update, then by group)."""
    written: list[ExplicitApproval] = []
    dropped = 0
    after: dict[str, dict[str, Explicit]] = {}
    for update_id, here in held.items():
        now = dict(here)
        for group, value in choices.items():
            if value is None:
                if now.pop(group, None) is not None:
                    dropped += 1
            elif not same_decision(here.get(group), value):
                written.append(ExplicitApproval(update_id, group, value))
                now[group] = value
        after[update_id] = now
    return Plan(written, dropped, after)


def previewed_groups(tree: Tree, chosen: Iterable[str]) -> list[str]:
    """The chosen groups and every group below one, parents before children (tree order)."""
    wanted = {group for top in chosen for group in tree.walk(top)}
    return [group for group in tree.walk() if group in wanted]


def explicit_choice(choice: a.GroupChoice, now: datetime, field: str, by: str) -> Explicit | None:
    """The explicit approval a choice sets (None: `inherit`), with its deadline resolved."""
    if choice.action == "inherit":
        if choice.deadline.kind != "none":
            raise InvalidInput(f"{field}.deadline: `inherit` takes no deadline", field=field)
        return None
    if choice.action not in a.ACTIONS_WITH_DEADLINE and choice.deadline.kind != "none":
        raise InvalidInput(
            f"{field}.deadline: {choice.deadline.kind!r} is not allowed with action "
            f"{choice.action!r}; deadlines apply to {' and '.join(a.ACTIONS_WITH_DEADLINE)}",
            field=f"{field}.deadline",
        )
    deadline = deadlines.resolve(choice.deadline.kind, choice.deadline.at, now)
    return Explicit(choice.action, deadline, now, by)


def pause_view(groups: Groups, pause: Paused) -> a.Pause:
    """A pause as events and queries show it."""
    return a.Pause(
        paused_by=pause.by,
        reason=pause.reason,
        paused_at=pause.at,
        group_id=pause.group,
        group_name=None if pause.group is None else groups.names.get(pause.group, pause.group),
    )


def approval_view(groups: Groups, value: Effective) -> a.Approval:
    return a.Approval(
        action=value.action,
        deadline=a.Deadline(kind=value.deadline.kind, at=value.deadline.at),
        source_group_id=value.source_group,
        source_group_name=groups.names[value.source_group],
        approved_at=value.approved_at,
        approved_by=value.approved_by,
        paused=None if value.paused is None else pause_view(groups, value.paused),
    )


def group_state(
    groups: Groups,
    update: Update,
    group_id: str,
    explicit: Explicit | None,
    effective_now: Effective | None,
) -> a.GroupApprovalState:
    """The (group, update) state as events and queries show it."""
    if effective_now is None:
        why = "not approved"
    elif effective_now.source_group == group_id:
        why = "explicit here"
    else:
        why = f"inherited from {groups.names[effective_now.source_group]}"
    return a.GroupApprovalState(
        group_id=group_id,
        group_name=groups.names[group_id],
        update_id=update.update_id,
        kb=update.kb,
        title=update.title,
        explicit=None
        if explicit is None
        else approval_view(groups, Effective.set_on(group_id, explicit)),
        effective=None if effective_now is None else approval_view(groups, effective_now),
        why=why,
    )


def fan_out(
    groups: Groups,
    update: Update,
    changed: Sequence[str],
    wanted: Mapping[str, Effective],
    cause: str,
    *,
    limit: int = a.GROUPS_PER_CHANGE,
) -> list[a.UpdateApprovalChanged]:
    """One update's change as Lockgate's read copies take it: the changed groups listed per
    approval that now applies to them (None: no longer approved), in the order given (parents
    before children), at most `limit` groups per event. A root approval over 10,000 groups
    is two events, whatever the number of computers."""
    by_value: dict[Effective | None, list[str]] = {}
    for group in changed:
        by_value.setdefault(wanted.get(group), []).append(group)
    events: list[a.UpdateApprovalChanged] = []
    for value, listed in by_value.items():
        view = None if value is None else approval_view(groups, value)
        events += [
            a.UpdateApprovalChanged(
                update_id=update.update_id,
                effective=view,
                group_ids=listed[first : first + limit],
                cause=cause,
            )
            for first in range(0, len(listed), limit)
        ]
    return events


def states_of(
    groups: Groups,
    update: Update,
    group_ids: Iterable[str],
    explicit: Mapping[str, Explicit],
    effective_now: Mapping[str, Effective],
) -> list[a.GroupApprovalState]:
    """The (group, update) states of these groups, in the order given."""
    return [
        group_state(groups, update, g, explicit.get(g), effective_now.get(g)) for g in group_ids
    ]


def approvals_of_update(
    groups: Groups,
    update: Update,
    explicit: Mapping[str, Explicit],
    effective_now: Mapping[str, Effective],
) -> list[a.GroupApprovalState]:
    """Every group where the update is set or applies, All computers first, in tree order."""
    return states_of(
        groups,
        update,
        (g for g in groups.tree.walk() if g in explicit or g in effective_now),
        explicit,
        effective_now,
    )


def rule_preview(
    groups: Groups,
    updates: Mapping[str, Update],
    held: Mapping[str, Mapping[str, Explicit]],
    written: Sequence[ExplicitApproval],
    limit: int,
) -> list[a.GroupApprovalState]:
    """The first `limit` of the approvals a rule would write, each with what its group would
    then have (inheritance worked out on the update's explicit approvals after the run)."""
    shown = written[:limit]
    listed = {e.update_id for e in shown}
    after: dict[str, dict[str, Explicit]] = {}
    for e in written:
        if e.update_id in listed:
            here = after.setdefault(e.update_id, dict(held.get(e.update_id, {})))
            here[e.group_id] = e.explicit
    wanted = {update_id: effective(groups.tree, here) for update_id, here in after.items()}
    return [
        group_state(
            groups,
            updates[e.update_id],
            e.group_id,
            e.explicit,
            wanted[e.update_id].get(e.group_id),
        )
        for e in shown
    ]


def computer_approval(groups: Groups, update: Update, resolved: Resolved) -> a.ComputerApproval:
    """What applies to a computer for one update, its groups and any conflict named."""
    conflict = resolved.conflict
    if conflict is not None:
        for group_id, name in groups.names.items():
            conflict = conflict.replace(group_id, name)
    return a.ComputerApproval(
        update_id=update.update_id,
        kb=update.kb,
        action=resolved.action,
        deadline=a.Deadline(kind=resolved.deadline.kind, at=resolved.deadline.at),
        from_groups=[groups.names[g] for g in resolved.groups],
        conflict=conflict,
    )
