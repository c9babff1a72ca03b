"""Streaming parser of MSRC CVRF 1.1 documents (the Security Update Guide's monthly releases)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import BinaryIO, NamedTuple
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

# Tags as the parser names them ('{namespace}local', Clark notation): compared directly, and
# looked up with Element.find/findall/findtext, which match a plain tag without ElementPath.
ROOT_TAG = f"{{{CVRF_NS}}}cvrfdoc"
TITLE_TAG = f"{{{CVRF_NS}}}DocumentTitle"
TRACKING_TAG = f"{{{CVRF_NS}}}DocumentTracking"
IDENTIFICATION_TAG = f"{{{CVRF_NS}}}Identification"
ID_TAG = f"{{{CVRF_NS}}}ID"
RELEASE_DATE_TAG = f"{{{CVRF_NS}}}InitialReleaseDate"
BRANCH_TAG = f"{{{PROD_NS}}}Branch"
PRODUCT_TAG = f"{{{PROD_NS}}}FullProductName"
VULNERABILITY_TAG = f"{{{VULN_NS}}}Vulnerability"
CVE_TAG = f"{{{VULN_NS}}}CVE"
THREATS_TAG = f"{{{VULN_NS}}}Threats"
THREAT_TAG = f"{{{VULN_NS}}}Threat"
REMEDIATIONS_TAG = f"{{{VULN_NS}}}Remediations"
REMEDIATION_TAG = f"{{{VULN_NS}}}Remediation"
DESCRIPTION_TAG = f"{{{VULN_NS}}}Description"
PRODUCT_ID_TAG = f"{{{VULN_NS}}}ProductID"
URL_TAG = f"{{{VULN_NS}}}URL"
SUPERCEDENCE_TAG = f"{{{VULN_NS}}}Supercedence"
RESTART_TAG = f"{{{VULN_NS}}}RestartRequired"
SUBTYPE_TAG = f"{{{VULN_NS}}}SubType"
FIXED_BUILD_TAG = f"{{{VULN_NS}}}FixedBuild"

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

# Ranks computed once: Severity.rank and RestartBehaviour.rank list their enum on every call.
SEVERITIES: tuple[Severity, ...] = tuple(Severity)
"""Lowest first: a severity's rank is its index."""
SEVERITY_RANK_BY_NAME: Mapping[str, int] = {
    severity.value.lower(): rank for rank, severity in enumerate(SEVERITIES)
}
RESTARTS: tuple[RestartBehaviour, ...] = tuple(RestartBehaviour)
"""Least disruptive first: a restart behaviour's rank is its index."""
SEVERITY_RANK_BY_TEXT: Mapping[str, int] = {
    severity.value: rank for rank, severity in enumerate(SEVERITIES)
}
"""Ratings as MSRC writes them (`Critical`), looked up before stripping and case folding."""
RESTART_RANK_BY_VALUE: Mapping[str, int] = {
    value: RESTARTS.index(restart) for value, restart in RESTART_BY_VALUE.items()
}
MAY_REQUEST_RANK = RESTARTS.index(RestartBehaviour.MAY_REQUEST)
UNRATED = -1

KB_DESCRIPTION = re.compile(r"(?:KB)?(\d+)", re.IGNORECASE)
KB_TOKEN_SEPARATORS = re.compile(r"[\s,;]+")

KEPT_TAGS = frozenset({PRODUCT_TAG, VULNERABILITY_TAG, TRACKING_TAG, TITLE_TAG})
"""Elements that say something the catalog keeps; everything else is only measured."""

READ_BLOCK_BYTES = 64 * 1024
"""What is read from the stream at a time (and scanned for runs without markup)."""
FEED_BYTES = 16 * 1024
"""What the parser is fed at a time (as much as iterparse reads): small enough that each child
of the root is read while what the parser built of it is still in the CPU's caches."""
OPEN_CHECK_BYTES = 256 * 1024
"""A child of the root still open after this many bytes is measured against the limits (and
again each time the bytes read since it opened double), rather than only once it ends."""
EXACT_TEXT_SHARE = 8
"""Text is counted character by character once the bytes read pass this share of
`Limits.max_text_total`; below it, a child's bytes bound its characters (see _Reader)."""

