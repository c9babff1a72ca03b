"""Streaming parser of MSRC CVRF 1.1 documents (the Security Update Guide's monthly releases)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, TypeVar
from xml.etree import ElementTree as ET
from xml.parsers import expat

from services.catalog.domain.model import (
    Advisory,
    Classification,
    Product,
    RestartBehaviour,
    Severity,
    SourceDocument,
    SourceUpdate,
)

CVRF_NS = "http://www.icasi.org/CVRF/schema/cvrf/1.1"
PROD_NS = "http://www.icasi.org/CVRF/schema/prod/1.1"
VULN_NS = "http://www.icasi.org/CVRF/schema/vuln/1.1"
NAMESPACES = {"cvrf": CVRF_NS, "prod": PROD_NS, "vuln": VULN_NS}

ROOT_TAG = f"{{{CVRF_NS}}}cvrfdoc"
BRANCH_TAG = f"{{{PROD_NS}}}Branch"
PRODUCT_TAG = f"{{{PROD_NS}}}FullProductName"
TRACKING_TAG = f"{{{CVRF_NS}}}DocumentTracking"
TITLE_TAG = f"{{{CVRF_NS}}}DocumentTitle"
VULNERABILITY_TAG = f"{{{VULN_NS}}}Vulnerability"

UNKNOWN_FAMILY = "Unknown"
DEFAULT_SUBTYPE = "Security Update"
"""Used when no remediation of a KB names a SubType: every MSRC document is a security release."""

CLASSIFICATION_BY_SUBTYPE: Mapping[str, Classification] = {
    "Security Update": Classification.SECURITY_UPDATES,
    "Security Only": Classification.SECURITY_UPDATES,
    "Security Hotpatch Update": Classification.SECURITY_UPDATES,
    "Monthly Rollup": Classification.UPDATE_ROLLUPS,
    "Servicing Stack Update": Classification.UPDATES,
    "Windows Update": Classification.UPDATES,
    "Critical Update": Classification.CRITICAL_UPDATES,
}
"""MSRC SubType -> classification; any other SubType is a security update (security releases)."""

RESTART_BY_VALUE: Mapping[str, RestartBehaviour] = {
    "yes": RestartBehaviour.ALWAYS,
    "maybe": RestartBehaviour.MAY_REQUEST,
    "no": RestartBehaviour.NEVER,
}
"""`RestartRequired` -> restart behaviour; a missing or unknown value may request a restart."""

SEVERITY_BY_NAME: Mapping[str, Severity] = {
    severity.value.lower(): severity for severity in Severity
}

KB_DESCRIPTION = re.compile(r"(?:KB)?(\d+)", re.IGNORECASE)
KB_TOKEN_SEPARATORS = re.compile(r"[\s,;]+")

_Ranked = TypeVar("_Ranked", Severity, RestartBehaviour)


class InvalidDocument(ValueError):
    """The input is not a well-formed MSRC CVRF document."""


@dataclass(frozen=True)
class _Remediation:
    """One `vuln:Remediation Type="Vendor Fix"`, as written."""

    description: str
    url: str | None
    supercedences: tuple[str, ...]
    product_ids: tuple[str, ...]
    restart: str | None
    subtype: str | None
    fixed_build: str | None


@dataclass
class _KbUpdate:
    """What all remediations naming one KB say so far, merged."""

    kb: str
    product_ids: set[str] = field(default_factory=set)
    cves: set[str] = field(default_factory=set)
    severity: Severity | None = None
    restart: RestartBehaviour | None = None
    fixed_builds: set[str] = field(default_factory=set)
    url: str | None = None
    supersedes: set[str] = field(default_factory=set)
    subtypes: Counter[str] = field(default_factory=Counter)

    def add(self, cve: str | None, remediation: _Remediation, severity: Severity | None) -> None:
        """Merge one CVE's remediation naming this KB."""
        self.product_ids.update(remediation.product_ids)
        if cve:
            self.cves.add(cve)
        self.severity = _highest(self.severity, severity)
        restart = RESTART_BY_VALUE.get((remediation.restart or "").strip().lower())
        self.restart = _highest(self.restart, restart or RestartBehaviour.MAY_REQUEST)
        if remediation.fixed_build:
            self.fixed_builds.add(remediation.fixed_build)
        if self.url is None:
            self.url = remediation.url
        for text in remediation.supercedences:
            self.supersedes.update(kb for kb in parse_kb_list(text) if kb != self.kb)
        if remediation.subtype:
            self.subtypes[remediation.subtype] += 1


@dataclass
class _Parse:
    """Everything read so far from one document."""

    document_id: str | None = None
    title: str | None = None
    release_date: datetime | None = None
    families: list[str | None] = field(default_factory=list)
    """Enclosing `Branch` elements: the family name for a product-family branch, else None."""
    products: dict[str, Product] = field(default_factory=dict)
    updates: dict[str, _KbUpdate] = field(default_factory=dict)
    advisories: list[Advisory] = field(default_factory=list)


