"""One computer in several groups: which approval wins, per update.

Shared by approval (to show what applies to a computer) and scheduler (to plan it), so
both read the rule the same way. [decided] (docs/product.md section 5): required install beats
uninstall and the conflict is reported; among the groups whose action wins, the earliest
deadline wins. Do not install alone means "report applicability only". The other orders
follow the same spirit: an action that installs or removes beats one that only offers
(available install), which beats doing nothing (do not install).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from libs.contracts.approval import ActionName, DeadlineKind

PRECEDENCE: tuple[ActionName, ...] = (
    "required_install",
    "uninstall",
    "available_install",
    "do_not_install",
)


@dataclass(frozen=True)
class Deadline:
    """A resolved deadline; `at` is None only for kind `none` (no deadline)."""

    kind: DeadlineKind
    at: datetime | None

    @property
    def sort_key(self) -> datetime:
        """Earlier deadlines sort first; no deadline sorts last."""
        return self.at if self.at is not None else datetime.max.replace(tzinfo=UTC)


NO_DEADLINE = Deadline("none", None)


def earliest(deadlines: Iterable[Deadline]) -> Deadline:
    """The earliest deadline; `none` only when none has one."""
    return min(deadlines, key=lambda d: (d.sort_key, d.kind), default=NO_DEADLINE)


@dataclass(frozen=True)
class Resolved:
    """The winning action for one computer and one update."""

    action: ActionName
    deadline: Deadline
    groups: tuple[str, ...]
    """The groups whose approval won (sorted)."""
    conflict: str | None
    """Set when uninstall was overruled by required install; names the uninstall groups."""


def resolve(approvals: Iterable[tuple[str, ActionName, Deadline]]) -> Resolved | None:
    """Resolve (group id, action, deadline) of a computer's groups for one update.

    The result does not depend on the order of the input.
    """
    by_action: dict[ActionName, list[tuple[str, Deadline]]] = {}
    for group, action, deadline in approvals:
        by_action.setdefault(action, []).append((group, deadline))
    for action in PRECEDENCE:
        winners = by_action.get(action)
        if not winners:
            continue
        conflict = None
        if action == "required_install" and "uninstall" in by_action:
            losers = sorted(group for group, _ in by_action["uninstall"])
            conflict = "uninstall in " + ", ".join(losers) + " overruled by required install"
        return Resolved(
            action=action,
            deadline=earliest(deadline for _, deadline in winners),
            groups=tuple(sorted(group for group, _ in winners)),
            conflict=conflict,
        )
    return None