WRAPPER_TAG = "{urn:lockgate:catalog}reading"
"""An element the reader opens before the document's own root, so that the root, and through
it the element being built, can be reached while the document streams in."""


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
    """Characters of text and attribute values in all. A character takes at least a byte, so
    while the bytes read stay under an eighth of this they are what is counted; past that,
    characters are counted one by one (see _Reader)."""
    max_kept_elements: int = 250_000
    """Elements inside one child of the root (a vulnerability, the product tree, ...): each
    is built whole, read, then dropped."""
    max_kept_text: int = 16 * 1024 * 1024
    """Characters inside one child of the root."""
    max_retained: int = 1_000_000
    """Products, advisories and KB facts (product ids, CVEs, builds, supersedences) kept."""


DEFAULT_LIMITS = Limits()


class InvalidDocument(ValueError):
    """The input is not a well-formed MSRC CVRF document."""


class _Remediation(NamedTuple):
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
    severity_rank: int = UNRATED
    restart_rank: int = UNRATED
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

    def add(self, cve: str | None, remediation: _Remediation, severity_rank: int) -> int:
        """Merge one CVE's remediation naming this KB; how many facts that added."""
        before = self.facts
        self.product_ids.update(remediation.product_ids)
        if cve:
            self.cves.add(cve)
        self.severity_rank = max(self.severity_rank, severity_rank)
        restart = RESTART_RANK_BY_VALUE.get((remediation.restart or "").strip().lower())
        self.restart_rank = max(self.restart_rank, MAY_REQUEST_RANK if restart is None else restart)
        if remediation.fixed_build:
            self.fixed_builds.add(remediation.fixed_build)
        if self.url is None:
            self.url = remediation.url
        for text in remediation.supercedences:
            self.supersedes.update(parse_kb_list(text))
        self.supersedes.discard(self.kb)  # a KB never supersedes itself
        if remediation.subtype:
            self.subtypes[remediation.subtype] += 1
        return self.facts - before


@dataclass
class _Parse:
    """Everything read so far from one document."""

    document_id: str | None = None
    title: str | None = None
    release_date: datetime | None = None
    products: dict[str, Product] = field(default_factory=dict)
    updates: dict[str, _KbUpdate] = field(default_factory=dict)
    advisories: list[Advisory] = field(default_factory=list)
    retained: int = 0
    """Products, advisories and KB facts kept so far."""


def parse_cvrf(
    stream: BinaryIO, *, source: str = "msrc", limits: Limits = DEFAULT_LIMITS
) -> SourceDocument:
    """Read one MSRC CVRF document child by child of its root: one update per KB, the rest
    advisories.

    Memory stays bounded whatever the document's shape: the standard library's parser builds
    the tree in C, and each child of the root (a vulnerability, the product tree, ...) is
    measured against `limits`, read and dropped once the next one starts; only one is held
    at a time. A DOCTYPE (so any entity) is refused before the tree builder sees it, and each
    of `limits` refuses the document once passed.
    """
    state = _Parse()
    reader = _Reader(state, limits)
    try:
        while block := stream.read(READ_BLOCK_BYTES):
            reader.feed(block)
        reader.close()
    except ET.ParseError as error:
        line, column = error.position
        reason = expat.ErrorString(error.code) if error.code else str(error)
        raise InvalidDocument(_malformed(line, column, reason)) from error
    return _document(state, source)


def parse_kb_list(text: str | None) -> list[str]:
    """KB numbers in a `Supercedence` value: several may be separated by commas, `;` or spaces."""
    tokens = KB_TOKEN_SEPARATORS.split(text or "")
    return [number for token in tokens if (number := kb_number(token)) is not None]


def kb_number(text: str | None) -> str | None:
    """The KB number (digits, no prefix) if `text` is one, e.g. `KB5074109` -> `5074109`."""
    text = (text or "").strip()
    if text.isdecimal():  # what \d+ matches: Unicode decimal digits
        return text
    match = KB_DESCRIPTION.fullmatch(text)
    return match.group(1) if match else None


