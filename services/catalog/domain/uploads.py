"""Rules of the third-party upload procedure (docs/product.md section 4), without I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Literal

from pydantic import TypeAdapter

from libs.contracts.catalog import DetectionRule, ReturnCode, UploadFile
from libs.contracts.uploads import (
    Extracted,
    FileProgress,
    ThirdPartyClassification,
    UploadSession,
    UploadState,
    UploadStepName,
)
from libs.domain.agent_reports import DEFAULT_RETURN_CODES
from libs.service.errors import InvalidInput, Refused
from services.catalog.domain.installers.common import InstallerMetadata

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


class NotAnInstaller(Refused):
    """The installer's bytes cannot be read as the installer its name says (damaged, crafted,
    or too costly to read): the upload is refused and its bytes discarded, never retried."""


def not_an_installer(reason: str) -> NotAnInstaller:
    """The refusal of an installer whose metadata cannot be read; `reason` starts with its name."""
    return NotAnInstaller(f"not a valid installer: {reason}", field="installer")


MAX_NAME_LENGTH = 255
"""Characters in one file or folder name (NTFS allows no more)."""
_FORBIDDEN_CHARACTERS = {
    "<": "'<'",
    ">": "'>'",
    ":": "':' (a drive or an alternate data stream)",
    '"': "'\"'",
    "|": "'|'",
    "?": "'?'",
    "*": "'*'",
    "%": "'%' (Windows expands %NAME% to an environment variable)",
}
_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [
        f"{port}{n}"
        for port in ("COM", "LPT")
        for n in [*"123456789", "\u00b9", "\u00b2", "\u00b3"]
    ]
)
_ALLOWED_PATHS = (
    "use a path relative to the installer's folder, without '..', '.', a drive or a leading "
    f"'/', whose names are at most {MAX_NAME_LENGTH} characters, contain none of "
    '< > : " | ? * % or control characters, do not end in a dot or a space and are not a '
    "Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with or without an extension)"
)


@dataclass(frozen=True)
class UploadSteps:
    """The answers to steps 2-7 so far; None means not answered (yet)."""

    title: str | None = None
    description: str | None = None
    classification: ThirdPartyClassification | None = None
    architecture: Literal["x86", "x64", "both"] | None = None
    operating_systems: tuple[str, ...] | None = None
    min_free_disk_bytes: int | None = None
    min_memory_bytes: int | None = None
    detection_rules: tuple[DetectionRule, ...] | None = None
    prerequisite_package: str | None = None
    prerequisite_rules: tuple[DetectionRule, ...] | None = None
    command_line: str | None = None
    return_codes: tuple[ReturnCode, ...] | None = None
    """None: the default map (0 success, 3010 success with restart)."""
    described: bool | None = None
    """True once step 2 was answered. Its fields alone cannot say: once every byte arrived
    they hold what the installer suggests (`with_received_defaults`) until the operator
    answers. (Sessions described before this was kept read as not described.)"""

    @property
    def codes(self) -> tuple[ReturnCode, ...]:
        """The return-code map in force."""
        return DEFAULT_RETURN_CODES if self.return_codes is None else self.return_codes


_STEPS: TypeAdapter[UploadSteps] = TypeAdapter(UploadSteps)


def steps_json(steps: UploadSteps) -> str:
    """The stored JSON of the answers: only those given."""
    return _STEPS.dump_json(steps, exclude_none=True).decode()


def steps_from_json(text: str) -> UploadSteps:
    return _STEPS.validate_json(text)


@dataclass
class Upload:
    """One upload session: what was declared, what arrived, the answers so far."""

    upload_id: str
    state: UploadState
    refusal: str | None
    files: list[UploadFile]
    """Declared files, installer first."""
    received_bytes: int
    steps: UploadSteps = UploadSteps()
    extracted: Extracted | None = None
    """What the installer says of itself, once all its bytes arrived."""
    update_id: str | None = None
    received_by_file: dict[str, int] = field(default_factory=dict)
    """While receiving: bytes stored so far per declared path (a path absent: none)."""
    created_at: datetime | None = None
    """When step 1 declared the files."""
    updated_at: datetime | None = None
    """Last activity (what expiry reads)."""

    @property
    def installer(self) -> str:
        return self.files[0].path

    @property
    def kind(self) -> str:
        return kind_of(self.installer)


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
        raise InvalidInput(f"{field} {path!r} is not allowed: {_ALLOWED_PATHS}", field=field)
    for part in parts:
        problem = _windows_name_problem(part)
        if problem is not None:
            raise InvalidInput(
                f"{field} {path!r} is not allowed: {problem}; {_ALLOWED_PATHS}", field=field
            )
    return "/".join(parts)


def _windows_name_problem(name: str) -> str | None:
    """Why Windows cannot hold (or would misread) a file or folder of this name; None: fine."""
    if len(name) > MAX_NAME_LENGTH:
        return f"a name is {len(name)} characters long"
    for char in name:
        if ord(char) < 32 or ord(char) == 127:
            return f"it contains the control character {ord(char)}"
        if char in _FORBIDDEN_CHARACTERS:
            return f"it contains {_FORBIDDEN_CHARACTERS[char]}"
    if name.endswith((".", " ")):
        return f"the name {name!r} ends in a dot or a space, which Windows drops"
    if name.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES:
        return f"the name {name!r} is a Windows device name"
    return None


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


def missing_steps(kind: str, steps: UploadSteps, state: str) -> list[str]:
    """What must still be answered before the upload can be committed."""
    missing = []
    if state == "receiving":
        missing.append("content")
    if steps.title is None:
        missing.append("description")
    if steps.architecture is None:
        missing.append("requirements")
    if kind == "exe" and not (steps.command_line or "").strip():
        missing.append("command_line (an .exe must install silently, e.g. /S or /quiet)")
    return missing


def check_detection_asked(kind: str) -> None:
    """Windows Installer packages detect themselves: detection rules are not asked of them."""
    if kind in ("msi", "msp"):
        raise InvalidInput(
            f"detection rules are not asked for .{kind}: Windows Installer "
            "packages detect themselves",
            field="rules",
        )


def check_silent(kind: str, arguments: str) -> str:
    """Installer arguments, stripped; an .exe without them cannot install silently."""
    if kind == "exe" and not arguments.strip():
        raise InvalidInput(
            "arguments '' is not allowed for an .exe: give its silent switch "
            "(e.g. /S, /quiet); an update that cannot install silently cannot "
            "be installed by the system",
            field="arguments",
        )
    return arguments.strip()


def extracted(metadata: InstallerMetadata) -> Extracted:
    """What the installer says of itself, as the session shows it."""
    return Extracted(
        kind=metadata.kind,
        product_name=metadata.product_name,
        version=metadata.version,
        manufacturer=metadata.manufacturer,
        product_code=metadata.product_code,
        description=metadata.description,
    )


def default_title(extracted: Extracted | None) -> str:
    """The installer's product name and version, when the operator gives no title."""
    name = (extracted.product_name if extracted else None) or "Unnamed package"
    version = extracted.version if extracted else None
    return f"{name} {version}" if version else name


