"""MSRC CVRF parsing: the real monthly documents, checked against figures computed separately."""

from __future__ import annotations

import functools
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from services.catalog.domain.model import (
    Classification,
    RestartBehaviour,
    Severity,
    SourceDocument,
    UpdateSource,
)
from services.catalog.domain.msrc import InvalidDocument, Limits, MsrcSource, parse_cvrf
from services.catalog.sources.locations import UnsupportedLocation, open_location

DATA = Path(__file__).resolve().parents[2] / "data" / "msrc"
MONTHS = ("Jan", "Feb")
NS = {
    "cvrf": "http://www.icasi.org/CVRF/schema/cvrf/1.1",
    "prod": "http://www.icasi.org/CVRF/schema/prod/1.1",
    "vuln": "http://www.icasi.org/CVRF/schema/vuln/1.1",
}
RATINGS = ["Low", "Moderate", "Important", "Critical"]
RESTARTS = {"No": 0, "Maybe": 1, "Yes": 2}
RESTART_ORDER = [RestartBehaviour.NEVER, RestartBehaviour.MAY_REQUEST, RestartBehaviour.ALWAYS]
SPEC_CLASSIFICATION = {
    "Security Update": Classification.SECURITY_UPDATES,
    "Security Only": Classification.SECURITY_UPDATES,
    "Security Hotpatch Update": Classification.SECURITY_UPDATES,
    "Monthly Rollup": Classification.UPDATE_ROLLUPS,
}
VULNERABILITY = re.compile(r"<vuln:Vulnerability\b.*?</vuln:Vulnerability>", re.DOTALL)
VENDOR_FIX = re.compile(r'<vuln:Remediation Type="Vendor Fix">(.*?)</vuln:Remediation>', re.DOTALL)


@dataclass
class ExpectedKb:
    """What the reference reading finds for one KB."""

    cves: set[str] = field(default_factory=set)
    product_ids: set[str] = field(default_factory=set)
    supersedes: set[str] = field(default_factory=set)
    restart_ranks: list[int] = field(default_factory=list)
    subtypes: list[str] = field(default_factory=list)
    fixed_builds: set[str] = field(default_factory=set)


@dataclass
class Expected:
    """The reference reading of one month: the whole tree, loaded and walked with plain loops."""

    release_date: datetime
    families: dict[str, str]
    kbs: dict[str, ExpectedKb]
    ratings: dict[str, dict[str, int]]
    advisories: Counter[tuple[str, str]]

    def severity(self, kb: str) -> Severity | None:
        """Highest rating of the KB's CVEs over all of the KB's products."""
        entry = self.kbs[kb]
        ranks = [
            self.ratings[cve][product]
            for cve in entry.cves
            for product in entry.product_ids
            if product in self.ratings[cve]
        ]
        return Severity(RATINGS[max(ranks)]) if ranks else None

    def subtype(self, kb: str) -> str:
        """Most frequent SubType, the alphabetically first on a tie."""
        subtypes = self.kbs[kb].subtypes
        return max(sorted(set(subtypes)), key=subtypes.count)


@functools.cache
def parsed(month: str) -> SourceDocument:
    with (DATA / f"cvrf-2026-{month}.xml").open("rb") as stream:
        return parse_cvrf(stream)


@functools.cache
def raw(month: str) -> str:
    return (DATA / f"cvrf-2026-{month}.xml").read_text(encoding="utf-8")


@functools.cache
def expected(month: str) -> Expected:
    # S314: the repository's own MSRC files, not untrusted input.
    root = ET.parse(DATA / f"cvrf-2026-{month}.xml").getroot()  # noqa: S314
    families = {
        product.get("ProductID", ""): branch.get("Name", "")
        for branch in root.iter(f"{{{NS['prod']}}}Branch")
        if branch.get("Type") == "Product Family"
        for product in branch.iter(f"{{{NS['prod']}}}FullProductName")
    }
    kbs: dict[str, ExpectedKb] = {}
    ratings: dict[str, dict[str, int]] = {}
    advisories: Counter[tuple[str, str]] = Counter()
    for vulnerability in root.findall("vuln:Vulnerability", NS):
        cve = vulnerability.findtext("vuln:CVE", "", NS)
        ratings[cve] = cve_ratings(vulnerability)
        for fix in vulnerability.findall("vuln:Remediations/vuln:Remediation", NS):
            if fix.get("Type") != "Vendor Fix":
                continue
            description = fix.findtext("vuln:Description", "", NS).strip()
            number = description.upper().removeprefix("KB")
            if not number.isdigit():
                advisories[cve, description or fix.findtext("vuln:SubType", "", NS)] += 1
                continue
            record_fix(kbs.setdefault(number, ExpectedKb()), cve, fix)
    released = root.findtext("cvrf:DocumentTracking/cvrf:InitialReleaseDate", "", NS)
    date = datetime.fromisoformat(released).replace(tzinfo=UTC)
    return Expected(date, families, kbs, ratings, advisories)


