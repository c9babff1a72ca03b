"""Metadata of uploaded installers (.msi, .msp, .exe), read from their bytes."""

from __future__ import annotations

from collections.abc import Callable

from services.catalog.domain.installers.common import (
    InstallerBytes,
    InstallerKind,
    InstallerMetadata,
    InvalidInstaller,
    installer_kind,
)
from services.catalog.domain.installers.exe import read_exe
from services.catalog.domain.installers.msi import read_msi, read_msp

_READERS: dict[InstallerKind, Callable[[InstallerBytes, str], InstallerMetadata]] = {
    "msi": read_msi,
    "msp": read_msp,
    "exe": read_exe,
}


def read_installer(content: InstallerBytes, filename: str) -> InstallerMetadata:
    """Metadata of an installer's content, uploaded under the name `filename`."""
    kind = installer_kind(filename)
    if len(content) == 0:
        raise InvalidInstaller(f"{filename}: the file is empty")
    return _READERS[kind](content, filename)
