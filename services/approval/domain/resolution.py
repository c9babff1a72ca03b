"""One computer in several groups: the shared rule of libs/domain/resolution.py, over approval's
effective approvals."""

from __future__ import annotations

from collections.abc import Iterable

from libs.domain.resolution import PRECEDENCE, Resolved
from libs.domain.resolution import resolve as resolve_actions
from services.approval.domain.tree import Effective

__all__ = ["PRECEDENCE", "Resolved", "resolve"]


def resolve(approvals: Iterable[tuple[str, Effective]]) -> Resolved | None:
    """Resolve the (group id, effective approval) pairs of a computer's groups."""
    return resolve_actions((group, e.action, e.deadline) for group, e in approvals)
