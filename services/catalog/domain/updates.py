"""Rules for Microsoft updates: identity, merging what several documents say, revisions."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

from libs.contracts.catalog import DEFAULT_RETURN_CODES
from libs.service.errors import InvalidInput
from services.catalog.domain.model import SourceUpdate

_NAMESPACE = uuid.UUID("6c1b8a53-3d0e-4b7e-9a55-4f6f2a0c9d11")
_KB = re.compile(r"(?:KB)?(\d{4,8})", re.IGNORECASE)
_CODEC: TypeAdapter[SourceUpdate] = TypeAdapter(SourceUpdate)


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


def to_json(update: SourceUpdate) -> dict[str, Any]:
    """JSON-ready form of a source update (stored per document, hashed for revisions)."""
    data: dict[str, Any] = _CODEC.dump_python(update, mode="json")
    return data


def from_json(data: object) -> SourceUpdate:
    return _CODEC.validate_python(data)


def content_hash(update: SourceUpdate) -> str:
    """Changes exactly when the update's content changes (a new revision)."""
    canonical = json.dumps(to_json(update), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def catalog_fields(update: SourceUpdate) -> dict[str, Any]:
    """The stored content of a Microsoft update (UpdateSnapshot's static fields)."""
    return {
        "kb": update.kb,
        "title": update.title,
        "description": "",
        "classification": update.classification.value,
        "severity": update.severity.value if update.severity else None,
        "products": [
            {"product_id": p.product_id, "name": p.name, "family": p.family}
            for p in update.products
        ],
        "product_families": families(update),
        "cves": list(update.cves),
        "release_date": update.release_date.isoformat(),
        "restart": update.restart.value,
        "fixed_builds": list(update.fixed_builds),
        "url": update.url,
        "supersedes": list(update.supersedes),
        "size_bytes": None,
        "sha256": None,
        "return_codes": [r.model_dump() for r in DEFAULT_RETURN_CODES],
    }


def families(update: SourceUpdate) -> list[str]:
    return sorted({p.family for p in update.products})
