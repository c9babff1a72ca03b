"""The catalog's events and commands: updates, supersession, expiry, settings, imports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

from pydantic import AwareDatetime, Field

from libs.contracts.spec import Contract, command, event

ClassificationName = Literal[
    "Critical Updates",
    "Security Updates",
    "Definition Updates",
    "Updates",
    "Update Rollups",
    "Service Packs",
    "Feature Packs",
    "Tools",
    "Drivers",
    "Upgrades",
]
CLASSIFICATIONS: tuple[ClassificationName, ...] = get_args(ClassificationName)
"""Every classification, in docs/product.md's order."""
SeverityName = Literal["Low", "Moderate", "Important", "Critical"]
RestartName = Literal["never", "may_request", "always"]
Origin = Literal["microsoft", "third_party"]
MAX_REQUIREMENT_BYTES = 2**50
"""The largest disk or memory requirement an upload may state (1 PiB)."""


class ProductRef(Contract):
    """A product an update applies to."""

    product_id: str = Field(description="The source's product id (MSRC ProductID).")
    name: str = Field(description="Product name, e.g. `Windows 11 Version 25H2 for x64`.")
    family: str = Field(description="Product family / category, e.g. `Windows`.")


ReturnOutcome = Literal["success", "success_restart_required", "failure"]


class ReturnCode(Contract):
    """How one installer return code is read."""

    code: int = Field(
        ge=-(2**31), le=2**32 - 1, description="Process exit code (32-bit, signed or unsigned)."
    )
    outcome: ReturnOutcome = Field(
        description="What the code means; codes not listed are failures."
    )


_EXAMPLE_RETURN_CODES = [
    ReturnCode(code=0, outcome="success"),
    ReturnCode(code=3010, outcome="success_restart_required"),
]
"""The default map, spelled out for the examples (libs/domain/agent_reports.py owns it)."""


InstallerKind = Literal["msi", "msp", "exe"]


class UploadFile(Contract):
    """A file of the upload, named relative to the installer's folder."""

    path: str = Field(min_length=1, max_length=400, description="Relative path, e.g. `a/b.cab`.")
    size: int = Field(
        gt=0, le=2**40, description="Size in bytes as uploaded (compressed, not expanded)."
    )


class PackageFile(Contract):
    """A stored file of a third-party package."""

    path: str = Field(min_length=1, max_length=400, description="Relative path, e.g. `a/b.cab`.")
    size: int = Field(gt=0, le=2**40, description="Size in bytes as stored.")
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the stored file (lower-case hex); null only in packages "
        "published before per-file hashes, where the update's `sha256` is the installer's.",
    )


class DetectionRule(Contract):
    """How an agent tells the update (or a prerequisite) is already installed."""

    kind: Literal["file_exists", "msi_product_code", "registry_key"] = Field(
        description="What to look for."
    )
    value: str = Field(
        min_length=1,
        max_length=1000,
        description="A file path, an MSI product code ({GUID}) or a registry key path (HKLM\\...).",
    )


class Package(Contract):
    """What an agent needs to install a third-party update."""

    kind: InstallerKind = Field(description="Installer type.")
    installer: str = Field(description="Path of the installer among the files.")
    files: list[PackageFile] = Field(description="Every file, installer first.")
    architecture: Literal["x86", "x64", "both"] = Field(description="Required architecture.")
    operating_systems: list[str] = Field(description="Operating systems it may install on.")
    detection_rules: list[DetectionRule] = Field(
        description="Empty: the default rule, install once per computer (and for msi/msp, "
        "the installer's own detection)."
    )
    prerequisite_package: str | None = Field(description="Update id of a required package.")
    prerequisite_rules: list[DetectionRule] = Field(description="Rules that must all hold.")
    command_line: str = Field(description="Installer arguments, e.g. `/q`.")
    product_code: str | None = Field(
        default=None,
        description="The MSI ProductCode (or MSP patch code) read from the installer: how an "
        "msi/msp detects itself when no detection rule is given.",
    )
    min_free_disk_bytes: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REQUIREMENT_BYTES,
        description="Free disk space (bytes) a computer needs to install it; null: no requirement.",
    )
    min_memory_bytes: int | None = Field(
        default=None,
        ge=0,
        le=MAX_REQUIREMENT_BYTES,
        description="Physical memory (bytes) a computer needs to install it; null: no requirement.",
    )


