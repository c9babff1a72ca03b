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

KEPT_TAGS = frozenset({PRODUCT_TAG, VULNERABILITY_TAG, TRACKING_TAG, TITLE_TAG})
"""Elements read whole (one at a time); everything else is only counted and passed over."""

READ_BLOCK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """How much of a CVRF document is read before it is refused, whatever its shape.

    Real MSRC documents (data/msrc/) nest 5 deep, hold about 51,000 elements, at most 50 KB
    of text in one element and under 1 MB of text in all; each limit leaves a wide margin.
    """

    max_depth: int = 32
    max_elements: int = 2_000_000
    max_text_per_element: int = 1024 * 1024
    """Characters of text and attribute values in one element; also the longest run of bytes
    without markup, since the XML parser buffers a whole tag before handing it over."""
    max_text_total: int = 64 * 1024 * 1024
    max_kept_elements: int = 250_000
    """Elements inside one vulnerability (or other element read whole)."""
    max_kept_text: int = 16 * 1024 * 1024
    """Characters inside one vulnerability (or other element read whole)."""
    max_retained: int = 1_000_000
    """Products, advisories and KB facts (product ids, CVEs, builds, supersedences) kept."""


DEFAULT_LIMITS = Limits()


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

    @property
    def facts(self) -> int:
        """How many values this update keeps (each counts against Limits.max_retained)."""
        return (
            len(self.product_ids)
            + len(self.cves)
            + len(self.fixed_builds)
            + len(self.supersedes)
            + len(self.subtypes)
        )

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
    retained: int = 0
    """Products, advisories and KB facts kept so far."""


def parse_cvrf(
    stream: BinaryIO, *, source: str = "msrc", limits: Limits = DEFAULT_LIMITS
) -> SourceDocument:
    """Read one MSRC CVRF document element by element: one update per KB, the rest advisories.

    Memory stays bounded whatever the document's shape: only the element being handled
    (a vulnerability, a product, the tracking block) is built as a tree, and only until it is
    handled; everything else is counted and dropped as it streams past. A DOCTYPE (so any
    entity) is refused, and each of `limits` refuses the document once passed.
    """
    state = _Parse()
    reader = _Reader(state, limits)
    # S314: the standard library parser with a target builds nothing itself; the DOCTYPE
    # handler refuses any DTD, so no entity (internal or external) is ever declared.
    parser = ET.XMLParser(target=reader)  # noqa: S314
    scanner = _MarkupScanner(limits.max_text_per_element)
    try:
        while block := stream.read(READ_BLOCK_BYTES):
            scanner.scan(block)
            parser.feed(block)
        parser.close()
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