def _malformed(line: int, column: int, reason: str) -> str:
    return f"malformed CVRF XML at line {line}, column {column}: {reason}"


class _MarkupScanner:
    """Refuses a run of bytes without '<' longer than a limit before the parser buffers it.

    The parser hands a start tag over only once it has all of it, so one enormous attribute
    or name would be held whole; text is measured by the reader.
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


class _RootStarted(Exception):
    """Stops the prolog's parser at the root element: the rest is the tree builder's."""


class _Prolog:
    """Reads the document up to its root element's start tag with a parser of its own.

    It refuses a DOCTYPE (and so any entity, internal or external) and any root but CVRF's
    before the block holding them reaches the tree builder, which has no hook of its own for
    either. Past the root's start tag it is done and dropped.
    """

    def __init__(self) -> None:
        self._parser = expat.ParserCreate(namespace_separator="}")
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._parser.StartElementHandler = self._root
        self.done = False

    def feed(self, block: bytes) -> None:
        try:
            self._parser.Parse(block)  # not final: more may follow
        except _RootStarted:
            self.done = True
        except expat.ExpatError as error:
            reason = expat.ErrorString(error.code)
            raise InvalidDocument(_malformed(error.lineno, error.offset, reason)) from None

    @staticmethod
    def _doctype(name: str, _system: str | None, _public: str | None, _subset: bool) -> None:
        raise InvalidDocument(
            f"CVRF document declares a DOCTYPE ({name!r}): a DTD, and so any entity, is not allowed"
        )

    @staticmethod
    def _root(name: str, _attributes: object) -> None:
        _check_root_tag("{" + name if "}" in name else name)  # the tree builder's Clark name
        raise _RootStarted


class _Reader:
    """Builds the tree as the document streams in; reads each child of the root once it ends.

    A child of the root has ended once the next one has started (or the root has ended): it
    is then measured against the limits, read, and dropped. The child still being built is
    checked after every block along its open path (depth) and, once it spans more than
    OPEN_CHECK_BYTES, measured whole whenever the bytes since it opened double.

    Depth and elements are always counted. Characters (of text and attribute values) are never
    more than the bytes that hold them (no DTD, so no entity expands), so a child whose bytes,
    counted from the start of the block it opened in to the end of the block it ended in, are
    within the per-element and per-child limits passes both without counting; and while the
    bytes read so far are within a share (1 / EXACT_TEXT_SHARE) of `max_text_total`, so is
    the total. Past that share every child is counted exactly, what came before counting as
    its bytes; a child whose bytes exceed a limit is counted exactly in any case.
    """

    def __init__(self, state: _Parse, limits: Limits) -> None:
        self._state, self._limits = state, limits
        builder = ET.TreeBuilder()
        self._top = builder.start(WRAPPER_TAG, {})
        # S314: the standard library's parser, fed only after _Prolog has refused any DOCTYPE,
        # so no entity is ever declared.
        self._parser = ET.XMLParser(target=builder)  # noqa: S314
        self._prolog: _Prolog | None = _Prolog()
        self._scanner = _MarkupScanner(limits.max_text_per_element)
        self._root: ET.Element | None = None
        self._root_counted = False
        self._elements = self._fed = 0
        """Elements of the children read so far (and the root); bytes fed."""
        self._text: int | None = None
        """Characters of text in all, once counted exactly (None: bounded by the bytes read)."""
        self._exact_from = limits.max_text_total // EXACT_TEXT_SHARE
        self._open: ET.Element | None = None
        self._open_from = self._open_check = 0

    def feed(self, block: bytes) -> None:
        self._scanner.scan(block)
        if self._prolog is not None:
            self._prolog.feed(block)
            if self._prolog.done:
                self._prolog = None
        view = memoryview(block)
        for start in range(0, len(block), FEED_BYTES):
            self._feed(view[start : start + FEED_BYTES])

    def _feed(self, piece: memoryview) -> None:
        started = self._fed
        self._parser.feed(piece)
        self._fed += len(piece)
        if self._text is None and self._fed > self._exact_from:
            self._text = started  # what was read before this block, bounded by its bytes
        root = self._root or self._find_root()
        if root is None:
            return
        ended = len(root) - 1
        if ended > 0:
            self._read_children(root, ended, started)
        self._check_open(root, started)

    def close(self) -> None:
        self._parser.close()  # ParseError when the document is incomplete
        root = self._root or self._find_root()
        if root is None:  # pragma: no cover - close() has refused a document without root
            raise InvalidDocument("CVRF document has no root element")
        self._count_root(root)
        self._read_children(root, len(root), self._fed)

    def _find_root(self) -> ET.Element | None:
        if not len(self._top):
            return None
        root = self._root = self._top[0]
        _check_root_tag(root.tag)
        self._elements = 1
        return root

    def _count_root(self, root: ET.Element) -> None:
        """The root's attributes and text before its first child (known once that starts)."""
        if self._root_counted:
            return
        self._root_counted = True
        chars = _attribute_chars(root) + len(root.text or "")
        _within(chars, self._limits.max_text_per_element, "characters", "in one element")
        self._add_text(chars)

    def _add_text(self, chars: int) -> None:
        if self._text is not None:
            self._text += chars
            limit = self._limits.max_text_total
            _within(self._text, limit, "characters of text", "in all")

    def _read_children(self, root: ET.Element, ended: int, started: int) -> None:
        """Measure, read and drop the first `ended` children of the root (all have ended); a
        child other than the one open before this block opened in it (at byte `started`)."""
        self._count_root(root)
        for child in root[:ended]:
            opened = self._open_from if child is self._open else started
            self._measure(child, self._fed - opened, ended=True)
            _read_section(child, self._state, self._limits)
        del root[:ended]

    def _check_open(self, root: ET.Element, started: int) -> None:
        """Limits of the child of the root still being built (it may have ended too)."""
        limit = self._limits.max_depth
        element, depth = root, 1
        while len(element):
            element, depth = element[-1], depth + 1
            _within(depth, limit, "elements nested", "deep")
        if not len(root):
            return
        last = root[-1]
        if last is not self._open:
            self._open, self._open_from, self._open_check = last, started, OPEN_CHECK_BYTES
        elif self._fed - self._open_from > self._open_check:
            self._measure(last, 0, ended=False)
            self._open_check = 2 * (self._fed - self._open_from)

    def _measure(self, child: ET.Element, span: int, *, ended: bool) -> None:
        """Refuse the document if one child of the root, held in at most `span` bytes (0:
        unknown, still open), passes a limit.

        Depth and elements are counted level by level, in C but for the lists of elements
        with children; text, when its bytes do not settle it, with itertext and items.
        """
        limits = self._limits
        name = child.tag.rpartition("}")[2]
        count, depth = 1, 2
        parents = [child] if len(child) else []
        while parents:
            depth += 1
            _within(depth, limits.max_depth, "elements nested", "deep")
            count += sum(map(len, parents))
            parents = list(filter(len, chain.from_iterable(parents)))
        _within(self._elements + count, limits.max_elements, "elements", "in all")
        _within(count, limits.max_kept_elements, "elements", f"in one {name}")
        tail = len(child.tail or "") if ended else 0
        if (
            self._text is not None
            or not 0 < span <= limits.max_text_per_element
            or span > limits.max_kept_text
        ):
            text = self._count_text(child, tail)
            if ended:
                self._add_text(text + tail)
            else:
                _within(
                    (self._text or 0) + text, limits.max_text_total, "characters of text", "in all"
                )
        if ended:
            self._elements += count

    def _count_text(self, child: ET.Element, tail: int) -> int:
        """Characters of text and attribute values in one child (its tail aside), each of its
        elements and the child itself checked against their limits; how many."""
        limits = self._limits
        name = child.tag.rpartition("}")[2]
        pieces = list(map(len, child.itertext()))
        attributes = sum(
            map(len, chain.from_iterable(chain.from_iterable(map(ET.Element.items, child.iter()))))
        )
        if max(max(pieces, default=0), tail) + attributes > limits.max_text_per_element:
            _each_within(child.iter(), limits.max_text_per_element)
        text = sum(pieces) + attributes
        _within(text, limits.max_kept_text, "characters", f"in one {name}")
        return text


