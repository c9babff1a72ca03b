"""Metadata read from real installers built by Debian's wixl and MinGW-w64 at test time."""

from __future__ import annotations

import struct
from pathlib import Path

import pefile
import pytest

from services.catalog.domain.installers import read_installer
from services.catalog.domain.installers.common import InstallerMetadata, InvalidInstaller
from services.catalog.domain.installers.msi import decode_stream_name, read_summary
from services.catalog.store.content import mapped
from tests.support.installers import BuiltMsi, build_exe, build_msi

MSI_NAME, MSI_VERSION, MSI_MANUFACTURER = "Contoso Reporter", "2.5.1", "Contoso Société"
MSI_DESCRIPTION = "Outil de rapport Contoso, édition complète"
EXE_NAME, EXE_VERSION, EXE_COMPANY = "Fabrikam Agent", "4.3.2.1", "Fabrikam, Inc."
EXE_DESCRIPTION = "Fabrikam agent updater"


@pytest.fixture(scope="module")
def msi(tmp_path_factory: pytest.TempPathFactory) -> BuiltMsi:
    """One real .msi for the module; wixl takes a moment per build."""
    return build_msi(
        tmp_path_factory.mktemp("msi"),
        name=MSI_NAME,
        version=MSI_VERSION,
        manufacturer=MSI_MANUFACTURER,
        description=MSI_DESCRIPTION,
    )


