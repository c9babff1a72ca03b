"""Third-party uploads (docs/product.md section 4): one command per step, one session view."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from libs.contracts.catalog import (
    MAX_REQUIREMENT_BYTES,
    DetectionRule,
    InstallerKind,
    ReturnCode,
    UpdateDetail,
    UploadFile,
)
from libs.contracts.spec import Contract, command

UploadState = Literal["receiving", "received", "committed", "refused", "cancelled", "expired"]
ThirdPartyClassification = Literal[
    "Updates", "Critical Updates", "Security Updates", "Update Rollups", "Service Packs"
]
UploadStepName = Literal[
    "description",
    "requirements",
    "detection_rules",
    "prerequisites",
    "command_line",
    "return_codes",
]
"""Steps 2-7 of the procedure (docs/product.md section 4), as `UploadSession.answered` says."""


class Extracted(Contract):
    """What the catalog read from the installer itself."""

    kind: InstallerKind = Field(description="Installer type.")
    product_name: str | None = Field(description="MSI ProductName / EXE ProductName.")
    version: str | None = Field(description="MSI ProductVersion / EXE FileVersion.")
    manufacturer: str | None = Field(description="MSI Manufacturer / EXE CompanyName.")
    product_code: str | None = Field(description="MSI ProductCode (or MSP patch code).")
    description: str | None = Field(description="EXE FileDescription / MSI summary subject.")


class FileProgress(Contract):
    """How much of one declared file has arrived: where sending it resumes."""

    path: str = Field(description="The declared file's path, relative to the installer's folder.")
    size: int = Field(ge=0, description="Its declared size in bytes.")
    received_bytes: int = Field(
        ge=0,
        description="Bytes of it received so far, in order from offset 0: the `offset` of the "
        "next chunk to send for it (`POST /api/v1/uploads/{upload_id}/chunks`). Equal to `size` "
        "once the file is complete (and after commit); 0 after a refusal, cancellation or "
        "expiry, which drop the bytes.",
    )


class UploadSession(Contract):
    """Where an upload stands: every step's answer so far, and what is still missing."""

    upload_id: str = Field(description="Id of the upload session.")
    state: UploadState = Field(
        description="receiving, received (all bytes), committed, refused, cancelled (by the "
        "operator) or expired (no activity for LOCKGATE_UPLOAD_EXPIRY_HOURS); the last three "
        "hold no bytes and count nothing against the quota."
    )
    refusal: str | None = Field(description="Why the upload was refused, if it was.")
    files: list[UploadFile] = Field(description="Declared files, installer first.")
    total_bytes: int = Field(description="Total size to upload (as uploaded, not expanded).")
    received_bytes: int = Field(description="Bytes received so far.")
    extracted: Extracted | None = Field(description="Read from the installer once received.")
    title: str | None = Field(description="Name (step 2; defaults to the extracted one).")
    description: str | None = Field(description="Description (step 2).")
    classification: ThirdPartyClassification | None = Field(description="Classification.")
    architecture: Literal["x86", "x64", "both"] | None = Field(description="Step 3.")
    operating_systems: list[str] = Field(description="Step 3.")
    min_free_disk_bytes: int | None = Field(
        default=None, description="Step 3: free disk space needed (bytes); null: none."
    )
    min_memory_bytes: int | None = Field(
        default=None, description="Step 3: physical memory needed (bytes); null: none."
    )
    detection_rules: list[DetectionRule] = Field(description="Step 4.")
    prerequisite_package: str | None = Field(description="Step 5: another managed package.")
    prerequisite_rules: list[DetectionRule] = Field(description="Step 5: rules.")
    command_line: str | None = Field(description="Step 6.")
    return_codes: list[ReturnCode] = Field(description="Step 7 (defaults included).")
    missing: list[str] = Field(description="Steps still to answer before commit.")
    update_id: str | None = Field(description="The update created by commit.")
    file_progress: list[FileProgress] = Field(
        default_factory=list,
        description="Per declared file (installer first), the bytes received so far: an "
        "interrupted upload resumes each file at its `received_bytes`. Empty only in replies "
        "from a catalog older than this field.",
    )
    answered: list[UploadStepName] = Field(
        default_factory=list,
        description="Steps 2-7 the operator has answered, in the procedure's order; their "
        "current values are the fields above. Until `description` is answered, `title`, "
        "`description` and `classification` hold what the installer suggests (from "
        "`extracted`, once every byte arrived); an unanswered step shows its default (no "
        "requirement, no detection rule, no prerequisite, return codes 0 and 3010).",
    )
    created_at: AwareDatetime | None = Field(
        default=None,
        description="When step 1 declared the files (UTC); lists are newest first by it. Null "
        "only in replies from a catalog older than this field.",
    )
    updated_at: AwareDatetime | None = Field(
        default=None,
        description="Last activity (UTC): the last chunk received, step answered, or the end "
        "(commit, refusal, cancellation, expiry). Null only in replies from a catalog older "
        "than this field.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="While the upload is open (receiving or received): the moment it becomes "
        "abandoned if nothing else is sent or answered, `updated_at` plus "
        "LOCKGATE_UPLOAD_EXPIRY_HOURS; the catalog's next expiry sweep then expires it. Null "
        "once it ended.",
    )


