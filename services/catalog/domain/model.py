"""The catalog's vocabulary: what an update is, as a source document describes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import BinaryIO, Protocol


class Classification(StrEnum):
    """Update classifications (docs/product.md section 2)."""

    CRITICAL_UPDATES = "Critical Updates"
    SECURITY_UPDATES = "Security Updates"
    DEFINITION_UPDATES = "Definition Updates"
    UPDATES = "Updates"
    UPDATE_ROLLUPS = "Update Rollups"
    SERVICE_PACKS = "Service Packs"
    FEATURE_PACKS = "Feature Packs"
    TOOLS = "Tools"
    DRIVERS = "Drivers"
    UPGRADES = "Upgrades"


THIRD_PARTY_CLASSIFICATIONS = (
    Classification.UPDATES,
    Classification.CRITICAL_UPDATES,
    Classification.SECURITY_UPDATES,
    Classification.UPDATE_ROLLUPS,
    Classification.SERVICE_PACKS,
)
"""Classifications an uploaded third-party update may take (docs/product.md section 4)."""


class Severity(StrEnum):
    """MSRC severity ratings, lowest first."""

    LOW = "Low"
    MODERATE = "Moderate"
    IMPORTANT = "Important"
    CRITICAL = "Critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class RestartBehaviour(StrEnum):
    """Whether installing the update restarts the computer."""

    NEVER = "never"
    MAY_REQUEST = "may_request"
    ALWAYS = "always"

    @property
    def rank(self) -> int:
        return list(RestartBehaviour).index(self)


@dataclass(frozen=True)
class Product:
    """A product an update applies to, as the source names it."""

    product_id: str
    name: str
    family: str


@dataclass(frozen=True)
class SourceUpdate:
    """One installable update (one KB) as a source document describes it, merged over CVEs."""

    kb: str
    """KB number without the `KB` prefix, e.g. `5074109`."""
    title: str
    products: tuple[Product, ...]
    classification: Classification
    severity: Severity | None
    """Highest MSRC severity over its CVEs; None when the document rates none."""
    cves: tuple[str, ...]
    release_date: datetime
    restart: RestartBehaviour
    fixed_builds: tuple[str, ...]
    url: str | None
    supersedes: tuple[str, ...]
    """KB numbers this update replaces."""
    subtype: str
    """The source's own category (e.g. `Security Update`, `Monthly Rollup`)."""


@dataclass(frozen=True)
class Advisory:
    """A fix not delivered as an installable update (release notes, Click to Run, ...)."""

    cve: str
    kind: str
    description: str
    url: str | None
    product_ids: tuple[str, ...]


@dataclass(frozen=True)
class SourceDocument:
    """Everything one source document (e.g. an MSRC monthly release) says."""

    source: str
    """Source name, e.g. `msrc`."""
    document_id: str
    """The document's own id, e.g. `2026-Jan`."""
    title: str
    release_date: datetime
    updates: tuple[SourceUpdate, ...]
    advisories: tuple[Advisory, ...]


class UpdateSource(Protocol):
    """A source of Microsoft updates (e.g. MSRC) that turns one document into catalog terms."""

    name: str

    def parse(self, stream: BinaryIO) -> SourceDocument:
        """Read one document of this source from a binary stream."""
        ...
