"""Updates as the catalog holds them; Microsoft updates' identity, merging and revisions."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, get_args

from pydantic import JsonValue, PlainSerializer, TypeAdapter

from libs.contracts.catalog import (
    CLASSIFICATIONS,
    ClassificationName,
    Origin,
    Package,
    ProductRef,
    RestartName,
    ReturnCode,
    SeverityName,
    UpdateDetail,
    UpdateSnapshot,
)
from libs.domain.agent_reports import DEFAULT_RETURN_CODES
from libs.service.errors import InvalidInput
from services.catalog.domain.model import Classification, RestartBehaviour, Severity, SourceUpdate
from services.catalog.domain.offers import OfferFacts, SettingsInForce, offer_for

_NAMESPACE = uuid.UUID("6c1b8a53-3d0e-4b7e-9a55-4f6f2a0c9d11")
_KB = re.compile(r"(?:KB)?(\d{4,8})", re.IGNORECASE)
_CODEC: TypeAdapter[SourceUpdate] = TypeAdapter(SourceUpdate)

_CLASSIFICATION_NAMES: Mapping[Classification, ClassificationName] = {
    Classification(name): name for name in CLASSIFICATIONS
}
_SEVERITY_NAMES: Mapping[Severity, SeverityName] = {
    Severity(name): name for name in get_args(SeverityName)
}
_RESTART_NAMES: Mapping[RestartBehaviour, RestartName] = {
    RestartBehaviour(name): name for name in get_args(RestartName)
}

IsoDatetime = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")
]
"""Stored as Python's isoformat (`+00:00`), as the catalog always wrote it."""


@dataclass(frozen=True)
class UpdateContent:
    """An update's current revision as stored (`updates.data`): UpdateSnapshot's static fields."""

    kb: str | None
    title: str
    description: str
    classification: ClassificationName
    severity: SeverityName | None
    products: tuple[ProductRef, ...]
    product_families: tuple[str, ...]
    cves: tuple[str, ...]
    release_date: IsoDatetime
    restart: RestartName
    fixed_builds: tuple[str, ...]
    url: str | None
    supersedes: tuple[str, ...]
    size_bytes: int | None
    sha256: str | None
    return_codes: tuple[ReturnCode, ...]
    package: Package | None = None
    """How to install it: third-party updates only (Microsoft updates store no package key)."""


_CONTENT: TypeAdapter[UpdateContent] = TypeAdapter(UpdateContent)


def content_json(content: UpdateContent) -> str:
    """The stored JSON of an update's content."""
    return _CONTENT.dump_json(
        content, exclude={"package"} if content.package is None else None
    ).decode()


def content_from_json(text: str) -> UpdateContent:
    return _CONTENT.validate_json(text)


@dataclass(frozen=True)
class StoredUpdate:
    """One update as the catalog holds it (a row of `updates`, with who supersedes it)."""

    update_id: str
    origin: Origin
    kb: str | None
    revision: int
    content_hash: str
    content: UpdateContent
    superseded_at: datetime | None
    expired_at: datetime | None
    superseded_by: tuple[str, ...]
    """Update ids of the updates in the catalog that replace it."""
    superseded_by_kbs: tuple[str, ...]


def offer_facts(stored: StoredUpdate) -> OfferFacts:
    """What the offer of a stored update depends on."""
    content = stored.content
    return OfferFacts(
        update_id=stored.update_id,
        kb=stored.kb,
        title=content.title,
        origin=stored.origin,
        revision=stored.revision,
        classification=content.classification,
        product_families=content.product_families,
    )


def snapshot(stored: StoredUpdate, in_force: SettingsInForce) -> UpdateSnapshot:
    """The event/API form of a stored update, offered or not under the settings in force."""
    content = stored.content
    offer = offer_for(offer_facts(stored), in_force.settings)
    return UpdateSnapshot(
        update_id=stored.update_id,
        revision=stored.revision,
        origin=stored.origin,
        kb=content.kb,
        title=content.title,
        description=content.description,
        classification=content.classification,
        severity=content.severity,
        products=list(content.products),
        product_families=list(content.product_families),
        cves=list(content.cves),
        release_date=content.release_date,
        restart=content.restart,
        fixed_builds=list(content.fixed_builds),
        url=content.url,
        supersedes=list(content.supersedes),
        superseded_by=list(stored.superseded_by),
        superseded_by_kbs=list(stored.superseded_by_kbs),
        expired=stored.expired_at is not None,
        size_bytes=content.size_bytes,
        sha256=content.sha256,
        return_codes=list(content.return_codes),
        package=content.package,
        offered=offer.offered,
        not_offered_because=None if offer.offered else offer.reason,
        settings_version=in_force.version,
    )