class UpdateSnapshot(Contract):
    """Everything other services need to know of one update revision."""

    update_id: str = Field(description="Stable id of the update (UUID).")
    revision: int = Field(ge=1, description="Revision number; bumps whenever content changes.")
    origin: Origin = Field(description="`microsoft` (from a source document) or `third_party`.")
    kb: str | None = Field(description="KB number without prefix (Microsoft updates).")
    title: str = Field(description="Display title.")
    description: str = Field(default="", description="Longer description, if any.")
    classification: ClassificationName = Field(description="Update classification.")
    severity: SeverityName | None = Field(description="Highest MSRC severity, if rated.")
    products: list[ProductRef] = Field(description="Products it applies to.")
    product_families: list[str] = Field(description="Distinct product families (categories).")
    cves: list[str] = Field(description="CVEs it fixes.")
    release_date: AwareDatetime = Field(description="When the source released it.")
    restart: RestartName = Field(description="Restart behaviour of its installation.")
    fixed_builds: list[str] = Field(description="OS builds after installing it.")
    url: str | None = Field(description="Microsoft Update Catalog (or vendor) URL.")
    supersedes: list[str] = Field(description="KBs (or update ids) this update replaces.")
    superseded_by: list[str] = Field(description="Update ids in the catalog that replace it.")
    superseded_by_kbs: list[str] = Field(description="KB numbers of the updates replacing it.")
    expired: bool = Field(description="Expired updates can no longer be approved.")
    size_bytes: int | None = Field(description="Content size, when the catalog holds it.")
    sha256: str | None = Field(description="Content hash, when the catalog holds it.")
    return_codes: list[ReturnCode] = Field(
        description="Return-code map (third-party; Microsoft updates use the default)."
    )
    package: Package | None = Field(
        default=None, description="How to install it (third-party updates only)."
    )
    offered: bool = Field(
        default=True,
        description="Whether the catalog settings offer it to computers (docs/product.md "
        "section 2). An update not offered is hidden from the default update views, cannot be "
        "approved, is skipped by auto-approval rules and is never planned; approvals made "
        "before it was withdrawn stay. Third-party updates are always offered. Later changes "
        "come as `catalog.update.offered.v1` / `catalog.update.withdrawn.v1`.",
    )
    not_offered_because: str | None = Field(
        default=None,
        description="Why it is not offered: its classification or product categories and "
        "what the settings offer; null when offered.",
    )
    settings_version: int = Field(
        default=0,
        ge=0,
        description="Version of the catalog settings `offered` was decided under. Together "
        "with `revision` it orders this against offered/withdrawn events: keep the offered "
        "state whose `revision` and `settings_version` are both the highest seen (they never "
        "go down together; 0: sent before settings had versions).",
    )


class UpdatePublished(Contract):
    """A new update entered the catalog."""

    update: UpdateSnapshot = Field(description="The update as published.")


class UpdateRevised(Contract):
    """An update's content changed: a new revision replaces the previous one."""

    update: UpdateSnapshot = Field(description="The new revision.")
    previous_revision: int = Field(description="Revision it replaces.")


class UpdateSuperseded(Contract):
    """An update is now replaced by one or more updates in the catalog."""

    update_id: str = Field(description="The superseded update.")
    kb: str | None = Field(description="Its KB number, if any.")
    superseded_by: list[str] = Field(description="Update ids replacing it.")


class UpdateExpired(Contract):
    """An update expired: it can no longer be approved."""

    update_id: str = Field(description="The expired update.")
    kb: str | None = Field(description="Its KB number, if any.")
    expired_at: AwareDatetime = Field(description="When it expired.")
    reason: str = Field(description="Why (operator's words or the source's).")


class UpdateOfferChanged(Contract):
    """An update was offered to computers again, or withdrawn from them.

    Sent when a change of the catalog settings (or a new revision of the update) changes
    whether the update is offered (docs/product.md section 2). Withdrawing keeps the update
    and its approvals; it is no longer approvable, picked by rules or planned.
    """

    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="Its KB number, if any.")
    title: str = Field(description="Its title, for people reading the event.")
    offered: bool = Field(
        description="true: offered (catalog.update.offered.v1); false: withdrawn "
        "(catalog.update.withdrawn.v1)."
    )
    reason: str = Field(
        description="Why, in words: its classification and product categories against what "
        "the settings offer."
    )
    revision: int = Field(ge=1, description="The update's revision the decision was made on.")
    settings_version: int = Field(
        ge=0,
        description="Version of the catalog settings the decision was made under. Apply the "
        "event only if its `revision` and `settings_version` are both at least those of the "
        "offered state already kept (from a snapshot or an earlier event); otherwise it is "
        "older and is ignored.",
    )


