"""Hostile files (issue 17): mutated installers and CVRF documents, hostile file names.

Every mutation derives deterministically (one seed) from a real installer the tests build
(wixl, MinGW-w64) or from the real MSRC documents in data/msrc. Each must end in one of two
ways: accepted, or refused with the clear error (InvalidInstaller naming the file and a
reason from the readers' own checks, InvalidDocument, InvalidInput naming the field). A
hang or a crash would show as the probe's limit, timeout or "cannot be read" wording, which
the tests reject: the readers themselves must fail fast with a reason.
"""

from __future__ import annotations

import asyncio
import io
import random
import re
import signal
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

import olefile
import pefile
import pytest

from libs.contracts.catalog import UploadFile
from libs.service import InvalidInput
from services.catalog.domain.installers.common import InstallerMetadata, InvalidInstaller
from services.catalog.domain.msrc import InvalidDocument, Limits, parse_cvrf
from services.catalog.domain.uploads import check_files
from services.catalog.sources.installer_probe import ProbeLimits, _answer, probe_installer
from tests.support.installers import build_exe, build_msi

SEED = 17
MSI_MUTATIONS, MSP_MUTATIONS, EXE_MUTATIONS, CVRF_MUTATIONS = 160, 60, 160, 300
PARALLEL = 2
"""Probes at once: the CI machine has two cores."""

LIMITS = ProbeLimits(cpu_seconds=10, memory_bytes=512 * 1024 * 1024, timeout_seconds=60)
DATA = Path(__file__).resolve().parents[2] / "data" / "msrc"
SUMMARY = "\x05SummaryInformation"
DATABASE_CLSID = uuid.UUID("000C1084-0000-0000-C000-000000000046").bytes_le
PATCH_CLSID = uuid.UUID("000C1086-0000-0000-C000-000000000046").bytes_le
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x1000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
VECTOR_TYPES = [0x1000 | base for base in (0, 1, 2, 3, 11, 12, 30, 31, 64, 65, 71)]
# what the probe says when the reader did not refuse by itself: none may appear
READER_FAILED = re.compile(
    r"took longer than|CPU seconds|metadata reader failed|metadata cannot be read|"
    r"needs more than|nest too deeply"
)

Mutation = tuple[str, bytes]  # (what was changed, the bytes)


