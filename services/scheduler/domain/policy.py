"""Which policy applies to a computer in several groups.

[decided] (docs/product.md section 1): the policy assigned to the nearest group wins (the
computer's own group before a parent); ties go to the most recent assignment, and the
conflict is reported. No policy at all: the recommended values, and "no policy".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from libs.contracts.approval import ROOT_GROUP_ID
from libs.contracts.policies import RECOMMENDED, PolicySettings
from services.scheduler.domain.computers import PublishedPolicy
from services.scheduler.domain.plans import NO_POLICY, PolicyInForce


@dataclass(frozen=True)
class Assignment:
    """A policy assigned to a group at some instant."""

    policy_id: str
    group_id: str
    assigned_at: datetime


@dataclass(frozen=True)
class Chosen:
    """The policy in force for a computer (None: no policy) and any conflict."""

    assignment: Assignment | None
    conflict: str | None


@dataclass(frozen=True)
class PolicyContext:
    """Everything to choose each computer's policy: tree, assignments, settings by policy."""

    parents: dict[str, str | None]
    assignments: dict[str, Assignment]
    settings: dict[str, tuple[str, PolicySettings]]
    """(name, settings) per policy id."""


def effective_policy(
    groups: Iterable[str],
    parents: Mapping[str, str | None],
    assignments: Mapping[str, Assignment],
) -> Chosen:
    """Walk up from each of the computer's groups to the first group with a policy.

    All computers counts as a group of its own only for computers in no other group:
    for the others it is the ancestor every walk ends at, the farthest of all.
    """
    own = set(groups) - {ROOT_GROUP_ID} or {ROOT_GROUP_ID}
    candidates: list[tuple[int, Assignment]] = []
    for group in own:
        node: str | None = group
        distance = 0
        while node is not None:
            if node in assignments:
                candidates.append((distance, assignments[node]))
                break
            node, distance = parents.get(node), distance + 1
    if not candidates:
        return Chosen(None, None)
    distance, best = min(
        candidates, key=lambda c: (c[0], -c[1].assigned_at.timestamp(), c[1].policy_id)
    )
    policies = {a.policy_id for _, a in candidates}
    conflict = None
    if len(policies) > 1:
        conflict = (
            f"the computer's groups carry {len(policies)} policies; the nearest group's "
            f"(distance {distance}, most recently assigned on a tie) wins"
        )
    return Chosen(best, conflict)


def policy_in_force(groups: Iterable[str], context: PolicyContext) -> PolicyInForce:
    """The policy a computer in these groups follows, or the recommended values and
    "no policy" when none of its groups (nor their ancestors) carries one."""
    chosen = effective_policy(groups, context.parents, context.assignments)
    if chosen.assignment is None:
        return PolicyInForce(None, NO_POLICY, RECOMMENDED, None)
    name, settings = context.settings[chosen.assignment.policy_id]
    return PolicyInForce(chosen.assignment.policy_id, name, settings, chosen.conflict)


def policy_to_announce(
    published: PublishedPolicy | None, in_force: PolicyInForce
) -> PublishedPolicy | None:
    """What to announce of a computer's policy in force: None while it is the one last
    announced (by id, by name, so a renamed policy is announced again, and by deadline
    spread); the policy in force when it differs or nothing was announced yet (a new
    computer, "no policy" included)."""
    now_in_force = PublishedPolicy(
        in_force.policy_id, in_force.name, in_force.settings.deadline_spread_hours
    )
    return None if published == now_in_force else now_in_force
