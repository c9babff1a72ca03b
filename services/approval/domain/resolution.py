"""One computer in several groups: which approval wins, per update.

[decided] (DOMAIN.md section 5): required install beats uninstall and the conflict is
reported; among the groups whose action wins, the earliest deadline wins. Do not install
alone means "report applicability only". The other orders follow the same spirit: an
action that installs or removes beats one that only offers (available install), which
beats doing nothing (do not install).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from libs.contracts.approval import ActionName
from services.approval.domain.deadlines import Deadline, earliest
from services.approval.domain.tree import Effective

PRECEDENCE: tuple[ActionName, ...] = (
    "required_install",
    "uninstall",
    "available_install",
    "do_not_install",
)


@dataclass(frozen=True)
class Resolved:
    """The winning action for one computer and one update."""

    action: ActionName
    deadline: Deadline
    groups: tuple[str, ...]
    """The groups whose approval won (sorted)."""
    conflict: str | None


def resolve(approvals: Iterable[tuple[str, Effective]]) -> Resolved | None:
    """Resolve the effective approvals of a computer's groups (group id, approval) pairs.

    The result does not depend on the order of the pairs.
    """
    by_action: dict[ActionName, list[tuple[str, Effective]]] = {}
    for group, approval in approvals:
        by_action.setdefault(approval.action, []).append((group, approval))
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
            deadline=earliest([approval.deadline for _, approval in winners]),
            groups=tuple(sorted(group for group, _ in winners)),
            conflict=conflict,
        )
    return None