class _MarkupScanner:
    """Refuses a run of bytes without '<' longer than a limit before the parser buffers it.

    The parser hands a start tag over only once it has all of it, so one enormous attribute
    or name would be held whole; text (delivered in pieces) is limited by the reader.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._run = 0
        self._offset = 0

    def scan(self, block: bytes) -> None:
        first = block.find(b"<")
        run = self._run + (len(block) if first < 0 else first)
        if run > self._limit:
            raise InvalidDocument(
                f"CVRF document has {run} bytes without markup before byte "
                f"{self._offset + len(block)}: no text, attribute or tag may be longer than "
                f"{self._limit} characters"
            )
        self._run = run if first < 0 else len(block) - block.rfind(b"<") - 1
        self._offset += len(block)


class _Reader:
    """The XML parser's target: builds kept elements one at a time, passes over the rest."""

    def __init__(self, state: _Parse, limits: Limits) -> None:
        self._state, self._limits = state, limits
        self._depth = self._elements = self._text_total = self._element_text = 0
        self._kept: ET.TreeBuilder | None = None
        self._kept_depth = self._kept_elements = self._kept_text = 0
        self._kept_name = ""

    def doctype(self, name: str, _pubid: str | None, _system: str | None) -> None:
        raise InvalidDocument(
            f"CVRF document declares a DOCTYPE ({name!r}): a DTD, and so any entity, is not allowed"
        )

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        self._elements += 1
        if self._depth == 1:
            _check_root_tag(tag)
        limits = self._limits
        if self._depth > limits.max_depth or self._elements > limits.max_elements:
            _within(self._depth, limits.max_depth, "elements nested", "deep")
            _within(self._elements, limits.max_elements, "elements", "in all")
        self._element_text = 0
        if attrib:
            self.data_length(sum(len(key) + len(value) for key, value in attrib.items()))
        kept = self._kept
        if kept is None:
            if tag == BRANCH_TAG:
                self._state.families.append(_family_of(attrib))
            elif tag in KEPT_TAGS:
                kept = self._kept = ET.TreeBuilder()
                self._kept_depth, self._kept_elements, self._kept_text = self._depth, 0, 0
                self._kept_name = tag.rpartition("}")[2]
        if kept is not None:
            self._kept_elements += 1
            where = f"in one {self._kept_name}"
            _within(self._kept_elements, limits.max_kept_elements, "elements", where)
            kept.start(tag, attrib)

    def data(self, text: str) -> None:
        self.data_length(len(text))
        if self._kept is not None:
            self._kept.data(text)

    def end(self, tag: str) -> None:
        if self._kept is not None:
            element = self._kept.end(tag)
            if self._depth == self._kept_depth:
                self._kept = None
                _on_end(element, self._state, self._limits)
        elif tag == BRANCH_TAG:
            self._state.families.pop()
        self._depth -= 1
        self._element_text = 0

    def close(self) -> None:
        return None

    def data_length(self, length: int) -> None:
        """Count characters of text or attributes against the limits."""
        self._element_text += length
        self._text_total += length
        if self._kept is not None:
            self._kept_text += length
        limits = self._limits
        if (
            self._element_text > limits.max_text_per_element
            or self._text_total > limits.max_text_total
            or self._kept_text > limits.max_kept_text
        ):
            _within(self._element_text, limits.max_text_per_element, "characters", "in one element")
            _within(self._text_total, limits.max_text_total, "characters of text", "in all")
            _within(
                self._kept_text, limits.max_kept_text, "characters", f"in one {self._kept_name}"
            )


def _within(count: int, limit: int, what: str, where: str) -> None:
    if count > limit:
        raise InvalidDocument(
            f"CVRF document has more than {limit} {what} {where}: refused before reading on"
        )


def _check_root_tag(tag: str) -> None:
    """Refuse anything but a CVRF 1.1 document before reading further."""
    if tag != ROOT_TAG:
        raise InvalidDocument(f"not a CVRF 1.1 document: root element is {tag!r}")


def _family_of(attributes: Mapping[str, str]) -> str | None:
    """The family name of a `Branch Type="Product Family"`, None for any other branch."""
    if attributes.get("Type") == "Product Family":
        return attributes.get("Name") or UNKNOWN_FAMILY
    return None


def _on_end(element: ET.Element, state: _Parse, limits: Limits) -> None:
    """Dispatch one completed element read whole to what reads it."""
    tag = element.tag
    if tag == PRODUCT_TAG:
        _add_product(element, state)
    elif tag == VULNERABILITY_TAG:
        _add_vulnerability(element, state)
    elif tag == TRACKING_TAG:
        _read_tracking(element, state)
    elif tag == TITLE_TAG:
        state.title = (element.text or "").strip() or None
    _within(state.retained, limits.max_retained, "products, advisories and KB facts", "kept")


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
    state.retained += 1 if known is None else 0
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
            state.retained += 1 + len(remediation.product_ids)
            continue
        update = state.updates.setdefault(kb, _KbUpdate(kb))
        rated = (severities.get(product_id) for product_id in remediation.product_ids)
        before = update.facts
        update.add(cve, remediation, _max_severity(rated))
        state.retained += update.facts - before


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
