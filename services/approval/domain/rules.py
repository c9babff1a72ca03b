"""Auto-approval rules: which updates a rule picks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """What a rule looks at in an update."""

    product_families: Sequence[str]
    classification: str
    severity: str | None
    title: str
    superseded: bool
    expired: bool
    declined: bool


@dataclass(frozen=True)
class Criteria:
    """A rule's filters: every non-empty one must match."""

    products: Sequence[str]
    classifications: Sequence[str]
    severities: Sequence[str]
    title_contains: str | None


def matches(criteria: Criteria, update: Candidate) -> bool:
    """Products (any shared; none listed: any) and classification, then the optional filters.

    A rule never picks an update that is superseded (the superseding one is what it
    approves), expired (cannot be approved) or declined (the operator said no).
    """
    if update.superseded or update.expired or update.declined:
        return False
    wanted = {p.casefold() for p in criteria.products}
    if wanted and not wanted & {p.casefold() for p in update.product_families}:
        return False
    if update.classification not in criteria.classifications:
        return False
    if criteria.severities and update.severity not in criteria.severities:
        return False
    title = criteria.title_contains
    return not title or title.casefold() in update.title.casefold()