class UpdateDeleted(Contract):
    """A third-party update was deleted; its approvals and reports should go too."""

    update_id: str = Field(description="The deleted update.")


class CatalogSettings(Contract):
    """Which product categories and classifications are offered to computers."""

    products: list[str] = Field(description="Enabled product categories (families).")
    classifications: list[ClassificationName] = Field(description="Enabled classifications.")


class SettingsChanged(Contract):
    """The operator changed which products and classifications are offered."""

    settings: CatalogSettings = Field(description="The settings now in force.")


class ImportDocument(Contract):
    """Import one source document (an MSRC monthly release)."""

    source: Literal["msrc"] = Field(default="msrc", description="Which source format.")
    content_gzip_b64: str = Field(
        min_length=1,
        description="The document itself, gzip-compressed then base64-encoded (callers fetch "
        "URLs themselves, so the catalog does no network I/O inside its transaction).",
    )
    label: str = Field(default="", description="Where it came from (a path), for the record.")


class ImportResult(Contract):
    """What an import changed."""

    document_id: str = Field(description="The document's own id, e.g. `2026-Jan`.")
    updates_in_document: int = Field(description="Installable updates the document lists.")
    advisories_in_document: int = Field(description="Non-installable fixes (advisories).")
    published: int = Field(description="Updates new to the catalog.")
    revised: int = Field(description="Updates whose content changed (new revision).")
    unchanged: int = Field(description="Updates already known as they are.")
    superseded: int = Field(description="Updates newly marked superseded.")
    supersession_links: int = Field(description="Supersedence links the document declares.")


class ListImports(Contract):
    """Ask for the most recent imports of source documents (the console's overview)."""

    limit: int = Field(default=20, ge=1, le=200, description="At most this many, newest first.")


class ImportRecord(ImportResult):
    """One import of a source document as the catalog recorded it: the counts its
    ImportResult gave, when it ran, where the document came from and how long it took.
    Importing a document again is another record (whose updates are then all unchanged)."""

    import_id: int = Field(
        ge=1, description="The catalog's number for this import; a later import has a higher one."
    )
    source: str = Field(description="Source format of the document, e.g. `msrc`.")
    title: str = Field(
        description="The document's own title, e.g. `February 2026 Security Updates`."
    )
    release_date: AwareDatetime = Field(description="When the source released the document.")
    label: str = Field(
        description="Where the document came from, as the import command named it (a file name, "
        "path or URL); empty when the caller gave none."
    )
    sent_by: str = Field(
        description="Who sent the import command: the CloudEvents source of its message, "
        "`lockgate/console` for the HTTP API (and the `lockgate` command, which calls it). The "
        "operator behind a console call is in the console's audit log "
        "(`POST /api/v1/catalog/imports`), not here."
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the document as imported (decompressed), lower-case hex: two "
        "imports of the same document have the same hash.",
    )
    imported_at: AwareDatetime = Field(description="When the catalog began this import (UTC).")
    duration_seconds: float = Field(
        ge=0,
        description="How long the import took in the catalog: from taking the command to the "
        "end of its work (reading the document, merging it, queueing the events), commit "
        "excluded.",
    )


class ImportList(Contract):
    """Recent imports of source documents."""

    imports: list[ImportRecord] = Field(
        description="Imports, newest first (by `imported_at`, then `import_id`)."
    )


class ExpireUpdate(Contract):
    """Expire an update by id or KB."""

    update: str = Field(description="Update id or KB number (with or without `KB`).")
    reason: str = Field(default="expired by an operator", max_length=500, description="Why.")


class GetUpdate(Contract):
    """Ask for one update."""

    update: str = Field(description="Update id or KB number (with or without `KB`).")


