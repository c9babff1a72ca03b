"""Approving: a choice made into an explicit approval, what changed after inheritance, and the
(group, update) state events and queries show (docs/product.md section 5)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from libs.contracts import approval as a
from libs.service.errors import InvalidInput
from services.approval.domain import deadlines
from services.approval.domain.groups import Groups
from services.approval.domain.resolution import Resolved
from services.approval.domain.tree import Effective, Explicit, Tree
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


def approval_view(groups: Groups, value: Effective) -> a.Approval:
    return a.Approval(
        action=value.action,
        deadline=a.Deadline(kind=value.deadline.kind, at=value.deadline.at),
        source_group_id=value.source_group,
        source_group_name=groups.names[value.source_group],
        approved_at=value.approved_at,
        approved_by=value.approved_by,
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