@pytest.fixture(scope="module")
def exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real .exe with a full version resource for the module."""
    return build_exe(
        tmp_path_factory.mktemp("exe"),
        product_name=EXE_NAME,
        version=EXE_VERSION,
        company=EXE_COMPANY,
        description=EXE_DESCRIPTION,
    )


def test_stream_names_are_unpacked_two_characters_per_code_unit() -> None:
    """Tables are found only through their packed stream names (this one from a wixl MSI)."""
    assert decode_stream_name("\u3f3f\u4577\u446c\u3b6a\u45e4\u4824") == "_StringData"


def test_msi_properties_are_read_from_the_property_table(msi: BuiltMsi) -> None:
    """The description step is prefilled from what the MSI itself declares."""
    assert read_installer(msi.path.read_bytes(), "reporter.msi") == InstallerMetadata(
        kind="msi",
        product_name=MSI_NAME,
        version=MSI_VERSION,
        manufacturer=MSI_MANUFACTURER,
        product_code=msi.product_code,
        description=MSI_DESCRIPTION,
    )


def test_msi_with_over_65535_strings_is_read_through_3_byte_references(tmp_path: Path) -> None:
    """Large products outgrow 2-byte string references; their tables must still read."""
    built = build_msi(
        tmp_path,
        name=MSI_NAME,
        version=MSI_VERSION,
        manufacturer=MSI_MANUFACTURER,
        extra_properties=33_000,
    )
    metadata = read_installer(built.path.read_bytes(), "large.msi")
    assert (metadata.product_name, metadata.product_code) == (MSI_NAME, built.product_code)


def test_extension_is_matched_whatever_its_case(msi: BuiltMsi) -> None:
    """Windows file names often come in upper case (SETUP.MSI)."""
    assert read_installer(msi.path.read_bytes(), "REPORTER.MSI").product_code == msi.product_code


def test_exe_fields_are_read_from_the_version_resource(exe: Path) -> None:
    """A program installer has no Property table; its version resource names it."""
    assert read_installer(exe.read_bytes(), "agent.exe") == InstallerMetadata(
        kind="exe",
        product_name=EXE_NAME,
        version=EXE_VERSION,
        manufacturer=EXE_COMPANY,
        product_code=None,
        description=EXE_DESCRIPTION,
    )


def test_exe_without_version_string_falls_back_to_the_fixed_version(tmp_path: Path) -> None:
    """Some programs carry only the numeric version; the upload still gets one."""
    program = build_exe(
        tmp_path,
        product_name=EXE_NAME,
        version="7.8",
        company=EXE_COMPANY,
        description=EXE_DESCRIPTION,
        file_version_string=False,
    )
    assert read_installer(program.read_bytes(), "agent.exe").version == "7.8.0.0"


def test_other_extension_is_refused_naming_the_allowed_ones(msi: BuiltMsi) -> None:
    """Only .msi, .msp and .exe installers can be uploaded."""
    with pytest.raises(InvalidInstaller, match=r"'\.zip'.*allowed: \.msi, \.msp, \.exe"):
        read_installer(msi.path.read_bytes(), "reporter.zip")


@pytest.mark.parametrize("name", ["empty.msi", "empty.msp", "empty.exe"])
def test_empty_file_is_refused(name: str) -> None:
    """An interrupted copy leaves an empty file that must not become an update."""
    with pytest.raises(InvalidInstaller, match=rf"{name}: the file is empty"):
        read_installer(b"", name)


def test_truncated_msi_is_refused(msi: BuiltMsi) -> None:
    """Half an MSI would fail on every computer; refuse it at upload."""
    content = msi.path.read_bytes()
    with pytest.raises(InvalidInstaller, match=r"cut\.msi: corrupt or truncated"):
        read_installer(content[: len(content) // 2], "cut.msi")


def test_truncated_exe_is_refused(exe: Path) -> None:
    """A program cut short still has readable headers; its sections are what is missing."""
    content = exe.read_bytes()
    with pytest.raises(InvalidInstaller, match=r"cut\.exe: truncated Windows program"):
        read_installer(content[: len(content) // 2], "cut.exe")


def test_program_renamed_msi_is_refused(exe: Path) -> None:
    """The extension decides how Windows runs the file, so the content must match it."""
    with pytest.raises(InvalidInstaller, match=r"agent\.msi: not a Windows Installer database.*"):
        read_installer(exe.read_bytes(), "agent.msi")


def test_msi_renamed_msp_is_refused(msi: BuiltMsi) -> None:
    """A database and a patch are both compound files; the storage class tells them apart."""
    with pytest.raises(
        InvalidInstaller, match=r"not a Windows Installer patch.*database \(\.msi\)"
    ):
        read_installer(msi.path.read_bytes(), "reporter.msp")


def test_msi_renamed_exe_is_refused(msi: BuiltMsi) -> None:
    """Windows would refuse to run it, so the upload refuses it first."""
    with pytest.raises(InvalidInstaller, match=r"not a Windows program: .*OLE compound file"):
        read_installer(msi.path.read_bytes(), "reporter.exe")


def test_zero_filled_exe_is_refused() -> None:
    """A preallocated but never written file has the right size and no content."""
    with pytest.raises(InvalidInstaller, match=r"zeros\.exe: not a Windows program: .*zero bytes"):
        read_installer(bytes(64 * 1024), "zeros.exe")


def test_mapped_files_read_as_their_bytes(msi: BuiltMsi, exe: Path, tmp_path: Path) -> None:
    """The service maps the assembled installer rather than reading a large file whole."""
    for path, name in ((msi.path, "reporter.msi"), (exe, "agent.exe")):
        with mapped(path) as content:
            assert read_installer(content, name) == read_installer(path.read_bytes(), name)
    empty = tmp_path / "empty.exe"
    empty.write_bytes(b"")
    with mapped(empty) as content, pytest.raises(InvalidInstaller, match="the file is empty"):
        read_installer(content, "empty.exe")


def _summary(properties: list[tuple[int, bytes]]) -> bytes:
    """A summary information stream: header, one section, (pid, type + value) properties."""
    table = b"".join(
        struct.pack("<II", pid, 8 + 8 * len(properties) + sum(len(v) for _, v in properties[:i]))
        for i, (pid, _) in enumerate(properties)
    )
    body = table + b"".join(value for _, value in properties)
    section = struct.pack("<II", 8 + len(body), len(properties)) + body
    header = b"\xfe\xff\x00\x00" + bytes(20) + struct.pack("<I", 1) + bytes(16)
    return header + struct.pack("<I", 48) + section


def _text(value: bytes) -> bytes:
    return struct.pack("<II", 30, len(value) + 1) + value + b"\x00"


def test_summary_texts_are_read_and_vectors_passed_over() -> None:
    """Only the strings the upload shows are read; a vector is skipped, whatever it declares."""
    vector = struct.pack("<II", 0x1000, 0x7FFFFFFF)  # issue 17: two billion empty items
    stream = _summary([(3, _text(b"Subject")), (4, vector), (6, _text(b"Comments"))])
    assert read_summary(stream) == {3: "Subject", 6: "Comments"}


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (b"\xfe\xff" + bytes(10), r"no property set header"),
        (_summary([(3, _text(b"x"))])[:48] + struct.pack("<II", 12, 5), r"declaring 5 properties"),
        (_summary([(3, struct.pack("<II", 30, 1 << 30))]), r"property 3 needs 1073741824 bytes"),
        (
            _summary([(3, _text(b"x"))]).replace(
                struct.pack("<II", 3, 16), struct.pack("<II", 3, 999)
            ),
            r"property 3 at offset 999 is past the section end",
        ),
    ],
)
def test_damaged_summary_is_refused_saying_where(stream: bytes, reason: str) -> None:
    """Counts and offsets are checked against the bytes that hold them before anything loops."""
    with pytest.raises(ValueError, match=reason):
        read_summary(stream)


def test_program_declaring_fewer_data_directories_reads_without_them(exe: Path) -> None:
    """Directories past the declared count are absent, not an IndexError (issue 17)."""
    program = exe.read_bytes()
    pe = pefile.PE(data=program, fast_load=True)
    where = pe.OPTIONAL_HEADER.get_field_absolute_offset("NumberOfRvaAndSizes")
    pe.close()
    short = program[:where] + struct.pack("<I", 2) + program[where + 4 :]
    assert read_installer(short, "short.exe").product_name is None