class ListUploads(Contract):
    """Ask for recent upload sessions (the console's overview, and the wizard resuming one)."""

    states: list[UploadState] = Field(
        default_factory=list,
        max_length=20,
        description="Only uploads in one of these states (repeat the query parameter for "
        "several, e.g. `states=receiving&states=received` for the open ones); empty: every "
        "state.",
    )
    limit: int = Field(default=50, ge=1, le=200, description="At most this many, newest first.")


class UploadList(Contract):
    """Upload sessions, each as `GET /api/v1/uploads/{upload_id}` shows it."""

    uploads: list[UploadSession] = Field(
        description="The sessions, newest first (by `created_at`, when step 1 declared them)."
    )


class StartUpload(Contract):
    """Step 1: declare the installer and any extra files, with their sizes."""

    installer: UploadFile = Field(description="The .msi, .msp or .exe.")
    extra_files: list[UploadFile] = Field(default_factory=list, description="Other files.")


class SendChunk(Contract):
    """Part of one file's bytes; the storage quota is checked on every chunk."""

    upload_id: str = Field(description="Upload session.")
    path: str = Field(description="Which declared file.")
    offset: int = Field(ge=0, le=2**40, description="Byte offset of this chunk in the file.")
    data_b64: str = Field(min_length=1, description="The bytes, base64-encoded.")


class UploadRef(Contract):
    """Names an upload session (summary, commit, cancel)."""

    upload_id: str = Field(description="Upload session.")


class Describe(Contract):
    """Step 2: name, description and classification (extracted values if left out)."""

    upload_id: str = Field(description="Upload session.")
    title: str | None = Field(default=None, max_length=300, description="Display name.")
    description: str | None = Field(default=None, max_length=4000, description="Description.")
    classification: ThirdPartyClassification = Field(
        default="Updates", description="Classification."
    )


class SetRequirements(Contract):
    """Step 3: architecture, operating systems, and optionally free disk space and memory.

    Answering again replaces every answer of this step (a requirement left out is dropped).
    """

    upload_id: str = Field(description="Upload session.")
    architecture: Literal["x86", "x64", "both"] = Field(description="Required architecture.")
    operating_systems: list[str] = Field(min_length=1, description="e.g. `Windows 11`.")
    min_free_disk_bytes: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REQUIREMENT_BYTES,
        description="Free disk space (bytes, 0 to 2^50) a computer needs to install it; "
        "computers with less find it not applicable. Null: no requirement.",
    )
    min_memory_bytes: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REQUIREMENT_BYTES,
        description="Physical memory (bytes, 0 to 2^50) a computer needs; computers with less "
        "find it not applicable. Null: no requirement.",
    )