def cve_ratings(vulnerability: ET.Element) -> dict[str, int]:
    ratings: dict[str, int] = {}
    for threat in vulnerability.findall("vuln:Threats/vuln:Threat[@Type='Severity']", NS):
        rating = threat.findtext("vuln:Description", "", NS)
        for product in threat.findall("vuln:ProductID", NS):
            if rating in RATINGS:
                ratings[product.text or ""] = max(
                    ratings.get(product.text or "", -1), RATINGS.index(rating)
                )
    return ratings


def record_fix(entry: ExpectedKb, cve: str, fix: ET.Element) -> None:
    entry.cves.add(cve)
    entry.product_ids.update(p.text or "" for p in fix.findall("vuln:ProductID", NS))
    for element in fix.findall("vuln:Supercedence", NS):
        entry.supersedes.update(re.findall(r"\d+", element.text or ""))
    entry.restart_ranks.append(RESTARTS.get(fix.findtext("vuln:RestartRequired", "", NS), 1))
    entry.subtypes.append(fix.findtext("vuln:SubType", "", NS))
    entry.fixed_builds.update(b.text or "" for b in fix.findall("vuln:FixedBuild", NS))


def fragment(month: str, *blocks: str, tree: str = "before") -> bytes:
    """A small document cut from a real month: its header, chosen vulnerabilities, its tree."""
    text = raw(month)
    start = text.index("<prod:ProductTree>")
    end = text.index("</prod:ProductTree>") + len("</prod:ProductTree>")
    header, product_tree = text[:start], text[start:end]
    before = product_tree if tree == "before" else ""
    after = product_tree if tree == "after" else ""
    return f"{header}{before}{''.join(blocks)}{after}</cvrf:cvrfdoc>".encode()


def vulnerability_block(month: str, cve: str) -> str:
    blocks: list[str] = VULNERABILITY.findall(raw(month))
    return next(block for block in blocks if f"<vuln:CVE>{cve}<" in block)


def kb_fixes(month: str) -> list[tuple[str, list[str]]]:
    """(KB, Supercedence texts) of every KB Vendor Fix, read with regular expressions."""
    fixes = []
    for fix in VENDOR_FIX.findall(raw(month)):
        kb = re.search(r"<vuln:Description>(?:KB)?(\d+)</vuln:Description>", fix)
        if kb:
            fixes.append((kb.group(1), re.findall(r"<vuln:Supercedence>([^<]*)</", fix)))
    return fixes


def parse_bytes(data: bytes) -> SourceDocument:
    return parse_cvrf(io.BytesIO(data))


@pytest.mark.parametrize("month", MONTHS)
def test_document_identity_and_release_date(month: str) -> None:
    """Catalog entries are traced back to their MSRC release by id, title and UTC date."""
    document = parsed(month)
    assert document.source == "msrc"
    assert document.document_id == f"2026-{month}"
    title = re.search(r"<cvrf:DocumentTitle>(.*?)</", raw(month))
    assert title is not None
    assert document.title == title.group(1)
    assert document.release_date == expected(month).release_date
    assert document.release_date.utcoffset() is not None


@pytest.mark.parametrize("month", MONTHS)
def test_one_update_per_kb(month: str) -> None:
    """A KB named under many CVEs is one update to approve, never one per CVE."""
    kbs = [update.kb for update in parsed(month).updates]
    assert len(kbs) == len(set(kbs))
    assert set(kbs) == set(expected(month).kbs)


@pytest.mark.parametrize("month", MONTHS)
def test_cves_per_update_match_the_document(month: str) -> None:
    """Each update lists every CVE it fixes, so operators see why it matters."""
    reference = expected(month).kbs
    assert {u.kb: set(u.cves) for u in parsed(month).updates} == {
        kb: entry.cves for kb, entry in reference.items()
    }
    assert all(list(u.cves) == sorted(u.cves) for u in parsed(month).updates)