# ---- mutations -----------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random, hot: list[tuple[int, int]]) -> bytes:
    """A few random edits, half of them inside the structures the readers parse (`hot`)."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        low, high = rng.choice([*hot, (0, 512), (0, len(buffer))])
        high = min(high, len(buffer) - 4)
        at = rng.randrange(low, high) if high > low else 0
        choice = rng.random()
        if choice < 0.3:
            buffer[at] = rng.randrange(256)
        elif choice < 0.5:
            buffer[at : at + 2] = struct.pack("<I", rng.choice(INTERESTING))[:2]
        elif choice < 0.8:
            buffer[at : at + 4] = struct.pack("<I", rng.choice(INTERESTING))
        elif choice < 0.9:
            del buffer[rng.randrange(len(buffer) // 4, len(buffer)) :]
        else:
            size = rng.randint(1, 64)
            buffer[at:at] = buffer[at : at + size]
    return bytes(buffer)


def summary_layout(compound: bytes) -> tuple[int, bytes]:
    """Where the summary information stream sits in the file (it is small and contiguous
    in wixl's output), and its bytes."""
    with olefile.OleFileIO(io.BytesIO(compound)) as ole, ole.openstream(SUMMARY) as stream:
        summary: bytes = stream.read()
    return compound.index(summary[:64]), summary


def summary_property(compound: bytes, index: int) -> int:
    """File offset of the `index`th property (its type, then its value) of the summary."""
    at, summary = summary_layout(compound)
    (start,) = struct.unpack_from("<I", summary, 44)
    _, offset = struct.unpack_from("<II", summary, start + 8 + 8 * index)
    return at + int(start) + int(offset)


def vector_count_mutation(compound: bytes, index: int, kind: int, count: int) -> bytes:
    """Six bytes changed: a summary property becomes a vector of `kind` holding `count`."""
    where = summary_property(compound, index)
    buffer = bytearray(compound)
    buffer[where : where + 2] = struct.pack("<H", kind)
    buffer[where + 4 : where + 8] = struct.pack("<I", count)
    return bytes(buffer)


def section_count_mutation(compound: bytes) -> bytes:
    """The summary section declares two billion properties in its 452 bytes."""
    at, summary = summary_layout(compound)
    (start,) = struct.unpack_from("<I", summary, 44)
    where = at + start + 4
    return compound[:where] + struct.pack("<I", 0x7FFFFFFF) + compound[where + 4 :]


def compound_mutations(base: bytes, count: int, rng: random.Random) -> list[Mutation]:
    at, summary = summary_layout(base)
    (start,) = struct.unpack_from("<I", summary, 44)
    (properties,) = struct.unpack_from("<I", summary, start + 4)
    found: list[Mutation] = []
    for number in range(count):
        if number % 8 == 0:  # the crafted shape behind issue 17's hang, on any property
            index, kind = rng.randrange(properties), rng.choice(VECTOR_TYPES)
            value = rng.choice((0x7FFFFFFF, 0xFFFFFFFF, 1 << 28))
            found.append(
                (f"vector {kind:#x} of {value}", vector_count_mutation(base, index, kind, value))
            )
        else:
            found.append((f"random {number}", mutate(base, rng, [(at, at + len(summary))])))
    return found


def exe_mutations(base: bytes, count: int, rng: random.Random) -> list[Mutation]:
    program = pefile.PE(data=base, fast_load=True)
    hot = [
        (int(s.PointerToRawData), int(s.PointerToRawData) + int(s.SizeOfRawData))
        for s in program.sections
        if s.Name.rstrip(b"\x00") == b".rsrc"
    ]
    hot.append((0, int(program.OPTIONAL_HEADER.SizeOfHeaders)))
    program.close()
    return [(f"random {number}", mutate(base, rng, hot)) for number in range(count)]


def fewer_data_directories(program: bytes) -> bytes:
    """The headers declare 2 data directories (no resources, no signature): pefile keeps
    only those, and reading the 5th raised IndexError before issue 17."""
    pe = pefile.PE(data=program, fast_load=True)
    where = pe.OPTIONAL_HEADER.get_field_absolute_offset("NumberOfRvaAndSizes")
    pe.close()
    return program[:where] + struct.pack("<I", 2) + program[where + 4 :]


# ---- running them --------------------------------------------------------------------------


async def probe_all(
    directory: Path, mutations: list[Mutation], suffix: str
) -> list[tuple[str, InstallerMetadata | InvalidInstaller]]:
    """Every mutation through the child-process probe, PARALLEL at a time."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(
        number: int, what: str, content: bytes
    ) -> tuple[str, InstallerMetadata | InvalidInstaller]:
        path = directory / f"{number}{suffix}"
        path.write_bytes(content)
        async with gate:
            try:
                return what, await probe_installer(path, f"m{number}{suffix}", LIMITS)
            except InvalidInstaller as refusal:
                return what, refusal
            finally:
                path.unlink()

    return await asyncio.gather(*(one(n, w, c) for n, (w, c) in enumerate(mutations)))


def unclear(
    results: list[tuple[str, InstallerMetadata | InvalidInstaller]], suffix: str
) -> list[str]:
    """Outcomes that are neither metadata nor a refusal naming the file with a reader's reason."""
    bad = []
    for number, (what, outcome) in enumerate(results):
        if isinstance(outcome, InstallerMetadata):
            continue
        text = str(outcome)
        if not text.startswith(f"m{number}{suffix}: ") or READER_FAILED.search(text):
            bad.append(f"{what}: {text}")
    return bad


@pytest.fixture(scope="module")
def msi_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    built = build_msi(
        tmp_path_factory.mktemp("msi"), name="Contoso Viewer", version="2.4.1", manufacturer="C"
    )
    return built.path.read_bytes()


@pytest.fixture(scope="module")
def msp_bytes(msi_bytes: bytes) -> bytes:
    """Debian builds no patch: the database with a patch's storage class reads as one."""
    assert msi_bytes.count(DATABASE_CLSID) == 1
    return msi_bytes.replace(DATABASE_CLSID, PATCH_CLSID)


@pytest.fixture(scope="module")
def exe_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    program = build_exe(
        tmp_path_factory.mktemp("exe"),
        product_name="Fabrikam Agent",
        version="4.3.2.1",
        company="Fabrikam",
        description="agent",
    )
    return program.read_bytes()


# ---- installers ----------------------------------------------------------------------------


async def test_issue_17_summary_vector_count_is_read_without_looping(
    msi_bytes: bytes, tmp_path: Path
) -> None:
    """The 6-byte change from issue 17 (a summary property made a vector declaring
    2,147,483,647 empty items) looped for ever; the vector is now passed over."""
    hostile = vector_count_mutation(msi_bytes, 2, 0x1000, 0x7FFFFFFF)
    assert sum(a != b for a, b in zip(hostile, msi_bytes, strict=True)) <= 6
    path = tmp_path / "hostile.msi"
    path.write_bytes(hostile)
    metadata = await probe_installer(path, "hostile.msi", LIMITS)
    assert (metadata.kind, metadata.product_name) == ("msi", "Contoso Viewer")


async def test_summary_section_declaring_too_many_properties_is_refused(
    msi_bytes: bytes, tmp_path: Path
) -> None:
    """A property count the section cannot hold is refused, saying so."""
    path = tmp_path / "count.msi"
    path.write_bytes(section_count_mutation(msi_bytes))
    with pytest.raises(InvalidInstaller, match=r"count\.msi: corrupt .*2147483647 properties"):
        await probe_installer(path, "count.msi", LIMITS)


async def test_exe_declaring_fewer_data_directories_is_read(
    exe_bytes: bytes, tmp_path: Path
) -> None:
    """Reading the signature's directory past the declared ones raised IndexError (a 502
    and a dead letter); a program without those directories simply has no version resource."""
    path = tmp_path / "short.exe"
    path.write_bytes(fewer_data_directories(exe_bytes))
    metadata = await probe_installer(path, "short.exe", LIMITS)
    assert (metadata.kind, metadata.product_name) == ("exe", None)


async def test_probe_past_its_time_is_killed_and_refused(msi_bytes: bytes, tmp_path: Path) -> None:
    """The child never outlives the wall-clock limit; the refusal names the setting."""
    path = tmp_path / "slow.msi"
    path.write_bytes(msi_bytes)
    hasty = ProbeLimits(cpu_seconds=10, memory_bytes=LIMITS.memory_bytes, timeout_seconds=0.001)
    with pytest.raises(InvalidInstaller, match=r"slow\.msi: .*INSTALLER_PROBE_TIMEOUT_SECONDS"):
        await probe_installer(path, "slow.msi", hasty)


@pytest.mark.parametrize(
    ("code", "output", "reason"),
    [
        (-signal.SIGXCPU, b"", r"more than 10 CPU seconds"),
        (-signal.SIGKILL, b"", r"killed for its memory"),
        (1, b"", r"metadata reader failed \(exit status 1\): boom"),
        (0, b'{"metadata": {"kind": "msi"}}', r"metadata reader failed"),
        (
            0,
            (
                b'{"metadata": {"kind": "zip", "product_name": null, "version": null, '
                b'"manufacturer": null, "product_code": null, "description": null}}'
            ),
            r"metadata reader failed",
        ),
        (0, b'{"refused": "x.msi: the file is empty"}', r"^x\.msi: the file is empty$"),
    ],
)
def test_every_way_the_child_ends_without_metadata_is_a_refusal(
    code: int, output: bytes, reason: str
) -> None:
    """A limit hit, a crash or a garbled answer is a refusal naming the file, never an error
    that would be retried."""
    with pytest.raises(InvalidInstaller, match=reason):
        _answer(code, output, b"Traceback ...\nboom\n", "x.msi", LIMITS)


@pytest.mark.parametrize(("kind", "count"), [("msi", MSI_MUTATIONS), ("msp", MSP_MUTATIONS)])
async def test_mutated_windows_installer_files_are_read_or_refused_clearly(
    kind: str, count: int, msi_bytes: bytes, msp_bytes: bytes, tmp_path: Path
) -> None:
    """Random and crafted changes to a real database (and patch): metadata or a clear refusal."""
    base = msi_bytes if kind == "msi" else msp_bytes
    mutations = compound_mutations(base, count, random.Random(SEED))
    results = await probe_all(tmp_path, mutations, f".{kind}")
    assert unclear(results, f".{kind}") == []
    assert any(isinstance(outcome, InstallerMetadata) for _, outcome in results)
    assert any(isinstance(outcome, InvalidInstaller) for _, outcome in results)


async def test_mutated_programs_are_read_or_refused_clearly(
    exe_bytes: bytes, tmp_path: Path
) -> None:
    """Random changes to a real program's headers and version resource, and truncations."""
    mutations = exe_mutations(exe_bytes, EXE_MUTATIONS, random.Random(SEED))
    results = await probe_all(tmp_path, mutations, ".exe")
    assert unclear(results, ".exe") == []
    assert any(isinstance(outcome, InstallerMetadata) for _, outcome in results)
    assert any(isinstance(outcome, InvalidInstaller) for _, outcome in results)


# ---- CVRF ----------------------------------------------------------------------------------

HEAD = (
    b'<cvrf:cvrfdoc xmlns:cvrf="http://www.icasi.org/CVRF/schema/cvrf/1.1" '
    b'xmlns:prod="http://www.icasi.org/CVRF/schema/prod/1.1" '
    b'xmlns:vuln="http://www.icasi.org/CVRF/schema/vuln/1.1">'
    b"<cvrf:DocumentTracking><cvrf:Identification><cvrf:ID>X</cvrf:ID></cvrf:Identification>"
    b"<cvrf:InitialReleaseDate>2026-02-10T08:00:00</cvrf:InitialReleaseDate>"
    b"</cvrf:DocumentTracking>"
)
TAIL = b"</cvrf:cvrfdoc>"


@pytest.fixture(scope="module")
def cvrf_seed() -> bytes:
    """A small real document: February's header and product tree and three KB fixes."""
    text = (DATA / "cvrf-2026-Feb.xml").read_bytes()
    blocks = re.findall(rb"<vuln:Vulnerability\b.*?</vuln:Vulnerability>", text, re.DOTALL)
    fixes = [b for b in blocks if re.search(rb"<vuln:Description>(KB)?\d+<", b)][:3]
    head = text[: text.index(b"</prod:ProductTree>") + len(b"</prod:ProductTree>")]
    return head + b"".join(fixes) + TAIL


def cvrf_mutations(seed: bytes, count: int, rng: random.Random) -> list[Mutation]:
    """Byte changes, truncations, and structural ones: nesting, siblings, DOCTYPE, entities."""
    inside = seed.index(b"<vuln:Vulnerability")
    structural: list[Callable[[], bytes]] = [
        lambda: seed[: rng.randrange(len(seed))],
        lambda: seed[:inside] + b"<a>" * rng.randint(30, 3000) + seed[inside:],
        lambda: seed[:inside] + b"<a/>" * rng.randint(1000, 20000) + seed[inside:],
        lambda: b'<!DOCTYPE x [<!ENTITY e "' + b"<a/>" * 100 + b'">]>' + seed,
        lambda: seed[:inside] + b"&e;" + seed[inside:],
        lambda: (
            seed[:inside] + b'<a b="' + b"x" * rng.randint(1, 3_000_000) + b'"/>' + seed[inside:]
        ),
        lambda: seed.replace(b"2026-02-10", bytes(rng.randrange(256) for _ in range(10)), 1),
    ]
    found: list[Mutation] = []
    for number in range(count):
        if number % 3 == 0:
            pick = rng.randrange(len(structural))
            found.append((f"structural {pick}", structural[pick]()))
        else:
            found.append((f"random {number}", mutate(seed, rng, [(inside, len(seed))])))
    return found


def test_mutated_cvrf_documents_are_read_or_refused_clearly(cvrf_seed: bytes) -> None:
    """No mutation of a real document raises anything but InvalidDocument."""
    refused = 0
    for what, document in cvrf_mutations(cvrf_seed, CVRF_MUTATIONS, random.Random(SEED)):
        try:
            parse_cvrf(io.BytesIO(document))
        except InvalidDocument:
            refused += 1
        except Exception as error:  # noqa: BLE001 - the point is to catch anything else
            pytest.fail(f"{what}: {type(error).__name__}: {error}")
    assert 0 < refused < CVRF_MUTATIONS


@pytest.mark.parametrize(
    ("document", "limits", "reason"),
    [
        (
            b'<!DOCTYPE cvrf:cvrfdoc [<!ENTITY a "' + b"<x/>" * 5000 + b'">'
            b'<!ENTITY b "' + b"&a;" * 3000 + b'">]>' + HEAD + b"&b;" * 100 + TAIL,
            Limits(),
            r"DOCTYPE .*not allowed",
        ),
        (HEAD + b"<a>" * 100 + b"</a>" * 100 + TAIL, Limits(), r"more than 32 elements nested"),
        (
            HEAD + b"<p>" + b"<x/>" * 3000 + b"</p>" + TAIL,
            Limits(max_elements=2000),
            r"2000 elements in all",
        ),
        (
            HEAD + b"<vuln:Vulnerability>" + b"<x/>" * 3000 + b"</vuln:Vulnerability>" + TAIL,
            Limits(max_kept_elements=1000),
            r"1000 elements in one .*Vulnerability",
        ),
        (
            HEAD + b"<p>" + b"t" * 5000 + b"</p>" + TAIL,
            Limits(max_text_per_element=4096),
            r"without markup|in one element",
        ),
        (
            HEAD + b"<p>" + b"t&amp;" * 3000 + b"</p>" + TAIL,
            Limits(max_text_per_element=4096),
            r"4096 characters in one element",
        ),
        (
            HEAD + b'<p a="' + b"v" * 200_000 + b'"/>' + TAIL,
            Limits(max_text_per_element=4096),
            r"without markup",
        ),
        (
            HEAD + b"<p>" + b"<q>tttt</q>" * 3000 + b"</p>" + TAIL,
            Limits(max_text_total=10_000),
            r"10000 characters of text in all",
        ),
        # Refused while still open (the document never ends): a child of the root is read
        # once it ends, but not held unmeasured that long.
        (HEAD + b"<p>" + b"<x/>" * 100_000, Limits(max_kept_elements=1000), r"1000 .* in one p"),
        (HEAD + b"<p>" + b"<a>" * 30_000, Limits(), r"more than 32 elements nested"),
        # The DOCTYPE is refused however far into the document it comes.
        (
            b'<?xml version="1.0"?><!--'
            + b"c" * 100_000
            + b'--><!DOCTYPE x [<!ENTITY e "y">]>'
            + HEAD
            + TAIL,
            Limits(),
            r"DOCTYPE .*not allowed",
        ),
    ],
)
def test_crafted_cvrf_shapes_are_refused_before_they_grow(
    document: bytes, limits: Limits, reason: str
) -> None:
    """Entities, depth, siblings in one child or one vulnerability, huge text or attributes:
    each stops at its limit with the reason, rather than being held in memory."""
    with pytest.raises(InvalidDocument, match=reason):
        parse_cvrf(io.BytesIO(document), limits=limits)


# ---- file names ----------------------------------------------------------------------------

HOSTILE_NAMES = [
    "CON",
    "con.msi",
    "NUL.exe",
    "COM1.msi",
    "LPT9.exe",
    "a.txt:stream",
    "setup.msi:Zone.Identifier",
    "%TEMP%\\x.msi",
    "../x.msi",
    "..\\..\\x.msi",
    "/etc/x.msi",
    "C:\\x.msi",
    "a\x00b.msi",
    "tab\there.msi",
    "x" * 300 + ".msi",
    "setup.msi.",
    "setup.msi ",
    'quo"te.msi',
    "pipe|.msi",
    "star*.msi",
    "what?.msi",
    "<x>.msi",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[f"name{i}" for i in range(len(HOSTILE_NAMES))])
def test_hostile_installer_names_are_refused_naming_field_value_and_rule(name: str) -> None:
    """Names Windows cannot hold, would misread or that leave the installer's folder."""
    with pytest.raises(InvalidInput, match=r"allowed") as caught:
        check_files(UploadFile.model_construct(path=name, size=1), [])
    assert caught.value.field == "installer.path"
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[f"name{i}" for i in range(len(HOSTILE_NAMES))])
def test_hostile_extra_file_names_are_refused_naming_field_value_and_rule(name: str) -> None:
    """Extra files land beside the installer: the same rules, with their own field name."""
    extra = UploadFile.model_construct(path=name, size=1)
    with pytest.raises(InvalidInput, match=r"allowed") as caught:
        check_files(UploadFile(path="setup.msi", size=1), [extra])
    assert caught.value.field == "extra_files[0].path"


@pytest.mark.parametrize("name", ["Setup.MSI", "comfy.msi", "con-tools.exe", "a b/c.d.cab"])
def test_ordinary_names_still_pass(name: str) -> None:
    """Device names only match a whole name (before any extension), not a prefix."""
    assert check_files(UploadFile(path="main.exe", size=1), [UploadFile(path=name, size=1)])
