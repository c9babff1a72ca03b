"""What every installer reader shares: the kinds, the metadata, the refusal and its wording."""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

InstallerKind = Literal["msi", "msp", "exe"]

KINDS: dict[str, InstallerKind] = {".msi": "msi", ".msp": "msp", ".exe": "exe"}

InstallerBytes = bytes | mmap.mmap
"""An installer's content: in memory, or a file mapped so that a large one is not read whole."""

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
PROGRAM_CONTENT = "the content is a Windows program (MZ header)"


class InvalidInstaller(ValueError):
    """The file cannot be read as the installer kind its name says."""


@dataclass(frozen=True)
class InstallerMetadata:
    """What an installer says about itself, to prefill the upload's description step."""

    kind: InstallerKind
    product_name: str | None
    version: str | None
    manufacturer: str | None
    product_code: str | None
    description: str | None


def installer_kind(filename: str) -> InstallerKind:
    """The installer kind named by the file's extension, whatever its case."""
    extension = PurePath(filename).suffix.lower()
    kind = KINDS.get(extension)
    if kind is None:
        allowed = ", ".join(KINDS)
        raise InvalidInstaller(
            f"filename {filename!r}: extension {extension or '(none)'!r} is not allowed; "
            f"allowed: {allowed}"
        )
    return kind


def describe_content(content: InstallerBytes) -> str:
    """What the file's first bytes say it is, to explain a refusal."""
    head = bytes(content[: len(OLE_MAGIC)])
    if head.startswith(b"MZ"):
        return PROGRAM_CONTENT
    if head == OLE_MAGIC:
        return "the content is an OLE compound file, such as an .msi or .msp"
    if not head.strip(b"\x00"):
        return "the content starts with zero bytes"
    return "the content is not recognised"


def clean_text(value: str | None) -> str | None:
    """A value with padding and NULs trimmed; empty means absent."""
    if value is None:
        return None
    return value.strip().strip("\x00").strip() or None