def _within(count: int, limit: int, what: str, where: str) -> None:
    if count > limit:
        raise InvalidDocument(
            f"CVRF document has more than {limit} {what} {where}: refused before reading on"
        )


def _each_within(elements: Iterable[ET.Element], limit: int) -> None:
    """Refuse an element whose attributes and text, or whose tail, pass `limit` characters."""
    for element in elements:
        chars = _attribute_chars(element) + len(element.text or "")
        _within(chars, limit, "characters", "in one element")
        _within(len(element.tail or ""), limit, "characters", "in one element")


def _attribute_chars(element: ET.Element) -> int:
    return sum(len(name) + len(value) for name, value in element.items())


def _check_root_tag(tag: str) -> None:
    """Refuse anything but a CVRF 1.1 document before reading further."""
    if tag != ROOT_TAG:
        raise InvalidDocument(f"not a CVRF 1.1 document: root element is {tag!r}")


def _read_section(child: ET.Element, state: _Parse, limits: Limits) -> None:
    """Read one child of the root: the kept elements in it, in document order."""
    if child.tag in KEPT_TAGS:
        _read_kept(child, None, state, limits)
    elif len(child):
        _read_inside(child, _family(child, None), state, limits)


def _read_inside(element: ET.Element, family: str | None, state: _Parse, limits: Limits) -> None:
    """Read the kept elements below `element` (not below another kept one), each with the
    family of its innermost enclosing `Branch Type="Product Family"`."""
    for child in element:
        tag = child.tag
        if tag in KEPT_TAGS:
            _read_kept(child, family, state, limits)
        elif len(child):
            _read_inside(child, _family(child, family), state, limits)