class UpdateDetail(Contract):
    """One update with its supersession chain both ways."""

    update: UpdateSnapshot = Field(description="Current revision.")
    superseded_at: AwareDatetime | None = Field(description="When it became superseded.")
    expired_at: AwareDatetime | None = Field(description="When it expired.")


class ListUpdates(Contract):
    """List updates with filters."""

    superseded: bool | None = Field(default=None, description="Only (not) superseded ones.")
    expired: bool | None = Field(default=None, description="Only (not) expired ones.")
    origin: Origin | None = Field(default=None, description="Only this origin.")
    product_family: str | None = Field(default=None, description="Only this product family.")
    limit: int = Field(default=1000, ge=1, le=10_000, description="At most this many.")


class UpdateList(Contract):
    """Updates, newest release first."""

    updates: list[UpdateSnapshot] = Field(description="The updates.")
    total: int = Field(description="How many match the filters (before limit).")


class GetSettings(Contract):
    """Ask for the catalog settings."""


class SettingsView(Contract):
    """The settings and what may be chosen."""

    settings: CatalogSettings = Field(description="Settings in force.")
    available_products: list[str] = Field(description="Product categories the catalog knows.")
    available_classifications: list[ClassificationName] = Field(description="Every classification.")


class ChangeSettings(Contract):
    """Replace the offered products and/or classifications."""

    products: list[str] | None = Field(default=None, description="New product categories.")
    classifications: list[ClassificationName] | None = Field(
        default=None, description="New classifications."
    )


# Examples shown in docs/asyncapi.yaml (validated by their models when this module loads).
_AT = datetime(2026, 2, 10, 18, 0, tzinfo=UTC)
_UPDATE = UpdateSnapshot(
    update_id="0496b64b-4a42-52f3-a887-fcddb4f2f23d",
    revision=1,
    origin="microsoft",
    kb="5073455",
    title="2026-02 Security Update for Windows (KB5073455)",
    classification="Security Updates",
    severity="Critical",
    products=[
        ProductRef(
            product_id="12583",
            name="Windows 11 Version 25H2 for x64-based Systems",
            family="Windows",
        )
    ],
    product_families=["Windows"],
    cves=["CVE-2026-21510", "CVE-2026-21513", "CVE-2026-21519"],
    release_date=datetime(2026, 2, 10, 8, 0, tzinfo=UTC),
    restart="always",
    fixed_builds=["10.0.26200.7840"],
    url="https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB5073455",
    supersedes=["5072033"],
    superseded_by=[],
    superseded_by_kbs=[],
    expired=False,
    size_bytes=None,
    sha256=None,
    return_codes=_EXAMPLE_RETURN_CODES,
)
_THIRD_PARTY = UpdateSnapshot(
    update_id="c2a7e4f1-5b3d-4e8a-9f6c-1d2e3f4a5b6c",
    revision=2,
    origin="third_party",
    kb=None,
    title="7-Zip 25.01 (x64)",
    description="7-Zip file archiver, MSI package for 64-bit Windows.",
    classification="Updates",
    severity=None,
    products=[
        ProductRef(
            product_id="{23170F69-40C1-2702-2501-000001000000}",
            name="7-Zip 25.01 (x64 edition)",
            family="Igor Pavlov",
        )
    ],
    product_families=["Igor Pavlov"],
    cves=[],
    release_date=datetime(2026, 2, 3, 9, 30, tzinfo=UTC),
    restart="may_request",
    fixed_builds=[],
    url=None,
    supersedes=[],
    superseded_by=[],
    superseded_by_kbs=[],
    expired=False,
    size_bytes=1_961_984,
    sha256="9b0e5f4c3a2d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
    return_codes=[
        *_EXAMPLE_RETURN_CODES,
        ReturnCode(code=1641, outcome="success_restart_required"),
    ],
    package=Package(
        kind="msi",
        installer="7z2501-x64.msi",
        files=[
            PackageFile(
                path="7z2501-x64.msi",
                size=1_961_984,
                sha256="9b0e5f4c3a2d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
            )
        ],
        architecture="x64",
        operating_systems=["Windows 10", "Windows 11"],
        detection_rules=[],
        prerequisite_package=None,
        prerequisite_rules=[],
        command_line="/qn /norestart",
        product_code="{23170F69-40C1-2702-2501-000001000000}",
    ),
)

