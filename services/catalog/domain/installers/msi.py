"""Windows Installer databases (.msi) and patches (.msp): their Property and patch metadata."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, cast

import olefile

from services.catalog.domain.installers.common import (
    InstallerBytes,
    InstallerMetadata,
    InvalidInstaller,
    clean_text,
    describe_content,
)

# Root storage class of a Windows Installer database and of a patch; Windows Installer
# refuses to open a file whose class is neither, so we refuse it too.
_DATABASE_CLSID = "000C1084-0000-0000-C000-000000000046"
_PATCH_CLSID = "000C1086-0000-0000-C000-000000000046"
_STORAGE_CLASSES = {
    _DATABASE_CLSID: "a Windows Installer database (.msi)",
    _PATCH_CLSID: "a Windows Installer patch (.msp)",
    "000C1082-0000-0000-C000-000000000046": "a Windows Installer transform (.mst)",
}

# Stream names are packed two characters per UTF-16 code unit over this 64-character set;
# a table's stream starts with the marker.
_NAME_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._"
_TABLE_MARKER = "\u4840"

_SUMMARY_STREAM = "\x05SummaryInformation"
_PID_CODEPAGE, _PID_SUBJECT, _PID_COMMENTS, _PID_REVISION = 1, 3, 6, 9
_VT_I2, _VT_LPSTR, _VT_LPWSTR = 2, 30, 31
_PROPERTY_SET_HEADER = 48  # byte order .. property set count, then the first FMTID and offset

_GUID = re.compile(r"\{[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}")

# What olefile raises on a damaged compound file: it reads with struct and indexes its
# sector tables directly, so corruption surfaces as any of these.
_OLE_ERRORS = (OSError, ValueError, struct.error, IndexError, OverflowError)


def decode_stream_name(encoded: str) -> str:
    """A compound-file stream name as Windows Installer packs it, back to plain text."""
    decoded: list[str] = []
    for char in encoded:
        code = ord(char)
        if 0x3800 <= code < 0x4800:
            code -= 0x3800
            decoded += (_NAME_CHARSET[code & 0x3F], _NAME_CHARSET[code >> 6])
        elif 0x4800 <= code < 0x4840:
            decoded.append(_NAME_CHARSET[code - 0x4800])
        else:
            decoded.append(char)
    return "".join(decoded)


@dataclass(frozen=True)
class _StringPool:
    strings: tuple[str, ...]  # index is the string id; id 0 is the null string
    reference_size: int  # bytes per string reference in table columns: 2, or 3 when large


class _Database:
    """Tables and summary information of one open Windows Installer compound file."""

    def __init__(self, ole: olefile.OleFileIO[str], filename: str, size: int) -> None:
        self._ole = ole
        self._filename = filename
        self._size = size
        self._tables = _table_streams(ole)
        self._pool: _StringPool | None = None

    def table(self, name: str, columns: int) -> list[tuple[str, ...]] | None:
        """Rows of a table whose columns are all strings, or None when it is absent."""
        stream = self._tables.get(name)
        if stream is None:
            return None
        return _string_rows(self._stream(stream), columns, self._string_pool(), name)

    def summary(self) -> dict[int, str]:
        """Text properties of the summary information stream, by property id."""
        if not self._ole.exists(_SUMMARY_STREAM):
            return {}
        return read_summary(self._stream(_SUMMARY_STREAM))

    def _string_pool(self) -> _StringPool:
        if self._pool is None:
            pool, data = self._tables.get("_StringPool"), self._tables.get("_StringData")
            if pool is None or data is None:
                raise InvalidInstaller(f"{self._filename}: the database has no string pool")
            self._pool = _parse_string_pool(self._stream(pool), self._stream(data))
        return self._pool

    def _stream(self, name: str) -> bytes:
        # a directory entry may declare any size; no stream can hold more than the file
        declared = self._ole.get_size(name)
        if declared > self._size:
            raise ValueError(
                f"stream {decode_stream_name(name)!r} declares {declared} bytes, "
                f"more than the whole file ({self._size})"
            )
        with self._ole.openstream(name) as stream:
            data: bytes = stream.read()
        return data


def read_msi(content: InstallerBytes, filename: str) -> InstallerMetadata:
    with _open_database(content, filename, _DATABASE_CLSID, "Windows Installer database") as db:
        rows = db.table("Property", 2)
        if rows is None:
            raise InvalidInstaller(f"{filename}: the database has no Property table")
        properties = {row[0]: row[1] for row in rows}
        summary = db.summary()
    return InstallerMetadata(
        kind="msi",
        product_name=clean_text(properties.get("ProductName")),
        version=clean_text(properties.get("ProductVersion")),
        manufacturer=clean_text(properties.get("Manufacturer")),
        product_code=clean_text(properties.get("ProductCode")),
        description=clean_text(summary.get(_PID_SUBJECT)) or clean_text(summary.get(_PID_COMMENTS)),
    )


def read_msp(content: InstallerBytes, filename: str) -> InstallerMetadata:
    with _open_database(content, filename, _PATCH_CLSID, "Windows Installer patch") as db:
        rows = db.table("MsiPatchMetadata", 3) or []
        summary = db.summary()
    # Company is empty for the standard properties; other rows belong to a vendor's own keys
    metadata = {key: value for company, key, value in rows if not company}
    revision = summary.get(_PID_REVISION, "")
    patch_code = _GUID.match(revision)  # the patch's own code, then those it obsoletes
    return InstallerMetadata(
        kind="msp",
        product_name=clean_text(metadata.get("DisplayName")),
        version=None,
        manufacturer=clean_text(metadata.get("ManufacturerName")),
        product_code=patch_code.group(0).upper() if patch_code else None,
        description=clean_text(metadata.get("Description"))
        or clean_text(summary.get(_PID_SUBJECT))
        or clean_text(summary.get(_PID_COMMENTS)),
    )


@contextmanager
def _open_database(
    content: InstallerBytes, filename: str, clsid: str, what: str
) -> Iterator[_Database]:
    # a mapped file reads, seeks and tells like a binary file, which is all olefile asks
    stream = io.BytesIO(content) if isinstance(content, bytes) else cast("IO[bytes]", content)
    if not olefile.isOleFile(stream):
        raise InvalidInstaller(f"{filename}: not a {what}: {describe_content(content)}")
    try:
        # DEFECT_INCORRECT: a damaged sector chain or directory fails at once rather than
        # being read around (a looping chain would otherwise be followed to its declared size)
        with olefile.OleFileIO(stream, raise_defects=olefile.DEFECT_INCORRECT) as ole:
            _check_storage_class(ole, clsid, what, filename)
            yield _Database(ole, filename, len(content))
    except InvalidInstaller:
        raise
    except _OLE_ERRORS as error:
        raise InvalidInstaller(f"{filename}: corrupt or truncated {what}: {error}") from error


def _check_storage_class(ole: olefile.OleFileIO[str], clsid: str, what: str, filename: str) -> None:
    found = (ole.root.clsid if ole.root is not None else "").upper()
    if found != clsid:
        actual = _STORAGE_CLASSES.get(found, f"of storage class {found or '(none)'}")
        raise InvalidInstaller(f"{filename}: not a {what}: the content is {actual}")


def _table_streams(ole: olefile.OleFileIO[str]) -> dict[str, str]:
    """Decoded table name -> stream name, for the tables stored at the root."""
    streams: dict[str, str] = {}
    for entry in ole.listdir():
        if len(entry) == 1 and entry[0].startswith(_TABLE_MARKER):
            streams[decode_stream_name(entry[0][1:])] = entry[0]
    return streams


def read_summary(stream: bytes) -> dict[int, str]:
    """Text properties of a summary information stream (MS-OLEPS), by property id.

    Only the first section's strings are read; every count and offset is checked against the
    bytes that hold it, so a damaged stream fails at once with where it went wrong.
    """
    if len(stream) < _PROPERTY_SET_HEADER or stream[:2] != b"\xfe\xff":
        raise ValueError(f"summary information of {len(stream)} bytes has no property set header")
    (start,) = struct.unpack_from("<I", stream, _PROPERTY_SET_HEADER - 4)
    if start > len(stream) - 8:
        raise ValueError(f"summary information section starts at {start}, past its end")
    size, count = struct.unpack_from("<II", stream, start)
    if size > len(stream) - start or count > (size - 8) // 8:
        raise ValueError(
            f"summary information section of {size} bytes declaring {count} properties "
            f"does not fit the {len(stream) - start} bytes left"
        )
    section = stream[start : start + size]
    found: dict[int, tuple[int, int]] = {}
    for index in range(count):
        pid, offset = struct.unpack_from("<II", section, 8 + index * 8)
        if offset > size - 4:
            raise ValueError(f"summary property {pid} at offset {offset} is past the section end")
        found[pid] = (struct.unpack_from("<H", section, offset)[0], offset + 4)
    codepage = 0  # a 16-bit value read unsigned: 65001 (UTF-8) is stored as -535
    if found.get(_PID_CODEPAGE, (0, 0))[0] == _VT_I2:
        raw = _property_bytes(section, found[_PID_CODEPAGE][1], 2, _PID_CODEPAGE)
        codepage = int.from_bytes(raw, "little")
    texts: dict[int, str] = {}
    for pid, (kind, at) in found.items():
        if kind not in (_VT_LPSTR, _VT_LPWSTR):
            continue  # numbers, dates and vectors: nothing the upload shows
        length = _property_bytes(section, at, 4, pid)
        unit = 2 if kind == _VT_LPWSTR else 1
        raw = _property_bytes(section, at + 4, int.from_bytes(length, "little") * unit, pid)
        text = raw.decode("utf-16-le", "replace") if unit == 2 else _decode_text(raw, codepage)
        texts[pid] = text.split("\x00", 1)[0]
    return texts


def _property_bytes(section: bytes, offset: int, length: int, pid: int) -> bytes:
    if length > len(section) - offset:
        raise ValueError(
            f"summary property {pid} needs {length} bytes at offset {offset}; "
            f"the section has {max(len(section) - offset, 0)} left"
        )
    return section[offset : offset + length]


def _parse_string_pool(pool: bytes, data: bytes) -> _StringPool:
    """Strings in id order: _StringPool holds (length, refcount) pairs, _StringData the bytes."""
    if len(pool) < 4 or len(pool) % 4:
        raise ValueError(f"string pool of {len(pool)} bytes is not a whole number of entries")
    codepage, flags = struct.unpack_from("<HH", pool)
    entries = list(struct.iter_unpack("<HH", pool[4:]))
    strings, offset, index = [""], 0, 0
    while index < len(entries):
        length, references = entries[index]
        index += 1
        if length == 0 and references != 0:  # over 64 KiB: the next entry holds the length
            if index == len(entries):
                raise ValueError("string pool ends inside a long string entry")
            low, high = entries[index]
            length, index = high << 16 | low, index + 1
        if offset + length > len(data):
            raise ValueError("string data is shorter than the string pool says")
        strings.append(_decode_text(data[offset : offset + length], codepage))
        offset += length
    return _StringPool(strings=tuple(strings), reference_size=3 if flags & 0x8000 else 2)


def _string_rows(
    stream: bytes, columns: int, pool: _StringPool, table: str
) -> list[tuple[str, ...]]:
    """A table stored column by column, each cell a reference into the string pool."""
    row_size = columns * pool.reference_size
    if len(stream) % row_size:
        raise ValueError(f"table {table} is not a whole number of {row_size}-byte rows")
    count = len(stream) // row_size
    cells: list[list[str]] = []
    for column in range(columns):
        start = column * count * pool.reference_size
        cells.append(
            [_lookup(pool, stream, start + row * pool.reference_size) for row in range(count)]
        )
    return list(zip(*cells, strict=True))


def _lookup(pool: _StringPool, stream: bytes, offset: int) -> str:
    string_id = int.from_bytes(stream[offset : offset + pool.reference_size], "little")
    if string_id >= len(pool.strings):
        raise ValueError(f"string id {string_id} is outside the string pool")
    return pool.strings[string_id]


def _decode_text(raw: bytes, codepage: int) -> str:
    # msitools writes UTF-8 whatever code page it declares, and text that is valid UTF-8 is
    # almost never meant in a single-byte code page; otherwise trust the declared one.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode(f"cp{codepage}" if codepage else "cp1252", errors="replace")
    except LookupError:  # a code page Python does not know: keep what is readable
        return raw.decode("cp1252", errors="replace")
