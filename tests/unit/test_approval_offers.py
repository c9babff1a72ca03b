"""Updates the catalog settings do not offer, as approval sees them (docs/product.md
section 2): hidden by default, shown by a filter, refused for approval, skipped by rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.service.errors import Conflict
from services.approval.domain.rules import Criteria, candidate, matches
from services.approval.domain.updates import (
    ListedUpdate,
    Update,
    check_approvable,
    offer_in,
    offer_told,
    shown,
    states,
    view,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
REASON = (
    "its product category SQL Server is not offered (offered products: Microsoft Office, Windows)"
)


def an_update(*, offered: bool = True, declined: bool = False) -> Update:
    return Update(
        update_id="7d3bd8e5-3a43-4b5e-9f0c-2a1a6a0e6f01",
        kb="5073031",
        revision=2,
        origin="microsoft",
        title="Security Update for SQL Server 2022",
        classification="Security Updates",
        severity="Important",
        product_families=["SQL Server"],
        release_date=NOW,
        superseded_by=[],
        expired_at=None,
        declined_at=NOW if declined else None,
        products=["SQL Server 2022"],
        supersedes=[],
        offered=offered,
        not_offered_because=None if offered else REASON,
    )


def test_an_update_not_offered_is_not_new_and_says_not_offered() -> None:
    """Nothing to decide on it (it cannot be approved), so it is not `new`; approvals made
    before it was withdrawn still show."""
    assert states(an_update(offered=False), 0) == ["not_offered"]
    assert states(an_update(offered=False), 2) == ["approved", "not_offered"]
    assert states(an_update(offered=False, declined=True), 0) == ["declined", "not_offered"]
    assert states(an_update(), 0) == ["new"]


def test_default_lists_hide_updates_not_offered_and_the_filter_shows_them() -> None:
    hidden = ListedUpdate(an_update(offered=False), 0)
    withdrawn_but_approved = ListedUpdate(an_update(offered=False), 1)
    assert not shown(hidden, [])
    assert not shown(withdrawn_but_approved, [])
    assert shown(hidden, ["not_offered"])
    assert shown(withdrawn_but_approved, ["approved"])
    assert not shown(hidden, ["new"])
    assert shown(ListedUpdate(an_update(), 0), [])
    listed = view(hidden)
    assert (listed.offered, listed.not_offered_because) == (False, REASON)
    assert "not_offered" in a.UPDATE_STATES


def test_approving_an_update_not_offered_is_refused_naming_it_and_what_is_offered() -> None:
    with pytest.raises(Conflict) as refused:
        check_approvable(an_update(offered=False), "updates[1]")
    message = str(refused.value)
    assert refused.value.field == "updates[1]"
    assert message.startswith("updates[1]: update KB5073031 (Security Update for SQL Server")
    assert "is not offered to computers" in message
    assert REASON in message
    assert "catalog settings" in message
    check_approvable(an_update(), "updates[0]")


def test_rules_skip_updates_not_offered() -> None:
    anything = Criteria(
        products=[], classifications=["Security Updates"], severities=[], title_contains=None
    )
    assert matches(anything, candidate(an_update()))
    assert not matches(anything, candidate(an_update(offered=False)))


def test_offers_read_from_snapshots_and_events() -> None:
    """Both carry the (revision, settings version) the decision was made on."""
    published = c.UPDATE_PUBLISHED.example
    assert published is not None
    snapshot = published.update.model_copy(
        update={"offered": False, "not_offered_because": REASON, "settings_version": 7}
    )
    offer = offer_in(snapshot)
    assert (offer.offered, offer.not_offered_because) == (False, REASON)
    assert (offer.revision, offer.settings_version) == (snapshot.revision, 7)
    event = c.UpdateOfferChanged(
        update_id=snapshot.update_id,
        kb=snapshot.kb,
        title=snapshot.title,
        offered=False,
        reason=REASON,
        revision=3,
        settings_version=8,
    )
    withdrawn = offer_told(event)
    assert (withdrawn.offered, withdrawn.not_offered_because) == (False, REASON)
    assert (withdrawn.revision, withdrawn.settings_version) == (3, 8)
    offered = offer_told(event.model_copy(update={"offered": True, "reason": "offered"}))
    assert (offered.offered, offered.not_offered_because) == (True, None)
