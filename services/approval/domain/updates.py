"""What approval knows of an update (its read copy of the catalog) and the update states."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from libs.contracts import approval as a
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


@dataclass(frozen=True)
class ListedUpdate:
    """An update with the number of groups it is explicitly approved on."""

    update: Update
    approved_groups: int


def search_text(search: str | None) -> str | None:
    """What an update list's search looks for in titles and KB numbers."""
    return search.strip().removeprefix("KB").removeprefix("kb") if search else None


def states(update: Update, approved_groups: int) -> list[a.UpdateState]:
    found: list[a.UpdateState] = []
    if update.declined_at is not None:
        found.append("declined")
    elif approved_groups:
        found.append("approved")
    else:
        found.append("new")
    if update.superseded_by:
        found.append("superseded")
    if update.expired_at is not None:
        found.append("expired")
    if update.origin == "third_party":
        found.append("third_party")
    return found


def shown(listed: ListedUpdate, wanted: Collection[a.UpdateState]) -> bool:
    """Whether a list asking for these states shows the update: declined ones only when
    asked for."""
    have = set(states(listed.update, listed.approved_groups))
    return bool(set(wanted) & have) if wanted else "declined" not in have


def check_approvable(update: Update, field: str) -> None:
    if update.expired_at is not None:
        raise Conflict(
            f"{field}: update {update.kb or update.update_id} expired at "
            f"{update.expired_at.isoformat()}; expired updates cannot be approved",
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
    )
