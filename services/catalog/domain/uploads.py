"""Rules of the third-party upload procedure (docs/product.md section 4), without I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from libs.contracts.catalog import DetectionRule, ReturnCode, UploadFile
from libs.service.errors import InvalidInput, Refused

INSTALLER_EXTENSIONS = (".msi", ".msp", ".exe")
_GUID = re.compile(r"\{[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}\}")
_HIVES = (
    "HKLM\\",
    "HKEY_LOCAL_MACHINE\\",
    "HKCU\\",
    "HKEY_CURRENT_USER\\",
    "HKCR\\",
    "HKEY_CLASSES_ROOT\\",
    "HKU\\",
    "HKEY_USERS\\",
)


class QuotaExceeded(Refused):
    """The upload would pass the storage quota; what it had sent is discarded."""


def check_path(path: str, field: str) -> str:
    """A relative path inside the installer's folder: no `..`, no absolute or drive paths."""
    normal = path.replace("\\", "/")
    parts = PurePosixPath(normal).parts
    if (
        not parts
        or normal.startswith("/")
        or re.match(r"^[A-Za-z]:", normal)
        or any(part in ("..", ".") for part in parts)
    ):
        raise InvalidInput(
            f"{field} {path!r} is not allowed: use a path relative to the installer's folder, "
            "without '..', '.', a drive or a leading '/'",
            field=field,
        )
    return "/".join(parts)


def check_files(installer: UploadFile, extra: Sequence[UploadFile]) -> list[UploadFile]:
    """The declared files, installer first, each path checked and unique."""
    name = check_path(installer.path, "installer.path")
    if "/" in name:
        raise InvalidInput(
            f"installer.path {installer.path!r} must be a file name, not a path",
            field="installer.path",
        )
    if not name.lower().endswith(INSTALLER_EXTENSIONS):
        raise InvalidInput(
            f"installer.path {installer.path!r} is not an installer: allowed extensions are "
            f"{', '.join(INSTALLER_EXTENSIONS)}",
            field="installer.path",
        )
    files = [UploadFile(path=name, size=installer.size)]
    for index, item in enumerate(extra):
        files.append(
            UploadFile(path=check_path(item.path, f"extra_files[{index}].path"), size=item.size)
        )
    seen: set[str] = set()
    for item in files:
        if item.path.lower() in seen:
            raise InvalidInput(f"file {item.path!r} is declared twice", field="extra_files")
        seen.add(item.path.lower())
    return files


def kind_of(installer_path: str) -> str:
    return installer_path.rsplit(".", 1)[-1].lower()


def check_quota(used: int, incoming: int, quota: int) -> None:
    """Refuse as soon as stored bytes would pass the quota."""
    if used + incoming > quota:
        raise QuotaExceeded(
            f"storage quota exceeded: {used} bytes stored, this upload needs {incoming} more, "
            f"the quota is {quota} bytes; the upload was cancelled and its content discarded",
            field="data_b64",
        )


def check_rules(rules: Sequence[DetectionRule], field: str) -> list[DetectionRule]:
    """Each rule's value must fit its kind."""
    for index, rule in enumerate(rules):
        where = f"{field}[{index}].value"
        if rule.kind == "msi_product_code" and not _GUID.fullmatch(rule.value):
            raise InvalidInput(
                f"{where} {rule.value!r} is not an MSI product code "
                "like {12345678-1234-1234-1234-123456789ABC}",
                field=where,
            )
        if rule.kind == "registry_key" and not rule.value.upper().startswith(_HIVES):
            raise InvalidInput(
                f"{where} {rule.value!r} is not a registry key path; it must "
                f"start with one of {', '.join(_HIVES)}",
                field=where,
            )
        if rule.kind == "file_exists" and not (
            re.match(r"^[A-Za-z]:\\", rule.value) or rule.value.startswith("%")
        ):
            raise InvalidInput(
                f"{where} {rule.value!r} is not an absolute Windows path "
                "(C:\\... or %ProgramFiles%\\...)",
                field=where,
            )
    return list(rules)


def merge_return_codes(
    current: Sequence[ReturnCode], changes: Sequence[ReturnCode]
) -> list[ReturnCode]:
    """The operator adds or changes entries; the result is sorted by code."""
    table = {entry.code: entry for entry in current}
    table.update({entry.code: entry for entry in changes})
    return [table[code] for code in sorted(table)]


def missing_steps(kind: str, steps: dict[str, object], state: str) -> list[str]:
    """What must still be answered before the upload can be committed."""
    missing = []
    if state == "receiving":
        missing.append("content")
    if "title" not in steps:
        missing.append("description")
    if "architecture" not in steps:
        missing.append("requirements")
    if kind == "exe" and not str(steps.get("command_line") or "").strip():
        missing.append("command_line (an .exe must install silently, e.g. /S or /quiet)")
    return missing