class SetDetectionRules(Contract):
    """Step 4 (not for .msi/.msp): empty = install once per computer."""

    upload_id: str = Field(description="Upload session.")
    rules: list[DetectionRule] = Field(default_factory=list, description="Any of these holds.")


class SetPrerequisites(Contract):
    """Step 5: none, another managed package, or rules."""

    upload_id: str = Field(description="Upload session.")
    package: str | None = Field(default=None, description="Update id of a managed package.")
    rules: list[DetectionRule] = Field(default_factory=list, description="Rules that must hold.")


class SetCommandLine(Contract):
    """Step 6: installer arguments (a silent switch for .exe)."""

    upload_id: str = Field(description="Upload session.")
    arguments: str = Field(max_length=2000, description="e.g. `/q` or `/S /norestart`.")


class SetReturnCodes(Contract):
    """Step 7: add or change return codes (0 and 3010 are there by default)."""

    upload_id: str = Field(description="Upload session.")
    codes: list[ReturnCode] = Field(description="Entries to add or change.")


class EditUpdate(Contract):
    """Change a third-party update (Microsoft updates refuse)."""

    update: str = Field(description="Update id.")
    title: str | None = Field(default=None, max_length=300, description="New name.")
    description: str | None = Field(default=None, max_length=4000, description="New text.")
    classification: ThirdPartyClassification | None = Field(default=None, description="New.")
    command_line: str | None = Field(default=None, max_length=2000, description="New args.")
    return_codes: list[ReturnCode] | None = Field(default=None, description="Full new map.")


class DeleteUpdate(Contract):
    """Delete a third-party update (Microsoft updates refuse)."""

    update: str = Field(description="Update id.")


class Deleted(Contract):
    """Reply to DeleteUpdate."""

    update_id: str = Field(description="The deleted update.")
    freed_bytes: int = Field(description="Storage freed (content no other update uses).")


START_UPLOAD = command(
    "catalog", "upload", "start", StartUpload, UploadSession, summary="Step 1: declare files."
)
SEND_CHUNK = command(
    "catalog", "upload", "chunk", SendChunk, UploadSession, summary="Send bytes; quota-checked."
)
DESCRIBE = command(
    "catalog", "upload", "describe", Describe, UploadSession, summary="Step 2: description."
)
SET_REQUIREMENTS = command(
    "catalog", "upload", "requirements", SetRequirements, UploadSession, summary="Step 3."
)
SET_DETECTION = command(
    "catalog", "upload", "detection", SetDetectionRules, UploadSession, summary="Step 4."
)
SET_PREREQUISITES = command(
    "catalog", "upload", "prerequisites", SetPrerequisites, UploadSession, summary="Step 5."
)
SET_COMMAND_LINE = command(
    "catalog", "upload", "command-line", SetCommandLine, UploadSession, summary="Step 6."
)
SET_RETURN_CODES = command(
    "catalog", "upload", "return-codes", SetReturnCodes, UploadSession, summary="Step 7."
)
GET_UPLOAD = command(
    "catalog",
    "upload",
    "get",
    UploadRef,
    UploadSession,
    summary="Where an upload stands: step 8's summary, or what an interrupted one resumes from.",
)
LIST_UPLOADS = command(
    "catalog",
    "upload",
    "list",
    ListUploads,
    UploadList,
    summary="Recent upload sessions, newest first, optionally only those in given states.",
)
COMMIT_UPLOAD = command(
    "catalog", "upload", "commit", UploadRef, UpdateDetail, summary="Store it as an update."
)
CANCEL_UPLOAD = command(
    "catalog",
    "upload",
    "cancel",
    UploadRef,
    UploadSession,
    summary="Abandon an upload before commit: its bytes are dropped and the quota freed at once.",
)
EDIT_UPDATE = command(
    "catalog", "update", "edit", EditUpdate, UpdateDetail, summary="Edit a third-party update."
)
DELETE_UPDATE = command(
    "catalog", "update", "delete", DeleteUpdate, Deleted, summary="Delete a third-party update."
)
