"""When the scheduler announces a computer's policy in force
(scheduler.computer.policy-changed.v1): only when it differs from the one last announced."""

from __future__ import annotations

from libs.contracts.policies import RECOMMENDED
from services.scheduler.domain.computers import PublishedPolicy
from services.scheduler.domain.plans import NO_POLICY, PolicyInForce
from services.scheduler.domain.policy import policy_to_announce

NIGHTS = PolicyInForce("p-1", "Nights", RECOMMENDED, None)
NONE = PolicyInForce(None, NO_POLICY, RECOMMENDED, None)


def test_a_computer_never_announced_is_announced_even_with_no_policy() -> None:
    assert policy_to_announce(None, NONE) == PublishedPolicy(None, NO_POLICY)
    assert policy_to_announce(None, NIGHTS) == PublishedPolicy("p-1", "Nights")


def test_the_policy_last_announced_is_not_announced_again() -> None:
    assert policy_to_announce(PublishedPolicy("p-1", "Nights"), NIGHTS) is None
    assert policy_to_announce(PublishedPolicy(None, NO_POLICY), NONE) is None
    conflicted = PolicyInForce("p-1", "Nights", RECOMMENDED, "two policies")
    assert policy_to_announce(PublishedPolicy("p-1", "Nights"), conflicted) is None


def test_a_different_policy_no_policy_or_a_new_name_is_announced() -> None:
    assert policy_to_announce(PublishedPolicy("p-1", "Nights"), NONE) == PublishedPolicy(
        None, NO_POLICY
    )
    assert policy_to_announce(PublishedPolicy(None, NO_POLICY), NIGHTS) == PublishedPolicy(
        "p-1", "Nights"
    )
    other = PolicyInForce("p-2", "Nights", RECOMMENDED, None)
    assert policy_to_announce(PublishedPolicy("p-1", "Nights"), other) == PublishedPolicy(
        "p-2", "Nights"
    )
    renamed = PolicyInForce("p-1", "Late nights", RECOMMENDED, None)
    assert policy_to_announce(PublishedPolicy("p-1", "Nights"), renamed) == PublishedPolicy(
        "p-1", "Late nights"
    )


def test_a_changed_deadline_spread_is_announced_with_the_same_policy() -> None:
    spread = PolicyInForce(
        "p-1", "Nights", RECOMMENDED.model_copy(update={"deadline_spread_hours": 8}), None
    )
    assert policy_to_announce(PublishedPolicy("p-1", "Nights"), spread) == PublishedPolicy(
        "p-1", "Nights", 8
    )
    assert policy_to_announce(PublishedPolicy("p-1", "Nights", 8), spread) is None
    assert policy_to_announce(PublishedPolicy("p-1", "Nights", 8), NIGHTS) == PublishedPolicy(
        "p-1", "Nights", 0
    )