@pytest.mark.parametrize("month", MONTHS)
def test_supersedence_matches_the_document(month: str) -> None:
    """Supersedence decides what auto-approval picks, so every link must survive parsing."""
    reference = expected(month).kbs
    assert {u.kb: set(u.supersedes) for u in parsed(month).updates} == {
        kb: entry.supersedes for kb, entry in reference.items()
    }


@pytest.mark.parametrize("month", MONTHS)
def test_severity_is_the_highest_over_cves_and_products(month: str) -> None:
    """Approval rules filter on MSRC severity; the highest rating of the fixed CVEs applies."""
    reference = expected(month)
    assert {u.kb: u.severity for u in parsed(month).updates} == {
        kb: reference.severity(kb) for kb in reference.kbs
    }


@pytest.mark.parametrize("month", MONTHS)
def test_products_are_the_union_with_their_families(month: str) -> None:
    """Product categories chosen by the operator select updates through these products."""
    reference = expected(month)
    for update in parsed(month).updates:
        ids = [product.product_id for product in update.products]
        assert ids == sorted(reference.kbs[update.kb].product_ids)
        assert all(p.family == reference.families[p.product_id] for p in update.products)


@pytest.mark.parametrize("month", MONTHS)
def test_restart_subtype_classification_and_title(month: str) -> None:
    """Restart behaviour, classification and title are what operators filter and read."""
    reference = expected(month)
    for update in parsed(month).updates:
        entry = reference.kbs[update.kb]
        subtype = reference.subtype(update.kb)
        families = ", ".join(sorted({reference.families[p] for p in entry.product_ids}))
        assert update.restart == RESTART_ORDER[max(entry.restart_ranks)]
        assert update.subtype == subtype
        assert update.classification == SPEC_CLASSIFICATION[subtype]
        assert update.fixed_builds == tuple(sorted(entry.fixed_builds))
        month_label = f"{reference.release_date:%Y-%m}"
        assert update.title == f"{month_label} {subtype} for {families} (KB{update.kb})"


@pytest.mark.parametrize("month", MONTHS)
def test_advisories_match_the_non_kb_vendor_fixes(month: str) -> None:
    """Fixes shipped through a product's own channel stay visible as advisories on the CVE."""
    advisories = Counter((a.cve, a.kind) for a in parsed(month).advisories)
    assert advisories == expected(month).advisories


def test_a_kb_named_by_several_cves_becomes_one_update() -> None:
    """Merging across CVEs is what turns MSRC's per-CVE view into installable updates."""
    reference = expected("Jan")
    kb = min(k for k, entry in reference.kbs.items() if len(entry.cves) == 2)
    cves = sorted(reference.kbs[kb].cves)
    document = parse_bytes(fragment("Jan", *(vulnerability_block("Jan", c) for c in cves)))
    merged = [update for update in document.updates if update.kb == kb]
    assert len(merged) == 1
    assert list(merged[0].cves) == cves


def test_supersedence_holding_several_kbs_is_split() -> None:
    """A Supercedence value may list several KBs; each must become a supersedence link."""
    block = vulnerability_block("Jan", "CVE-2026-20962")
    anchor = block.index("<vuln:Description>5074109</vuln:Description>")
    start = block.index("<vuln:Supercedence>", anchor)
    end = block.index("</vuln:Supercedence>", start) + len("</vuln:Supercedence>")
    several = (
        "<vuln:Supercedence>KB5072033; 5071544,KB5071547  5071546</vuln:Supercedence>"
        "<vuln:Supercedence /><vuln:Supercedence>5072033</vuln:Supercedence>"
    )
    document = parse_bytes(fragment("Jan", block[:start] + several + block[end:]))
    update = next(u for u in document.updates if u.kb == "5074109")
    assert update.supersedes == ("5071544", "5071546", "5071547", "5072033")


def test_advisories_are_not_updates() -> None:
    """Release notes and Click to Run carry no KB to approve: they must not become updates."""
    reference = expected("Jan")
    cve = next(
        cve
        for cve, kind in sorted(reference.advisories)
        if kind == "Click to Run" and all(cve not in e.cves for e in reference.kbs.values())
    )
    document = parse_bytes(fragment("Jan", vulnerability_block("Jan", cve)))
    assert document.updates == ()
    assert {a.kind for a in document.advisories} == {"Click to Run", "Release Notes"}
    assert all(a.cve == cve for a in document.advisories)


