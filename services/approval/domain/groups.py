"""The group tree with names, and the rules for naming, deleting and filling groups."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from libs.contracts import approval as a
from libs.service.errors import Conflict, InvalidInput, NotFound
from services.approval.domain.tree import Tree


@dataclass(frozen=True)
class Groups:
    """The whole tree with names (a few thousand rows at most; loaded per change)."""

    tree: Tree
    names: dict[str, str]

    def group(self, group_id: str) -> a.Group:
        return a.Group(
            group_id=group_id,
            name=self.names[group_id],
            parent_id=self.tree.parents[group_id],
            path=[self.names[g] for g in self.tree.path(group_id)],
        )


@dataclass(frozen=True)
class GroupCounts:
    """A group's direct computers (All computers: every computer) and direct child groups."""

    computers: int
    children: int


def views(groups: Groups, counts: Mapping[str, GroupCounts]) -> list[a.GroupView]:
    """The whole tree, parents before children, with direct counts."""
    return [
        a.GroupView(
            **groups.group(group_id).model_dump(),
            computers=counts[group_id].computers,
            children=counts[group_id].children,
        )
        for group_id in groups.tree.walk()
    ]


def clean_name(name: str) -> str:
    """A group name as kept: surrounding blanks dropped, never empty."""
    name = name.strip()
    if not name:
        raise InvalidInput("name: a group name cannot be blank", field="name")
    return name


def check_renamable(group_id: str) -> None:
    if group_id == a.ROOT_GROUP_ID:
        raise Conflict("group: All computers cannot be renamed", field="group")


def check_deletable(groups: Groups, group_id: str, members: int, rules: Sequence[str]) -> None:
    """Only an empty group goes: no child groups, no computers, no rule targeting it, so
    nothing changes silently (the operator moves or removes them first)."""
    if group_id == a.ROOT_GROUP_ID:
        raise Conflict("group: All computers cannot be deleted", field="group")
    children = groups.tree.children[group_id]
    if children:
        names = ", ".join(groups.names[c] for c in children)
        raise Conflict(
            f"group: {groups.names[group_id]!r} has child groups ({names}); move or delete them "
            "first",
            field="group",
        )
    if members:
        raise Conflict(
            f"group: {groups.names[group_id]!r} still has {members} computer(s); remove them first",
            field="group",
        )
    if rules:
        raise Conflict(
            f"group: auto-approval rules target {groups.names[group_id]!r} ({', '.join(rules)}); "
            "edit them first",
            field="group",
        )


def check_member_group(group_id: str) -> None:
    """Membership of All computers is implicit: it cannot be changed."""
    if group_id == a.ROOT_GROUP_ID:
        raise InvalidInput(
            "group: every computer is always in All computers; choose another group",
            field="group",
        )


def check_known_computers(wanted: Sequence[str], known: Collection[str]) -> None:
    """Only computers whose agent has checked in can join or leave a group."""
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise NotFound(
            f"computers: {len(unknown)} are not managed computers ({shown}); a computer is "
            "known once its agent has checked in",
            field="computers",
        )