def parse_cvrf(stream: BinaryIO, *, source: str = "msrc") -> SourceDocument:
    """Read one MSRC CVRF document element by element: one update per KB, the rest advisories."""
    state = _Parse()
    try:
        # S314: the standard library parser is deliberate here; it resolves no external
        # entities and expat >= 2.4 caps entity expansion (billion laughs).
        events = ET.iterparse(stream, events=("start", "end"))  # noqa: S314
        _consume(events, state)
    except ET.ParseError as error:
        line, column = error.position
        reason = expat.ErrorString(error.code) if error.code else str(error)
        raise InvalidDocument(
            f"malformed CVRF XML at line {line}, column {column}: {reason}"
        ) from error
    return _document(state, source)


def parse_kb_list(text: str | None) -> list[str]:
    """KB numbers in a `Supercedence` value: several may be separated by commas, `;` or spaces."""
    tokens = KB_TOKEN_SEPARATORS.split(text or "")
    return [number for token in tokens if (number := kb_number(token)) is not None]


def kb_number(text: str | None) -> str | None:
    """The KB number (digits, no prefix) if `text` is one, e.g. `KB5074109` -> `5074109`."""
    match = KB_DESCRIPTION.fullmatch((text or "").strip())
    return match.group(1) if match else None


def _consume(events: Iterator[tuple[str, ET.Element]], state: _Parse) -> None:
    """Handle elements as they end and drop them, so memory holds one vulnerability at most."""
    root: ET.Element | None = None
    depth = 0
    for event, element in events:
        if event == "start":
            if root is None:
                _check_root(element)
                root = element
            depth += 1
            if element.tag == BRANCH_TAG:
                state.families.append(_family_of(element))
            continue
        depth -= 1
        _on_end(element, state)
        if depth == 1 and root is not None:
            root.clear()  # this top-level child is fully handled: let it go


def _check_root(element: ET.Element) -> None:
    """Refuse anything but a CVRF 1.1 document before reading further."""
    if element.tag != ROOT_TAG:
        raise InvalidDocument(f"not a CVRF 1.1 document: root element is {element.tag!r}")


def _family_of(branch: ET.Element) -> str | None:
    """The family name of a `Branch Type="Product Family"`, None for any other branch."""
    if branch.get("Type") == "Product Family":
        return branch.get("Name") or UNKNOWN_FAMILY
    return None


def _on_end(element: ET.Element, state: _Parse) -> None:
    """Dispatch one completed element to what reads it."""
    tag = element.tag
    if tag == PRODUCT_TAG:
        _add_product(element, state)
        element.clear()
    elif tag == BRANCH_TAG:
        state.families.pop()
        element.clear()
    elif tag == VULNERABILITY_TAG:
        _add_vulnerability(element, state)
    elif tag == TRACKING_TAG:
        _read_tracking(element, state)
    elif tag == TITLE_TAG:
        state.title = (element.text or "").strip() or None


def _add_product(element: ET.Element, state: _Parse) -> None:
    """Record a product; the tree lists some twice, once inside its family and once flat."""
    product_id = (element.get("ProductID") or "").strip()
    if not product_id:
        return
    family = next((name for name in reversed(state.families) if name), None)
    known = state.products.get(product_id)
    name = (element.text or "").strip() or (known.name if known else product_id)
    if known is not None and family is None:
        family = known.family
    state.products[product_id] = Product(product_id, name, family or UNKNOWN_FAMILY)


def _read_tracking(element: ET.Element, state: _Parse) -> None:
    """Take the document id and initial release date from `DocumentTracking`."""
    state.document_id = (element.findtext("cvrf:Identification/cvrf:ID", "", NAMESPACES)).strip()
    released = (element.findtext("cvrf:InitialReleaseDate", "", NAMESPACES)).strip()
    if released:
        state.release_date = _utc(released)


def _utc(text: str) -> datetime:
    """A CVRF date as UTC; MSRC writes no offset, and its times are UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidDocument(f"InitialReleaseDate {text!r} is not an ISO 8601 date") from error
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _add_vulnerability(element: ET.Element, state: _Parse) -> None:
    """Merge a vulnerability's KB fixes into their updates; keep its other fixes as advisories."""
    cve = (element.findtext("vuln:CVE", "", NAMESPACES)).strip() or None
    severities = _severities(element)
    for remediation in _vendor_fixes(element):
        kb = kb_number(remediation.description)
        if kb is None:
            state.advisories.append(_advisory(cve, remediation))
            continue
        update = state.updates.setdefault(kb, _KbUpdate(kb))
        rated = (severities.get(product_id) for product_id in remediation.product_ids)
        update.add(cve, remediation, _max_severity(rated))