def test_product_tree_after_the_vulnerabilities_still_names_families() -> None:
    """CVRF does not fix element order, so products must resolve once the stream has ended."""
    block = vulnerability_block("Jan", "CVE-2026-20962")
    before = parse_bytes(fragment("Jan", block, tree="before"))
    after = parse_bytes(fragment("Jan", block, tree="after"))
    assert after.updates == before.updates
    assert all(p.family != "Unknown" for u in after.updates for p in u.products)


def test_unknown_product_ids_are_kept() -> None:
    """A product missing from the tree must not drop the update that applies to it."""
    document = parse_bytes(fragment("Jan", vulnerability_block("Jan", "CVE-2026-20962"), tree=""))
    products = [p for u in document.updates for p in u.products]
    assert products
    assert all(p.name == p.product_id and p.family == "Unknown" for p in products)


def test_truncated_document_is_refused_with_its_line() -> None:
    """A download cut short must fail loudly, pointing at where the XML stops."""
    data = (DATA / "cvrf-2026-Jan.xml").read_bytes()
    cut = data[: len(data) // 2]
    last_line = cut.count(b"\n") + 1
    with pytest.raises(InvalidDocument, match=rf"line {last_line}, column \d+"):
        parse_bytes(cut)


def test_xml_that_is_not_cvrf_is_refused() -> None:
    """A wrong URL returning some other XML must not be read as an empty release."""
    with pytest.raises(InvalidDocument, match=r"not a CVRF 1\.1 document.*rss"):
        parse_bytes(b'<?xml version="1.0"?>\n<rss version="2.0"><channel /></rss>')


def test_document_without_id_is_refused() -> None:
    """Without its id a release cannot be traced or re-imported idempotently."""
    data = fragment("Jan").replace(b"<cvrf:ID>2026-Jan</cvrf:ID>", b"")
    with pytest.raises(InvalidDocument, match=r"Identification/ID"):
        parse_bytes(data)


def test_february_supersedes_january_kbs() -> None:
    """Ingesting January then February must mark January's KBs superseded."""
    january = {kb for kb, _ in kb_fixes("Jan")}
    expected_links = {
        (kb, old)
        for kb, replaced in kb_fixes("Feb")
        for text in replaced
        for old in re.findall(r"\d+", text)
        if old in january
    }
    parsed_january = {update.kb for update in parsed("Jan").updates}
    found = {
        (update.kb, old)
        for update in parsed("Feb").updates
        for old in update.supersedes
        if old in parsed_january
    }
    assert found == expected_links
    assert len(expected_links) == 17


def test_msrc_source_reads_a_local_location() -> None:
    """The importer reaches documents through the source interface and open_location."""
    source: UpdateSource = MsrcSource()
    with open_location(str(DATA / "cvrf-2026-Feb.xml")) as stream:
        document = source.parse(stream)
    assert (document.source, document.document_id) == ("msrc", "2026-Feb")


def test_open_location_refuses_other_schemes() -> None:
    """Only files and http(s) are fetched; anything else is named in the error."""
    with pytest.raises(UnsupportedLocation, match=r"'ftp://example\.com/cvrf\.xml'"):
        open_location("ftp://example.com/cvrf.xml")


@pytest.mark.parametrize("month", MONTHS)
def test_real_documents_read_the_same_well_inside_the_limits(month: str) -> None:
    """The limits that stop crafted documents leave real ones a wide margin: a tenth of
    each (a quarter of the depth) still reads them, to the same result."""
    tight = Limits(
        max_depth=8,
        max_elements=200_000,
        max_text_per_element=100 * 1024,
        max_text_total=6 * 1024 * 1024,
        max_kept_elements=25_000,
        max_kept_text=1024 * 1024,
        max_retained=100_000,
    )
    with (DATA / f"cvrf-2026-{month}.xml").open("rb") as stream:
        assert parse_cvrf(stream, limits=tight) == parsed(month)


def test_doctype_is_refused_before_any_entity_is_declared() -> None:
    """No DTD, so no entity expansion (billion laughs) and no external entity."""
    document = b'<!DOCTYPE cvrfdoc [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + fragment("Jan")
    with pytest.raises(InvalidDocument, match=r"DOCTYPE .*not allowed"):
        parse_bytes(document)