UPDATE_PUBLISHED = event(
    "catalog",
    "update",
    "published",
    UpdatePublished,
    summary="A new update entered the catalog.",
    subject="the update id",
    example=UpdatePublished(update=_UPDATE),
)
UPDATE_REVISED = event(
    "catalog",
    "update",
    "revised",
    UpdateRevised,
    summary="An update changed; this is its new revision.",
    subject="the update id",
    example=UpdateRevised(update=_THIRD_PARTY, previous_revision=1),
)
UPDATE_SUPERSEDED = event(
    "catalog",
    "update",
    "superseded",
    UpdateSuperseded,
    summary="An update is replaced by newer ones in the catalog.",
    subject="the update id",
    example=UpdateSuperseded(
        update_id=_UPDATE.update_id,
        kb=_UPDATE.kb,
        superseded_by=["683517fc-9084-5224-9a4c-cc305577f1b9"],
    ),
)
UPDATE_EXPIRED = event(
    "catalog",
    "update",
    "expired",
    UpdateExpired,
    summary="An update expired and can no longer be approved.",
    subject="the update id",
    example=UpdateExpired(
        update_id=_UPDATE.update_id,
        kb=_UPDATE.kb,
        expired_at=datetime(2026, 3, 10, 18, 0, tzinfo=UTC),
        reason="expired by an operator",
    ),
)
_WITHDRAWN = UpdateOfferChanged(
    update_id=_UPDATE.update_id,
    kb=_UPDATE.kb,
    title=_UPDATE.title,
    offered=False,
    reason="its product category Windows is not offered (offered products: Microsoft Office)",
    revision=1,
    settings_version=3,
)
UPDATE_OFFERED = event(
    "catalog",
    "update",
    "offered",
    UpdateOfferChanged,
    summary="A change of the catalog settings (or a new revision) offers an update to "
    "computers again: it may be approved, picked by rules and planned.",
    subject="the update id",
    example=UpdateOfferChanged(
        update_id=_UPDATE.update_id,
        kb=_UPDATE.kb,
        title=_UPDATE.title,
        offered=True,
        reason="its classification Security Updates and product category Windows are offered",
        revision=1,
        settings_version=4,
    ),
)
UPDATE_WITHDRAWN = event(
    "catalog",
    "update",
    "withdrawn",
    UpdateOfferChanged,
    summary="A change of the catalog settings (or a new revision) no longer offers an update: "
    "it cannot be approved, rules skip it and it is not planned; its approvals stay.",
    subject="the update id",
    example=_WITHDRAWN,
)
UPDATE_DELETED = event(
    "catalog",
    "update",
    "deleted",
    UpdateDeleted,
    summary="A third-party update was deleted.",
    subject="the update id",
    example=UpdateDeleted(update_id=_THIRD_PARTY.update_id),
)
SETTINGS_CHANGED = event(
    "catalog",
    "settings",
    "changed",
    SettingsChanged,
    summary="Offered products or classifications changed.",
    example=SettingsChanged(
        settings=CatalogSettings(
            products=["Windows", "Microsoft Office"],
            classifications=["Critical Updates", "Security Updates", "Update Rollups"],
        )
    ),
)

IMPORT_DOCUMENT = command(
    "catalog",
    "document",
    "import",
    ImportDocument,
    ImportResult,
    summary="Import a source document (MSRC CVRF); idempotent.",
)
LIST_IMPORTS = command(
    "catalog",
    "import",
    "list",
    ListImports,
    ImportList,
    summary="The most recent document imports with what each changed, newest first.",
)
EXPIRE_UPDATE = command(
    "catalog", "update", "expire", ExpireUpdate, UpdateDetail, summary="Expire an update."
)
GET_UPDATE = command(
    "catalog",
    "update",
    "get",
    GetUpdate,
    UpdateDetail,
    summary="One update with its supersession chain.",
)
LIST_UPDATES = command(
    "catalog", "update", "list", ListUpdates, UpdateList, summary="List updates with filters."
)
GET_SETTINGS = command(
    "catalog",
    "settings",
    "get",
    GetSettings,
    SettingsView,
    summary="The catalog settings and the choices.",
)
CHANGE_SETTINGS = command(
    "catalog",
    "settings",
    "change",
    ChangeSettings,
    SettingsView,
    summary="Change offered products/classifications.",
)
