"""Auto-approval rules (docs/product.md section 3): a rule as kept, the updates it picks and
the approvals it makes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.contracts import approval as a
from services.approval.domain import deadlines
from services.approval.domain.approvals import ExplicitApproval
from services.approval.domain.groups import Groups
from services.approval.domain.tree import Explicit
from services.approval.domain.updates import Update


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
    offered: bool = True
    """False: outside the catalog settings (docs/product.md section 2)."""


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
    approves), expired (cannot be approved), declined (the operator said no) or not offered
    (the catalog settings leave it out, so it cannot be approved).
    """
    if update.superseded or update.expired or update.declined or not update.offered:
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


def criteria(rule: a.Rule) -> Criteria:
    return Criteria(rule.products, rule.classifications, rule.severities, rule.title_contains)


def candidate(update: Update) -> Candidate:
    return Candidate(
        product_families=update.product_families,
        classification=update.classification,
        severity=update.severity,
        title=update.title,
        superseded=bool(update.superseded_by),
        expired=update.expired_at is not None,
        declined=update.declined_at is not None,
        offered=update.offered,
    )


def define(
    spec: a.RuleSpec, *, rule_id: str, group_ids: Sequence[str], created_at: datetime, now: datetime
) -> a.Rule:
    """A rule as kept: name trimmed, filters sorted without repeats, groups without repeats."""
    return a.Rule(
        rule_id=rule_id,
        name=spec.name.strip(),
        description=spec.description,
        products=sorted(set(spec.products)),
        classifications=sorted(set(spec.classifications)),
        severities=sorted(set(spec.severities)),
        title_contains=spec.title_contains or None,
        group_ids=list(dict.fromkeys(group_ids)),
        deadline=spec.deadline,
        rollout=spec.rollout,
        created_at=created_at,
        updated_at=now,
    )


def approvals_by(
    rule: a.Rule,
    groups: Groups,
    explicit: Mapping[str, Mapping[str, Explicit]],
    now: datetime,
) -> list[ExplicitApproval]:
    """A rule's approvals of these updates (`explicit`: each update's explicit approvals by
    group): required install on its groups, with the rule's deadline counted from now.

    Groups that already hold an explicit approval of the update keep it: a rule leaves
    operators' choices alone.
    """
    deadline = deadlines.resolve(rule.deadline, None, now)
    value = Explicit("required_install", deadline, now, f"rule:{rule.rule_id}")
    return [
        ExplicitApproval(update_id, group, value)
        for update_id, set_here in explicit.items()
        for group in rule.group_ids
        if group in groups.names and group not in set_here
    ]