def _family(element: ET.Element, enclosing: str | None) -> str | None:
    """The family name for products inside `element`: its own for a product-family branch."""
    if element.tag == BRANCH_TAG and element.get("Type") == "Product Family":
        return element.get("Name") or UNKNOWN_FAMILY
    return enclosing


def _read_kept(element: ET.Element, family: str | None, state: _Parse, limits: Limits) -> None:
    """Dispatch one element read whole to what reads it."""
    tag = element.tag
    if tag == VULNERABILITY_TAG:
        _add_vulnerability(element, state)
    elif tag == PRODUCT_TAG:
        _add_product(element, family, state)
    elif tag == TRACKING_TAG:
        _read_tracking(element, state)
    elif tag == TITLE_TAG:
        state.title = (element.text or "").strip() or None
    _within(state.retained, limits.max_retained, "products, advisories and KB facts", "kept")


def _add_product(element: ET.Element, family: str | None, state: _Parse) -> None:
    """Record a product; the tree lists some twice, once inside its family and once flat."""
    product_id = (element.get("ProductID") or "").strip()
    if not product_id:
        return
    known = state.products.get(product_id)
    name = (element.text or "").strip() or (known.name if known else product_id)
    if known is not None and family is None:
        family = known.family
    state.retained += 1 if known is None else 0
    state.products[product_id] = Product(product_id, name, family or UNKNOWN_FAMILY)


def _read_tracking(element: ET.Element, state: _Parse) -> None:
    """Take the document id and initial release date from `DocumentTracking`."""
    state.document_id = _first_text(element.findall(IDENTIFICATION_TAG), ID_TAG).strip()
    released = element.findtext(RELEASE_DATE_TAG, "").strip()
    if released:
        state.release_date = _utc(released)


def _first_text(parents: Iterable[ET.Element], tag: str) -> str:
    """The text of the first `tag` child of any of `parents` ('' when there is none)."""
    for parent in parents:
        found = parent.find(tag)
        if found is not None:
            return found.text or ""
    return ""


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
    cve = element.findtext(CVE_TAG, "").strip() or None
    ranks = _severity_ranks(element)
    updates = state.updates
    for remediations in element.findall(REMEDIATIONS_TAG):
        for fix in remediations.findall(REMEDIATION_TAG):
            if fix.get("Type") != "Vendor Fix":
                continue
            remediation = _remediation(fix)
            kb = kb_number(remediation.description)
            if kb is None:
                state.advisories.append(_advisory(cve, remediation))
                state.retained += 1 + len(remediation.product_ids)
                continue
            update = updates.get(kb)
            if update is None:
                update = updates[kb] = _KbUpdate(kb)
            rank = UNRATED
            for product_id in remediation.product_ids:
                rated = ranks.get(product_id, UNRATED)
                rank = max(rank, rated)
            state.retained += update.add(cve, remediation, rank)