def with_received_defaults(steps: UploadSteps, extracted: Extracted) -> UploadSteps:
    """Once every byte arrived: title, description and classification prefilled if unanswered."""
    return replace(
        steps,
        title=default_title(extracted) if steps.title is None else steps.title,
        description=(extracted.description or "")
        if steps.description is None
        else steps.description,
        classification="Updates" if steps.classification is None else steps.classification,
    )


OPEN_STATES: tuple[UploadState, ...] = ("receiving", "received")
"""States that hold bytes against the quota and may still expire."""


def file_progress(upload: Upload) -> list[FileProgress]:
    """Per declared file, the bytes received: where sending it resumes. Received and
    committed uploads have every byte; refused, cancelled and expired ones dropped theirs."""

    def received(path: str, size: int) -> int:
        if upload.state in ("received", "committed"):
            return size
        if upload.state == "receiving":
            return upload.received_by_file.get(path, 0)
        return 0

    return [
        FileProgress(path=f.path, size=f.size, received_bytes=received(f.path, f.size))
        for f in upload.files
    ]


def answered_steps(steps: UploadSteps) -> list[UploadStepName]:
    """Steps 2-7 the operator answered, in the procedure's order. Steps 3-7 are stored only
    when answered (None until then); step 2 says so itself, see `UploadSteps.described`."""
    answered: list[tuple[UploadStepName, bool]] = [
        ("description", bool(steps.described)),
        ("requirements", steps.architecture is not None),
        ("detection_rules", steps.detection_rules is not None),
        ("prerequisites", steps.prerequisite_rules is not None),
        ("command_line", steps.command_line is not None),
        ("return_codes", steps.return_codes is not None),
    ]
    return [name for name, given in answered if given]


def expires_at(upload: Upload, expiry_hours: float | None) -> datetime | None:
    """When an open upload becomes abandoned (LOCKGATE_UPLOAD_EXPIRY_HOURS after its last
    activity); None once it ended, or when the expiry or its last activity is not known."""
    if upload.state not in OPEN_STATES or expiry_hours is None or upload.updated_at is None:
        return None
    return upload.updated_at + timedelta(hours=expiry_hours)


def session(upload: Upload, expiry_hours: float | None = None) -> UploadSession:
    """The session as the operator sees it after each step, with what resuming it needs:
    each file's bytes received, the steps answered, and (given LOCKGATE_UPLOAD_EXPIRY_HOURS
    as `expiry_hours`) when it expires."""
    steps = upload.steps
    return UploadSession(
        upload_id=upload.upload_id,
        state=upload.state,
        refusal=upload.refusal,
        files=upload.files,
        total_bytes=sum(f.size for f in upload.files),
        received_bytes=upload.received_bytes,
        extracted=upload.extracted,
        title=steps.title,
        description=steps.description,
        classification=steps.classification,
        architecture=steps.architecture,
        operating_systems=list(steps.operating_systems or ()),
        min_free_disk_bytes=steps.min_free_disk_bytes,
        min_memory_bytes=steps.min_memory_bytes,
        detection_rules=list(steps.detection_rules or ()),
        prerequisite_package=steps.prerequisite_package,
        prerequisite_rules=list(steps.prerequisite_rules or ()),
        command_line=steps.command_line,
        return_codes=list(steps.codes),
        missing=missing_steps(upload.kind, steps, upload.state),
        update_id=upload.update_id,
        file_progress=file_progress(upload),
        answered=answered_steps(steps),
        created_at=upload.created_at,
        updated_at=upload.updated_at,
        expires_at=expires_at(upload, expiry_hours),
    )
