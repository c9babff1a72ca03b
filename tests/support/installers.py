"""Build real Windows installers at test time with Debian's wixl and MinGW-w64 toolchain."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

ENSURE_HINT = (
    "run scripts/ensure-debian-packages.sh wixl msitools gcc-mingw-w64-x86-64 "
    "binutils-mingw-w64-x86-64 (the Makefile runs it before pytest)"
)

# Building an .msp needs WiX's torch/pyro or Microsoft's patch tools; Debian ships neither
# (wixl only builds products), so no build_msp here.


class MissingTool(RuntimeError):
    """A program the installer builders need is not on PATH."""


@dataclass(frozen=True)
class BuiltMsi:
    """A Windows Installer database built by wixl, and the ProductCode it was given."""

    path: Path
    product_code: str


def build_msi(
    directory: Path,
    *,
    name: str,
    version: str,
    manufacturer: str,
    description: str = "Lockgate test package",
    extra_properties: int = 0,
) -> BuiltMsi:
    """A real .msi installing one small file, with a fresh ProductCode.

    `extra_properties` adds that many distinct properties; past about 32,800 the string pool
    holds over 65,535 strings and tables switch to 3-byte string references.
    """
    wixl = _tool("wixl")
    work = Path(tempfile.mkdtemp(prefix="msi-", dir=directory))
    (work / "readme.txt").write_text(f"{name} {version}\n", encoding="utf-8")
    product_code = _guid()
    source = work / "product.wxs"
    source.write_text(
        _wxs(
            product_code=product_code,
            name=name,
            version=version,
            manufacturer=manufacturer,
            description=description,
            extra_properties=extra_properties,
        ),
        encoding="utf-8",
    )
    output = work / "product.msi"
    _run([wixl, "--output", str(output), str(source)], cwd=work)
    return BuiltMsi(path=output, product_code=product_code)


def build_exe(
    directory: Path,
    *,
    product_name: str,
    version: str,
    company: str,
    description: str,
    file_version_string: bool = True,
) -> Path:
    """A real 64-bit Windows program with a version resource (FileVersion string optional)."""
    gcc = _tool("x86_64-w64-mingw32-gcc")
    windres = _tool("x86_64-w64-mingw32-windres")
    work = Path(tempfile.mkdtemp(prefix="exe-", dir=directory))
    (work / "main.c").write_text("int main(void) { return 0; }\n", encoding="utf-8")
    strings = {"CompanyName": company, "FileDescription": description}
    strings |= {"ProductName": product_name, "ProductVersion": version}
    if file_version_string:
        strings["FileVersion"] = version
    (work / "version.rc").write_text(_version_rc(version, strings), encoding="utf-8")
    _run([windres, "--output-format=coff", "-o", "version.o", "version.rc"], cwd=work)
    _run([gcc, "-s", "-o", "program.exe", "main.c", "version.o"], cwd=work)
    return work / "program.exe"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MissingTool(f"{name} is not installed: {ENSURE_HINT}")
    return found


def _run(command: list[str], *, cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed ({result.returncode}): {result.stderr}")


def _guid() -> str:
    return "{" + str(uuid.uuid4()).upper() + "}"


def _wxs(
    *,
    product_code: str,
    name: str,
    version: str,
    manufacturer: str,
    description: str,
    extra_properties: int,
) -> str:
    component = _guid().strip("{}")
    upgrade = _guid().strip("{}")
    extras = "".join(
        f'    <Property Id="Extra{i}" Value="value {i}" />\n' for i in range(extra_properties)
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id={quoteattr(product_code.strip("{}"))} Name={quoteattr(name)} Language="1033"
           Version={quoteattr(version)} Manufacturer={quoteattr(manufacturer)}
           UpgradeCode="{upgrade}">
    <Package InstallerVersion="200" Compressed="yes" Description={quoteattr(description)}
             Comments="Built by the Lockgate tests" />
{extras}    <Media Id="1" Cabinet="product.cab" EmbedCab="yes" />
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFilesFolder">
        <Directory Id="INSTALLDIR" Name="LockgateTest">
          <Component Id="Readme" Guid="{component}">
            <File Id="Readme" Name="readme.txt" Source="readme.txt" KeyPath="yes" />
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Complete" Level="1"><ComponentRef Id="Readme" /></Feature>
  </Product>
</Wix>
"""


def _version_rc(version: str, strings: dict[str, str]) -> str:
    if not re.fullmatch(r"\d+(\.\d+){0,3}", version):
        raise ValueError(f"version {version!r}: expected up to four dot-separated numbers")
    numbers = ",".join([*version.split("."), "0", "0", "0"][:4])
    values = "\n".join(
        f'      VALUE "{key}", "{_rc_string(value)}"' for key, value in strings.items()
    )
    return f"""#include <winver.h>
1 VERSIONINFO
FILEVERSION {numbers}
PRODUCTVERSION {numbers}
FILEOS VOS_NT_WINDOWS32
FILETYPE VFT_APP
BEGIN
  BLOCK "StringFileInfo"
  BEGIN
    BLOCK "040904b0"
    BEGIN
{values}
    END
  END
  BLOCK "VarFileInfo"
  BEGIN
    VALUE "Translation", 0x409, 1200
  END
END
"""


def _rc_string(value: str) -> str:
    # resource compiler strings escape a quote by doubling it and treat backslash as escape
    return value.replace("\\", "\\\\").replace('"', '""')
