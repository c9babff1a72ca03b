"""What approval knows of an update (its read copy of the catalog) and the update states."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from libs.contracts import approval as a
from libs.contracts.catalog import UpdateOfferChanged, UpdateSnapshot
from libs.service.errors import Conflict


@dataclass(frozen=True)
class Update:
    update_id: str
    kb: str | None
    revision: int
    origin: str
    title: str
    classification: str
    severity: str | None
    product_families: list[str]
    release_date: datetime
    superseded_by: list[str]
    expired_at: datetime | None
    declined_at: datetime | None
    products: list[str]
    supersedes: list[str]
    offered: bool = True
    """Whether the catalog settings offer it (docs/product.md section 2)."""
    not_offered_because: str | None = None
    """The catalog's words for why not: classification or products against what is offered."""


@dataclass(frozen=True)
class Offer:
    """Whether the catalog offers an update, as one message says, with the revision and the
    settings version it was decided on (the newer decision in both wins)."""

    update_id: str
    offered: bool
    not_offered_because: str | None
    revision: int
    settings_version: int


def offer_in(snapshot: UpdateSnapshot) -> Offer:
    """What a published or revised snapshot says of the offer."""
    return Offer(
        update_id=snapshot.update_id,
        offered=snapshot.offered,
        not_offered_because=None if snapshot.offered else snapshot.not_offered_because,
        revision=snapshot.revision,
        settings_version=snapshot.settings_version,
    )


def offer_told(event: UpdateOfferChanged) -> Offer:
    """What an offered or withdrawn event says."""
    return Offer(
        update_id=event.update_id,
        offered=event.offered,
        not_offered_because=None if event.offered else event.reason,
        revision=event.revision,
        settings_version=event.settings_version,
    )


@dataclass(frozen=True)
class ListedUpdate:
    """An update with the number of groups it is explicitly approved on."""

    update: Update
    approved_groups: int


def search_text(search: str | None) -> str | None:
    """What an update list's search looks for in titles and KB numbers."""
    return search.strip().removeprefix("KB").removeprefix("kb") if search else None


def states(update: Update, approved_groups: int) -> list[a.UpdateState]:
    """Every state that applies. An update not offered is never `new` (nothing to decide:
    it cannot be approved); approvals made before it was withdrawn still show `approved`."""
    found: list[a.UpdateState] = []
    if update.declined_at is not None:
        found.append("declined")
    elif approved_groups:
        found.append("approved")
    elif update.offered:
        found.append("new")
    if not update.offered:
        found.append("not_offered")
    if update.superseded_by:
        found.append("superseded")
    if update.expired_at is not None:
        found.append("expired")
    if update.origin == "third_party":
        found.append("third_party")
    return found


HIDDEN_BY_DEFAULT: frozenset[a.UpdateState] = frozenset({"declined", "not_offered"})
"""States a list shows only when asked for them (docs/product.md sections 2 and 5)."""


def shown(listed: ListedUpdate, wanted: Collection[a.UpdateState]) -> bool:
    """Whether a list asking for these states shows the update: declined ones and those the
    catalog settings do not offer only when asked for (any state asked for that applies)."""
    have = set(states(listed.update, listed.approved_groups))
    return bool(set(wanted) & have) if wanted else not have & HIDDEN_BY_DEFAULT


def _named(update: Update) -> str:
    return f"KB{update.kb}" if update.kb else update.update_id


def check_approvable(update: Update, field: str) -> None:
    """Expired updates and updates the catalog settings do not offer cannot be approved."""
    if update.expired_at is not None:
        raise Conflict(
            f"{field}: update {update.kb or update.update_id} expired at "
            f"{update.expired_at.isoformat()}; expired updates cannot be approved",
            field=field,
        )
    if not update.offered:
        why = update.not_offered_because or "it is outside the catalog settings"
        raise Conflict(
            f"{field}: update {_named(update)} ({update.title}) is not offered to computers, "
            f"so it cannot be approved: {why}; to approve it, first offer its classification "
            "and product category in the catalog settings (`lockgate catalog settings`, "
            "PUT /api/v1/catalog/settings)",
            field=field,
        )


def view(listed: ListedUpdate) -> a.UpdateView:
    u, approved = listed.update, listed.approved_groups
    return a.UpdateView(
        id=u.update_id,
        update_id=u.update_id,
        kb=u.kb,
        revision=u.revision,
        title=u.title,
        origin=u.origin,
        classification=u.classification,
        severity=u.severity,
        product_families=u.product_families,
        release_date=u.release_date,
        products=u.products,
        states=states(u, approved),
        approved_groups=approved,
        supersedes=u.supersedes,
        superseded_by=u.superseded_by,
        expired=u.expired_at is not None,
        declined=u.declined_at is not None,
        offered=u.offered,
        not_offered_because=u.not_offered_because,
    )