def detail(stored: StoredUpdate, in_force: SettingsInForce) -> UpdateDetail:
    """One update with when it was superseded and expired."""
    return UpdateDetail(
        update=snapshot(stored, in_force),
        superseded_at=stored.superseded_at,
        expired_at=stored.expired_at,
    )


@dataclass(frozen=True)
class UpdateRef:
    """An update as an operator names it: by update id or by KB number (one of the two)."""

    update_id: str | None = None
    kb: str | None = None


def update_reference(text: str) -> UpdateRef:
    """An update id (a UUID) or else a KB number (`KB5074109`, `5074109`)."""
    try:
        return UpdateRef(update_id=str(uuid.UUID(text)))
    except ValueError:
        return UpdateRef(kb=normalize_kb(text))


def normalize_kb(text: str) -> str:
    """`KB5074109`, `kb5074109` or `5074109` -> `5074109`; anything else is refused."""
    match = _KB.fullmatch(text.strip())
    if not match:
        raise InvalidInput(
            f"update {text!r} is not a KB number (e.g. 'KB5074109') or an update id",
            field="update",
        )
    return match.group(1)


def update_id_for_kb(kb: str) -> str:
    """The stable id of a Microsoft update: the same KB gets the same id everywhere."""
    return str(uuid.uuid5(_NAMESPACE, f"microsoft:KB{kb}"))


def merge(contributions: Sequence[SourceUpdate]) -> SourceUpdate:
    """One update from what every document says of a KB, whatever the import order.

    Sets are united, severity and restart take the highest, release date the earliest;
    descriptive fields (title, classification, url) come from the latest document.
    """
    if not contributions:
        raise ValueError("merge needs at least one contribution")
    ordered = sorted(contributions, key=lambda c: (c.release_date, c.title, c.url or ""))
    latest = ordered[-1]
    products = {p.product_id: p for c in ordered for p in c.products}
    severities = [c.severity for c in ordered if c.severity is not None]
    return replace(
        latest,
        products=tuple(products[key] for key in sorted(products)),
        cves=tuple(sorted({cve for c in ordered for cve in c.cves})),
        severity=max(severities, key=lambda s: s.rank) if severities else None,
        restart=max((c.restart for c in ordered), key=lambda r: r.rank),
        fixed_builds=tuple(sorted({b for c in ordered for b in c.fixed_builds})),
        supersedes=tuple(sorted({kb for c in ordered for kb in c.supersedes})),
        release_date=ordered[0].release_date,
    )


def to_json(update: SourceUpdate) -> dict[str, JsonValue]:
    """JSON-ready form of a source update (stored per document, hashed for revisions)."""
    data: dict[str, JsonValue] = _CODEC.dump_python(update, mode="json")
    return data


def from_json(data: JsonValue) -> SourceUpdate:
    return _CODEC.validate_python(data)


def content_hash(update: SourceUpdate) -> str:
    """Changes exactly when the update's content changes (a new revision)."""
    canonical = json.dumps(to_json(update), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def catalog_fields(update: SourceUpdate) -> UpdateContent:
    """The stored content of a Microsoft update."""
    return UpdateContent(
        kb=update.kb,
        title=update.title,
        description="",
        classification=_CLASSIFICATION_NAMES[update.classification],
        severity=_SEVERITY_NAMES[update.severity] if update.severity else None,
        products=tuple(
            ProductRef(product_id=p.product_id, name=p.name, family=p.family)
            for p in update.products
        ),
        product_families=tuple(families(update)),
        cves=update.cves,
        release_date=update.release_date,
        restart=_RESTART_NAMES[update.restart],
        fixed_builds=update.fixed_builds,
        url=update.url,
        supersedes=update.supersedes,
        size_bytes=None,
        sha256=None,
        return_codes=DEFAULT_RETURN_CODES,
    )


def families(update: SourceUpdate) -> list[str]:
    return sorted({p.family for p in update.products})