def _severity_ranks(vulnerability: ET.Element) -> dict[str, int]:
    """The rank of the highest `Threat Type="Severity"` per product id for one vulnerability."""
    by_product: dict[str, int] = {}
    for threats in vulnerability.findall(THREATS_TAG):
        for threat in threats.findall(THREAT_TAG):
            if threat.get("Type") != "Severity":
                continue
            description = threat.findtext(DESCRIPTION_TAG, "")
            rank = SEVERITY_RANK_BY_TEXT.get(description)
            if rank is None:
                rank = SEVERITY_RANK_BY_NAME.get(description.strip().lower())
                if rank is None:
                    continue  # MSRC leaves some ratings empty: unrated, not an error
            for product in threat.findall(PRODUCT_ID_TAG):
                product_id = (product.text or "").strip()
                if product_id and rank > by_product.get(product_id, UNRATED):
                    by_product[product_id] = rank
    return by_product


_FIX_PARTS: Mapping[str, int] = {
    tag: index
    for index, tag in enumerate(
        (PRODUCT_ID_TAG, DESCRIPTION_TAG, URL_TAG, RESTART_TAG, SUBTYPE_TAG, FIXED_BUILD_TAG)
    )
}
_SUPERCEDENCE = -1


def _remediation(element: ET.Element) -> _Remediation:
    """One `Vendor Fix` remediation as written (its texts stripped, empty ones None): one pass
    over its children, each single-valued part taken from the first child naming it."""
    first: list[str | None] = [None] * len(_FIX_PARTS)
    supercedences: list[str] = []
    product_ids: list[str] = []
    parts = _FIX_PARTS
    for child in element:
        part = parts.get(child.tag, _SUPERCEDENCE if child.tag == SUPERCEDENCE_TAG else None)
        if part is None:
            continue
        text = (child.text or "").strip()
        if part == 0:
            if text:
                product_ids.append(text)
        elif part == _SUPERCEDENCE:
            if text:
                supercedences.append(text)
        elif first[part] is None:
            first[part] = text
    _, description, url, restart, subtype, fixed_build = first
    return _Remediation(
        description or "",
        url or None,
        tuple(supercedences),
        tuple(product_ids),
        restart or None,
        subtype or None,
        fixed_build or None,
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
        severity=None if update.severity_rank == UNRATED else SEVERITIES[update.severity_rank],
        cves=tuple(sorted(update.cves)),
        release_date=release_date,
        restart=RESTARTS[
            MAY_REQUEST_RANK if update.restart_rank == UNRATED else update.restart_rank
        ],
        fixed_builds=tuple(sorted(update.fixed_builds)),
        url=update.url,
        supersedes=tuple(sorted(update.supersedes, key=lambda kb: (len(kb), kb))),
        subtype=subtype,
    )


def _most_common(counts: Counter[str]) -> str | None:
    """The most frequent value, ties broken alphabetically; None when there is none."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[0][0] if ranked else None


def _texts(elements: Iterable[ET.Element]) -> Iterator[str]:
    """The stripped, non-empty texts of some elements."""
    for element in elements:
        if text := (element.text or "").strip():
            yield text


def _optional_text(element: ET.Element, tag: str) -> str | None:
    """The stripped text of the first `tag` child, None when absent or empty."""
    return element.findtext(tag, "").strip() or None


@dataclass
class MsrcSource:
    """The MSRC Security Update Guide as an `UpdateSource`."""

    name: str = "msrc"

    def parse(self, stream: BinaryIO) -> SourceDocument:
        """Parse one monthly CVRF document from this source."""
        return parse_cvrf(stream, source=self.name)