def _severities(vulnerability: ET.Element) -> dict[str, Severity]:
    """The highest `Threat Type="Severity"` per product id for one vulnerability."""
    by_product: dict[str, Severity] = {}
    for threat in vulnerability.iterfind("vuln:Threats/vuln:Threat", NAMESPACES):
        if threat.get("Type") != "Severity":
            continue
        description = (threat.findtext("vuln:Description", "", NAMESPACES)).strip()
        severity = SEVERITY_BY_NAME.get(description.lower())
        if severity is None:
            continue  # MSRC leaves some ratings empty: unrated, not an error
        for product_id in _texts(threat.iterfind("vuln:ProductID", NAMESPACES)):
            known = by_product.get(product_id)
            if known is None or severity.rank > known.rank:
                by_product[product_id] = severity
    return by_product


def _vendor_fixes(vulnerability: ET.Element) -> Iterator[_Remediation]:
    """The `Vendor Fix` remediations of one vulnerability."""
    for element in vulnerability.iterfind("vuln:Remediations/vuln:Remediation", NAMESPACES):
        if element.get("Type") != "Vendor Fix":
            continue
        yield _Remediation(
            description=(element.findtext("vuln:Description", "", NAMESPACES)).strip(),
            url=_optional_text(element, "vuln:URL"),
            supercedences=tuple(_texts(element.iterfind("vuln:Supercedence", NAMESPACES))),
            product_ids=tuple(_texts(element.iterfind("vuln:ProductID", NAMESPACES))),
            restart=_optional_text(element, "vuln:RestartRequired"),
            subtype=_optional_text(element, "vuln:SubType"),
            fixed_build=_optional_text(element, "vuln:FixedBuild"),
        )


def _advisory(cve: str | None, remediation: _Remediation) -> Advisory:
    """A fix delivered through its product's own channel (release notes, Click to Run, ...)."""
    return Advisory(
        cve=cve or "",
        kind=remediation.description or remediation.subtype or "Vendor Fix",
        description=remediation.description,
        url=remediation.url,
        product_ids=remediation.product_ids,
    )


def _document(state: _Parse, source: str) -> SourceDocument:
    """Assemble the parsed document once the whole stream has been read."""
    if not state.document_id:
        raise InvalidDocument("CVRF document has no DocumentTracking/Identification/ID")
    if state.release_date is None:
        raise InvalidDocument(
            f"CVRF document {state.document_id!r} has no DocumentTracking/InitialReleaseDate"
        )
    release_date = state.release_date
    ordered = sorted(state.updates.values(), key=lambda update: (len(update.kb), update.kb))
    return SourceDocument(
        source=source,
        document_id=state.document_id,
        title=state.title or state.document_id,
        release_date=release_date,
        updates=tuple(_source_update(update, state.products, release_date) for update in ordered),
        advisories=tuple(state.advisories),
    )


def _source_update(
    update: _KbUpdate, products: Mapping[str, Product], release_date: datetime
) -> SourceUpdate:
    """Freeze one merged KB into the catalog's model."""
    resolved = tuple(
        products.get(product_id) or Product(product_id, product_id, UNKNOWN_FAMILY)
        for product_id in sorted(update.product_ids)
    )
    subtype = _most_common(update.subtypes) or DEFAULT_SUBTYPE
    families = sorted({product.family for product in resolved}) or [UNKNOWN_FAMILY]
    return SourceUpdate(
        kb=update.kb,
        title=f"{release_date:%Y-%m} {subtype} for {', '.join(families)} (KB{update.kb})",
        products=resolved,
        classification=CLASSIFICATION_BY_SUBTYPE.get(subtype, Classification.SECURITY_UPDATES),
        severity=update.severity,
        cves=tuple(sorted(update.cves)),
        release_date=release_date,
        restart=update.restart or RestartBehaviour.MAY_REQUEST,
        fixed_builds=tuple(sorted(update.fixed_builds)),
        url=update.url,
        supersedes=tuple(sorted(update.supersedes, key=lambda kb: (len(kb), kb))),
        subtype=subtype,
    )


def _most_common(counts: Counter[str]) -> str | None:
    """The most frequent value, ties broken alphabetically; None when there is none."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[0][0] if ranked else None


def _max_severity(severities: Iterable[Severity | None]) -> Severity | None:
    """The highest of some severities, None when none is rated."""
    highest: Severity | None = None
    for severity in severities:
        highest = _highest(highest, severity)
    return highest


def _highest(current: _Ranked | None, candidate: _Ranked | None) -> _Ranked | None:
    """The higher-ranked of two values, either of which may be missing."""
    if current is None or (candidate is not None and candidate.rank > current.rank):
        return candidate
    return current


def _texts(elements: Iterable[ET.Element]) -> Iterator[str]:
    """The stripped, non-empty texts of some elements."""
    for element in elements:
        if text := (element.text or "").strip():
            yield text


def _optional_text(element: ET.Element, path: str) -> str | None:
    """The stripped text at `path`, None when absent or empty."""
    return (element.findtext(path, "", NAMESPACES)).strip() or None


@dataclass
class MsrcSource:
    """The MSRC Security Update Guide as an `UpdateSource`."""

    name: str = "msrc"

    def parse(self, stream: BinaryIO) -> SourceDocument:
        """Parse one monthly CVRF document from this source."""
        return parse_cvrf(stream, source=self.name)
