"""A folder of source documents carried into a disconnected network, and its checksum manifest.

The manifest is a file named SHA256SUMS in the folder, in the format `sha256sum` writes: one
line per file, `<64 hex digits><two spaces><file name>` (`sha256sum -b` writes ` *` instead of
the second space; both are read). It must account for every file of the folder: a file the
manifest does not list, a listed file that is absent, or a file whose SHA-256 differs refuses
the whole folder, each problem named with its file, so that nothing of a set that did not
arrive intact is imported.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "SHA256SUMS"
"""The manifest's file name inside the folder."""

DOCUMENT_SUFFIXES = (".xml",)
"""Files of a verified folder that are imported as CVRF documents; others (a README, say)
are verified like them but not imported."""

_LINE = re.compile(r"^(?P<digest>[0-9A-Fa-f]{64}) (?P<mode>[ *])(?P<name>.+)$")
_BLOCK_BYTES = 1024 * 1024


class ManifestError(ValueError):
    """The folder or its manifest is refused; the message names every file at fault."""


@dataclass(frozen=True)
class VerifiedFile:
    """A file of the folder whose SHA-256 matched its manifest line."""

    path: Path
    sha256: str

    @property
    def is_document(self) -> bool:
        """Whether it is imported as a CVRF document (by its suffix)."""
        return self.path.suffix.lower() in DOCUMENT_SUFFIXES


def parse_manifest(text: str, *, source: str = MANIFEST_NAME) -> dict[str, str]:
    """File name -> lower-case hex SHA-256, from a manifest's text. Blank lines are skipped;
    any other line that is not `<64 hex>  <name>` (or `<64 hex> *<name>`) is refused with its
    line number, as are names with a folder part, a name listed twice and an empty manifest."""
    sums: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("\\"):
            problems.append(
                f"{source} line {number}: {line[:80]!r} is an escaped name (a backslash or a "
                "newline in the file name); rename the file to a plain name"
            )
            continue
        match = _LINE.match(line)
        if match is None:
            problems.append(
                f"{source} line {number}: {line[:80]!r} is not '<64 hex digits>  <file name>' "
                "(the format sha256sum writes)"
            )
            continue
        name, digest = match["name"], match["digest"].lower()
        if "/" in name or "\\" in name or name in (".", ".."):
            problems.append(
                f"{source} line {number}: file name {name!r} has a folder part; the manifest "
                "lists only files of its own folder, by their bare names"
            )
        elif name == MANIFEST_NAME:
            problems.append(
                f"{source} line {number}: the manifest lists itself ({name!r}); list only the "
                f"other files (`lockgate catalog import-msrc --write-manifest <folder>`)"
            )
        elif name in sums and sums[name] != digest:
            problems.append(
                f"{source} line {number}: {name!r} is listed again with another checksum"
            )
        else:
            sums[name] = digest
    if not sums and not problems:
        problems.append(f"{source} lists no file")
    if problems:
        raise ManifestError("; ".join(problems))
    return sums


def sha256_file(path: Path) -> str:
    """The file's SHA-256 as lower-case hex, read a block at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[Path]:
    """The files of the folder the manifest must cover: every entry but the manifest itself,
    by name (a sub-folder is refused, since the manifest could not list what it holds)."""
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder")
    entries = sorted(p for p in folder.iterdir() if p.name != MANIFEST_NAME)
    nested = [p.name for p in entries if not p.is_file()]
    if nested:
        raise ManifestError(
            f"{folder} holds {', '.join(repr(n) for n in nested)}, which "
            "is not a regular file; carry in a flat folder of files"
        )
    return entries


def verify_folder(folder: Path) -> list[VerifiedFile]:
    """Every file of the folder checked against its SHA256SUMS, by name; refused as a whole
    (ManifestError naming each file at fault) unless every file is listed, every listed file
    present and every checksum equal."""
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder")
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ManifestError(
            f"{folder} has no {MANIFEST_NAME}: write it where the documents were downloaded "
            f"(`lockgate catalog import-msrc --write-manifest <folder>` or `sha256sum`)"
        )
    try:
        text = manifest.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{manifest} is not UTF-8 text") from None
    expected = parse_manifest(text, source=str(manifest))
    present = {p.name: p for p in folder_files(folder)}
    problems = [
        f"{name!r} is in the folder but not in {MANIFEST_NAME}"
        for name in sorted(set(present) - set(expected))
    ]
    problems += [
        f"{name!r} is listed in {MANIFEST_NAME} but absent from the folder"
        for name in sorted(set(expected) - set(present))
    ]
    verified: list[VerifiedFile] = []
    for name in sorted(set(present) & set(expected)):
        found = sha256_file(present[name])
        if found != expected[name]:
            problems.append(
                f"{name!r} has SHA-256 {found}, {MANIFEST_NAME} says {expected[name]} "
                "(changed or damaged on the way)"
            )
        else:
            verified.append(VerifiedFile(present[name], found))
    if problems:
        raise ManifestError(f"{folder} refused, nothing imported: " + "; ".join(problems))
    return verified


def manifest_text(folder: Path) -> str:
    """The SHA256SUMS text for every file of the folder (sorted by name), as sha256sum writes
    it."""
    lines = []
    for path in folder_files(folder):
        if "\n" in path.name or "\\" in path.name:
            raise ManifestError(f"file name {path.name!r} has a newline or a backslash")
        lines.append(f"{sha256_file(path)}  {path.name}\n")
    if not lines:
        raise ManifestError(f"{folder} holds no file to list")
    return "".join(lines)


def write_manifest(folder: Path) -> tuple[Path, int]:
    """Write (or replace) the folder's SHA256SUMS; its path and how many files it lists."""
    text = manifest_text(folder)
    path = folder / MANIFEST_NAME
    path.write_text(text, encoding="utf-8")
    return path, text.count("\n")
