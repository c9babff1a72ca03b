"""Windows programs (.exe): name, version and company from the version resource."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pefile

from services.catalog.domain.installers.common import (
    PROGRAM_CONTENT,
    InstallerBytes,
    InstallerMetadata,
    InvalidInstaller,
    clean_text,
    describe_content,
)

_RESOURCE_DIRECTORY = "IMAGE_DIRECTORY_ENTRY_RESOURCE"
_SECURITY_DIRECTORY = "IMAGE_DIRECTORY_ENTRY_SECURITY"

# What pefile lets through on a damaged program besides PEFormatError: it indexes tables the
# headers size (data directories, resource entries) and unpacks with struct as it goes.
_PE_ERRORS = (IndexError, KeyError, ValueError, struct.error, OverflowError, UnicodeError)


def read_exe(content: InstallerBytes, filename: str) -> InstallerMetadata:
    with _program(content, filename) as pe:
        if bool(pe.is_dll()):
            raise InvalidInstaller(f"{filename}: not a Windows program: it is a library (DLL)")
        _check_complete(pe, len(content), filename)
        if _directory(pe, _RESOURCE_DIRECTORY) is not None:
            pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY[_RESOURCE_DIRECTORY]])
        strings = _version_strings(pe)
        fixed_version = _fixed_file_version(pe)
    return InstallerMetadata(
        kind="exe",
        product_name=strings.get("ProductName"),
        version=strings.get("FileVersion") or fixed_version,
        manufacturer=strings.get("CompanyName"),
        product_code=None,
        description=strings.get("FileDescription"),
    )


@contextmanager
def _program(content: InstallerBytes, filename: str) -> Iterator[pefile.PE]:
    """The program's headers (sections and data directories parsed on demand), then closed."""
    try:
        pe = pefile.PE(data=content, fast_load=True)
    except pefile.PEFormatError as error:
        seen = describe_content(content)
        detail = error.value if seen == PROGRAM_CONTENT else seen
        raise InvalidInstaller(f"{filename}: not a Windows program: {detail}") from error
    except _PE_ERRORS as error:
        raise InvalidInstaller(
            f"{filename}: corrupt Windows program: its headers cannot be read ({error})"
        ) from error
    try:
        yield pe
    except pefile.PEFormatError as error:
        raise InvalidInstaller(f"{filename}: corrupt Windows program: {error.value}") from error
    except _PE_ERRORS as error:
        raise InvalidInstaller(
            f"{filename}: corrupt Windows program: its version resource cannot be read ({error})"
        ) from error
    finally:
        pe.close()


def _check_complete(pe: pefile.PE, size: int, filename: str) -> None:
    """Refuse a program cut short: its sections or signature reach past the end of the file."""
    ends = [_section_end(section) for section in pe.sections]
    security = _directory(pe, _SECURITY_DIRECTORY)
    if security is not None:  # the signature's address is a file offset, usually the very end
        ends.append(int(security.VirtualAddress) + int(security.Size))
    needed = max(ends, default=0)
    if needed > size:
        raise InvalidInstaller(
            f"{filename}: truncated Windows program: {size} bytes, its headers need {needed}"
        )


def _directory(pe: pefile.PE, name: str) -> pefile.Structure | None:
    """A data directory the headers declare and fill, None when absent or empty.

    The optional header says how many directories follow it; a program may declare fewer
    than the sixteen pefile names, so an index past them means the directory is absent.
    """
    directories = pe.OPTIONAL_HEADER.DATA_DIRECTORY
    index = pefile.DIRECTORY_ENTRY[name]
    if index >= len(directories) or not int(directories[index].Size):
        return None
    entry: pefile.Structure = directories[index]
    return entry


def _section_end(section: pefile.SectionStructure) -> int:
    """Offset just past the bytes of a section that Windows loads from the file (0: none)."""
    # the loader reads no more than the virtual size, so raw padding past the end is harmless
    raw, virtual = int(section.SizeOfRawData), int(section.Misc_VirtualSize)
    loaded = min(raw, virtual) if virtual else raw
    return int(section.PointerToRawData) + loaded if loaded else 0


def _version_strings(pe: pefile.PE) -> dict[str, str]:
    """StringFileInfo entries; with several languages, the first one that has a key wins."""
    strings: dict[str, str] = {}
    for info in getattr(pe, "FileInfo", None) or []:
        for block in info:
            for table in getattr(block, "StringTable", None) or []:
                for key, value in table.entries.items():
                    text = clean_text(_pe_text(value))
                    if text is not None:
                        strings.setdefault(_pe_text(key), text)
    return strings


def _fixed_file_version(pe: pefile.PE) -> str | None:
    """The numeric file version, a.b.c.d, from the fixed part of the version resource."""
    for fixed in getattr(pe, "VS_FIXEDFILEINFO", None) or []:
        most, least = int(fixed.FileVersionMS), int(fixed.FileVersionLS)
        return f"{most >> 16}.{most & 0xFFFF}.{least >> 16}.{least & 0xFFFF}"
    return None


def _pe_text(value: object) -> str:
    # pefile hands version strings over as UTF-8 bytes
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
