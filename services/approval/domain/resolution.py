"""One computer in several groups: the shared rule of libs/domain/resolution.py, over approval's
effective approvals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from libs.domain.resolution import PRECEDENCE, Resolved
from libs.domain.resolution import resolve as resolve_actions
from services.approval.domain.tree import Effective

__all__ = ["PRECEDENCE", "Resolved", "resolve", "resolve_each"]


def resolve(approvals: Iterable[tuple[str, Effective]]) -> Resolved | None:
    """Resolve the (group id, effective approval) pairs of a computer's groups."""
    return resolve_actions((group, e.action, e.deadline) for group, e in approvals)


def resolve_each(
    per_update: Mapping[str, Sequence[tuple[str, Effective]]],
) -> dict[str, Resolved]:
    """Per update, what applies to a computer given its groups' effective approvals (updates
    none of its groups approves are absent)."""
    found: dict[str, Resolved] = {}
    for update_id, pairs in per_update.items():
        resolved = resolve(pairs)
        if resolved is not None:
            found[update_id] = resolved
    return found
