"""The group tree and inheritance of approvals down it.

Rule (docs/product.md section 5, as the source states it): until *do not install*, *required
install* or *uninstall* is set explicitly on a child group, the action set on a parent is
inherited by all its children. *Available install* is not in that list, so an explicit
available install on a child holds only while no ancestor passes down one of the three.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from libs.contracts.approval import ActionName
from services.approval.domain.deadlines import Deadline

OVERRIDING: frozenset[ActionName] = frozenset({"required_install", "do_not_install", "uninstall"})
"""Explicit actions that stop inheritance from the parent."""


class TreeError(ValueError):
    """A change would break the tree (a cycle, a second root, an unknown parent)."""


@dataclass(frozen=True)
class Explicit:
    """An approval set on one group."""

    action: ActionName
    deadline: Deadline
    approved_at: datetime
    """When it was set (carried into the effective approval)."""
    approved_by: str


@dataclass(frozen=True)
class Paused:
    """A pause of an update's approval (domain/pauses.py): who, why, when, and the group it
    was set on (None: fleet-wide)."""

    by: str
    reason: str
    at: datetime
    group: str | None


@dataclass(frozen=True)
class Effective:
    """What applies to a group, and the group where it was set."""

    action: ActionName
    deadline: Deadline
    source_group: str
    approved_at: datetime
    approved_by: str
    paused: Paused | None = None
    """Set while the approval is paused here (domain/pauses.py `with_pauses`)."""

    @classmethod
    def set_on(cls, group: str, explicit: Explicit) -> Effective:
        return cls(
            explicit.action, explicit.deadline, group, explicit.approved_at, explicit.approved_by
        )


class Tree:
    """Groups by id with their parent; exactly one root."""

    def __init__(self, parents: Mapping[str, str | None]) -> None:
        roots = [group for group, parent in parents.items() if parent is None]
        if len(roots) != 1:
            raise TreeError(f"a tree has exactly one root, not {len(roots)}")
        self.root = roots[0]
        self.parents = dict(parents)
        self.children: dict[str, list[str]] = {group: [] for group in parents}
        for group, parent in parents.items():
            if parent is not None:
                if parent not in self.children:
                    raise TreeError(f"group {group} has an unknown parent {parent}")
                self.children[parent].append(group)
        for kids in self.children.values():
            kids.sort()
        if sum(1 for _ in self.walk()) != len(self.parents):
            raise TreeError("the parent links form a cycle")

    def walk(self, start: str | None = None) -> Iterator[str]:
        """Groups of a subtree, parents before children (depth first)."""
        stack = [self.root if start is None else start]
        while stack:
            group = stack.pop()
            yield group
            stack.extend(reversed(self.children[group]))

    def ancestors(self, group: str) -> list[str]:
        """From the group's parent up to the root."""
        found: list[str] = []
        parent = self.parents[group]
        while parent is not None:
            found.append(parent)
            parent = self.parents[parent]
        return found

    def path(self, group: str) -> list[str]:
        """From the root down to the group."""
        return [*reversed(self.ancestors(group)), group]

    def check_move(self, group: str, new_parent: str) -> None:
        """Refuse moving the root, or a group under itself or its own descendant."""
        if group == self.root:
            raise TreeError("All computers is the root and cannot move")
        if new_parent == group or group in self.ancestors(new_parent):
            raise TreeError(
                f"moving group {group} under {new_parent} would make a cycle: "
                "the new parent is the group itself or one of its descendants"
            )

    def moved(self, group: str, new_parent: str) -> Tree:
        self.check_move(group, new_parent)
        return Tree({**self.parents, group: new_parent})


def effective(tree: Tree, explicit: Mapping[str, Explicit]) -> dict[str, Effective]:
    """What applies to every group for one update, given the explicit approvals per group.

    Groups with nothing approved (here or above) are absent from the result.
    """
    result: dict[str, Effective] = {}
    stack: list[tuple[str, Effective | None]] = [(tree.root, None)]
    while stack:
        group, inherited = stack.pop()
        own = explicit.get(group)
        chosen: Effective | None
        if own is not None and own.action in OVERRIDING:
            chosen = Effective.set_on(group, own)
        elif inherited is not None and inherited.action in OVERRIDING:
            chosen = inherited
        elif own is not None:
            chosen = Effective.set_on(group, own)
        else:
            chosen = inherited
        if chosen is not None:
            result[group] = chosen
        stack.extend((child, chosen) for child in tree.children[group])
    return result
