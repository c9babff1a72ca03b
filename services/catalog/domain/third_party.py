"""Third-party updates (docs/product.md section 4): made from a committed upload, then edited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from libs.contracts.catalog import Package, PackageFile, ProductRef
from libs.contracts.uploads import EditUpdate
from libs.service.errors import Conflict, InvalidInput, NotFound
from services.catalog.domain.updates import StoredUpdate, UpdateContent
from services.catalog.domain.uploads import Upload, merge_return_codes


@dataclass(frozen=True)
class StoredFile:
    """One file of a package, kept in the content store by hash."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class FreedContent:
    """Content no update uses any more, to delete from the content store."""

    sha256: str
    size: int


def package(upload: Upload, stored: Sequence[StoredFile]) -> Package:
    """How an agent installs the update an upload becomes: its stored files with their
    hashes (the agent verifies each download), and the installer's product code."""
    steps = upload.steps
    return Package(
        kind=upload.kind,
        installer=upload.installer,
        files=[PackageFile(path=f.path, size=f.size, sha256=f.sha256) for f in stored],
        architecture=steps.architecture,
        operating_systems=list(steps.operating_systems or ()),
        detection_rules=list(steps.detection_rules or ()),
        prerequisite_package=steps.prerequisite_package,
        prerequisite_rules=list(steps.prerequisite_rules or ()),
        command_line=steps.command_line or "",
        min_free_disk_bytes=steps.min_free_disk_bytes,
        min_memory_bytes=steps.min_memory_bytes,
        product_code=upload.extracted.product_code if upload.extracted else None,
    )


def third_party_content(
    upload: Upload, installing: Package, installer_sha256: str, now: datetime
) -> UpdateContent:
    """The stored content of the third-party update a committed upload becomes."""
    extracted, steps = upload.extracted, upload.steps
    if steps.title is None:
        raise ValueError(f"upload {upload.upload_id} has no title yet")
    family = (extracted.manufacturer if extracted else None) or "Third-party"
    name = (extracted.product_name if extracted else None) or steps.title
    product_id = (extracted.product_code if extracted else None) or name
    return UpdateContent(
        kb=None,
        title=steps.title,
        description=steps.description or "",
        classification=steps.classification or "Updates",
        severity=None,
        products=(ProductRef(product_id=product_id, name=name, family=family),),
        product_families=(family,),
        cves=(),
        release_date=now,
        restart="may_request",
        fixed_builds=(),
        url=None,
        supersedes=(),
        size_bytes=sum(f.size for f in upload.files),
        sha256=installer_sha256,
        return_codes=steps.codes,
        package=installing,
    )


def update_id_of(reference: str) -> str | None:
    """The update id a reference names; third-party updates have no KB to be named by."""
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        return None


def check_third_party(found: StoredUpdate | None, reference: str, verb: str) -> StoredUpdate:
    """Only third-party updates can be edited or deleted; Microsoft's come from MSRC."""
    if found is None:
        raise NotFound(f"update {reference!r} is not in the catalog", field="update")
    if found.origin != "third_party":
        raise Conflict(
            f"update {reference} (KB{found.kb}) is a Microsoft update: only "
            f"third-party updates can be {verb}",
            field="update",
        )
    return found


def package_of(content: UpdateContent) -> Package:
    """A third-party update's package (every third-party update has one)."""
    if content.package is None:
        raise ValueError(f"update {content.title!r} has no package: it is not third-party")
    return content.package


def edited(content: UpdateContent, command: EditUpdate) -> UpdateContent:
    """The content after an operator's edit (equal to `content` when nothing changes)."""
    installing = package_of(content)
    if command.command_line is not None:
        if installing.kind == "exe" and not command.command_line.strip():
            raise InvalidInput(
                "command_line '' is not allowed for an .exe: give its silent switch",
                field="command_line",
            )
        installing = installing.model_copy(update={"command_line": command.command_line.strip()})
    return replace(
        content,
        title=content.title if command.title is None else command.title,
        description=content.description if command.description is None else command.description,
        classification=content.classification
        if command.classification is None
        else command.classification,
        return_codes=content.return_codes
        if command.return_codes is None
        else tuple(merge_return_codes([], command.return_codes)),
        package=installing,
    )
