"""catalog's handlers for the third-party upload procedure, edits and deletes."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path
from typing import Any

from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.service import Conflict, HandlerContext, InvalidInput, NotFound, Refused
from services.catalog import store, upload_store
from services.catalog.content import LocalContentStore
from services.catalog.domain.uploads import (
    check_files,
    check_path,
    check_quota,
    check_rules,
    kind_of,
    merge_return_codes,
    missing_steps,
)
from services.catalog.installers import InvalidInstaller, read_installer


def _content(ctx: HandlerContext) -> LocalContentStore:
    return LocalContentStore(Path(ctx.settings.content_dir))


def _view(row: upload_store.UploadRow) -> u.UploadSession:
    steps = row.steps
    return u.UploadSession(
        upload_id=row.upload_id,
        state=row.state,
        refusal=row.refusal,
        files=row.files,
        total_bytes=sum(f.size for f in row.files),
        received_bytes=row.received_bytes,
        extracted=u.Extracted.model_validate(row.extracted) if row.extracted else None,
        title=steps.get("title"),
        description=steps.get("description"),
        classification=steps.get("classification"),
        architecture=steps.get("architecture"),
        operating_systems=steps.get("operating_systems", []),
        detection_rules=steps.get("detection_rules", []),
        prerequisite_package=steps.get("prerequisite_package"),
        prerequisite_rules=steps.get("prerequisite_rules", []),
        command_line=steps.get("command_line"),
        return_codes=steps.get("return_codes", [r.model_dump() for r in c.DEFAULT_RETURN_CODES]),
        missing=missing_steps(kind_of(row.files[0].path), steps, row.state),
        update_id=row.update_id,
    )


async def _open(
    ctx: HandlerContext, upload_id: str, *, states: tuple[str, ...]
) -> upload_store.UploadRow:
    row = await upload_store.load(ctx.conn, upload_id)
    if row is None:
        raise NotFound(f"upload {upload_id!r} does not exist", field="upload_id")
    if row.state not in states:
        raise Conflict(
            f"upload {upload_id} is {row.state}; this step needs it {' or '.join(states)}",
            field="upload_id",
        )
    return row


async def start_upload(ctx: HandlerContext, command: u.StartUpload) -> u.UploadSession:
    """Step 1: declare the installer and extra files; their total size is shown."""
    files = check_files(command.installer, command.extra_files)
    upload_id = str(uuid.uuid4())
    await upload_store.create(ctx.conn, upload_id, files)
    row = await _open(ctx, upload_id, states=("receiving",))
    return _view(row)


async def _refuse(ctx: HandlerContext, row: upload_store.UploadRow, error: Refused) -> None:
    """Discard everything the upload sent, remember why, and refuse (the cleanup commits)."""
    await upload_store.discard_chunks(ctx.conn, row.upload_id)
    row.state, row.refusal, row.received_bytes = "refused", str(error), 0
    await upload_store.save(ctx.conn, row)
    raise error


async def send_chunk(ctx: HandlerContext, command: u.SendChunk) -> u.UploadSession:
    """Receive bytes of one declared file, in order; the quota is checked on each chunk."""
    row = await _open(ctx, command.upload_id, states=("receiving",))
    path = check_path(command.path, "path")
    declared = {f.path: f.size for f in row.files}
    if path not in declared:
        raise InvalidInput(
            f"path {command.path!r} was not declared; declared: {sorted(declared)}", field="path"
        )
    try:
        data = base64.b64decode(command.data_b64, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise InvalidInput("data_b64 is not valid base64", field="data_b64") from None
    have = await upload_store.received(ctx.conn, row.upload_id, path)
    if command.offset != have:
        raise Conflict(
            f"offset {command.offset} for {path!r}: {have} bytes received so far, "
            f"send offset {have}",
            field="offset",
        )
    if have + len(data) > declared[path]:
        raise InvalidInput(
            f"{path!r} was declared {declared[path]} bytes; this chunk would make "
            f"it {have + len(data)}",
            field="data_b64",
        )
    await upload_store.lock_storage(ctx.conn)
    try:
        check_quota(
            await upload_store.used_bytes(ctx.conn), len(data), ctx.settings.storage_quota_bytes
        )
    except Refused as refusal:
        await _refuse(ctx, row, refusal)
    await upload_store.add_chunk(ctx.conn, row.upload_id, path, command.offset, data)
    row.received_bytes += len(data)
    if row.received_bytes == sum(declared.values()):
        row.state = "received"
        row.extracted = await _extract(ctx, row)
        row.steps.setdefault("title", _default_title(row.extracted))
        row.steps.setdefault("description", row.extracted.get("description") or "")
        row.steps.setdefault("classification", "Updates")
    await upload_store.save(ctx.conn, row)
    return _view(row)


def _default_title(extracted: dict[str, Any]) -> str:
    name = extracted.get("product_name") or "Unnamed package"
    version = extracted.get("version")
    return f"{name} {version}" if version else name


async def _assemble(ctx: HandlerContext, upload_id: str, path: str) -> Path:
    target = await asyncio.to_thread(_content(ctx).temporary)
    with target.open("wb") as out:
        async for chunk in upload_store.chunks(ctx.conn, upload_id, path):
            out.write(chunk)
    return target


async def _extract(ctx: HandlerContext, row: upload_store.UploadRow) -> dict[str, Any]:
    """Read the installer's own metadata; a corrupt installer refuses the whole upload."""
    installer = row.files[0].path
    assembled = await _assemble(ctx, row.upload_id, installer)
    try:
        meta = await asyncio.to_thread(read_installer, assembled, installer)
    except InvalidInstaller as error:
        await _refuse(ctx, row, Refused(str(error), field="installer"))
    finally:
        assembled.unlink(missing_ok=True)
    return u.Extracted(
        kind=meta.kind,
        product_name=meta.product_name,
        version=meta.version,
        manufacturer=meta.manufacturer,
        product_code=meta.product_code,
        description=meta.description,
    ).model_dump()


async def _step(ctx: HandlerContext, upload_id: str, answers: dict[str, Any]) -> u.UploadSession:
    row = await _open(ctx, upload_id, states=("receiving", "received"))
    row.steps.update(answers)
    await upload_store.save(ctx.conn, row)
    return _view(row)


async def describe(ctx: HandlerContext, command: u.Describe) -> u.UploadSession:
    """Step 2: name, description, classification (extracted values where left out)."""
    row = await _open(ctx, command.upload_id, states=("receiving", "received"))
    extracted = row.extracted or {}
    return await _step(
        ctx,
        command.upload_id,
        {
            "title": command.title or row.steps.get("title") or _default_title(extracted),
            "description": command.description
            if command.description is not None
            else row.steps.get("description", ""),
            "classification": command.classification,
        },
    )


async def set_requirements(ctx: HandlerContext, command: u.SetRequirements) -> u.UploadSession:
    """Step 3: architecture and operating systems."""
    return await _step(
        ctx,
        command.upload_id,
        {"architecture": command.architecture, "operating_systems": command.operating_systems},
    )


async def set_detection(ctx: HandlerContext, command: u.SetDetectionRules) -> u.UploadSession:
    """Step 4: detection rules; .msi/.msp detect themselves and are not asked."""
    row = await _open(ctx, command.upload_id, states=("receiving", "received"))
    kind = kind_of(row.files[0].path)
    if kind in ("msi", "msp"):
        raise InvalidInput(
            f"detection rules are not asked for .{kind}: Windows Installer "
            "packages detect themselves",
            field="rules",
        )
    rules = check_rules(command.rules, "rules")
    return await _step(ctx, command.upload_id, {"detection_rules": [r.model_dump() for r in rules]})


async def set_prerequisites(ctx: HandlerContext, command: u.SetPrerequisites) -> u.UploadSession:
    """Step 5: none, another package managed here, or rules."""
    if command.package is not None:
        found = await store.update(ctx.conn, update_id=command.package)
        if found is None or found.origin != "third_party":
            raise NotFound(
                f"package {command.package!r} is not a third-party update managed here",
                field="package",
            )
    rules = check_rules(command.rules, "rules")
    return await _step(
        ctx,
        command.upload_id,
        {
            "prerequisite_package": command.package,
            "prerequisite_rules": [r.model_dump() for r in rules],
        },
    )


async def set_command_line(ctx: HandlerContext, command: u.SetCommandLine) -> u.UploadSession:
    """Step 6: installer arguments; an .exe without them cannot install silently."""
    row = await _open(ctx, command.upload_id, states=("receiving", "received"))
    if kind_of(row.files[0].path) == "exe" and not command.arguments.strip():
        raise InvalidInput(
            "arguments '' is not allowed for an .exe: give its silent switch "
            "(e.g. /S, /quiet); an update that cannot install silently cannot "
            "be installed by the system",
            field="arguments",
        )
    return await _step(ctx, command.upload_id, {"command_line": command.arguments.strip()})


async def set_return_codes(ctx: HandlerContext, command: u.SetReturnCodes) -> u.UploadSession:
    """Step 7: add or change return codes (0 and 3010 by default)."""
    row = await _open(ctx, command.upload_id, states=("receiving", "received"))
    current = [
        c.ReturnCode.model_validate(r)
        for r in row.steps.get("return_codes", [r.model_dump() for r in c.DEFAULT_RETURN_CODES])
    ]
    merged = merge_return_codes(current, command.codes)
    return await _step(ctx, command.upload_id, {"return_codes": [r.model_dump() for r in merged]})


async def get_upload(ctx: HandlerContext, command: u.UploadRef) -> u.UploadSession:
    """Step 8: the summary of every answer, the total size and what is missing."""
    return _view(
        await _open(
            ctx, command.upload_id, states=("receiving", "received", "committed", "refused")
        )
    )


def _package(row: upload_store.UploadRow) -> c.Package:
    steps = row.steps
    return c.Package(
        kind=kind_of(row.files[0].path),
        installer=row.files[0].path,
        files=row.files,
        architecture=steps["architecture"],
        operating_systems=steps["operating_systems"],
        detection_rules=steps.get("detection_rules", []),
        prerequisite_package=steps.get("prerequisite_package"),
        prerequisite_rules=steps.get("prerequisite_rules", []),
        command_line=steps.get("command_line") or "",
    )


def _third_party_fields(
    row: upload_store.UploadRow, installer_sha: str, now: str
) -> dict[str, Any]:
    """The stored content of a third-party update (UpdateSnapshot's static fields)."""
    extracted, steps = row.extracted or {}, row.steps
    family = extracted.get("manufacturer") or "Third-party"
    name = extracted.get("product_name") or steps["title"]
    return {
        "kb": None,
        "title": steps["title"],
        "description": steps.get("description") or "",
        "classification": steps.get("classification", "Updates"),
        "severity": None,
        "products": [
            {"product_id": extracted.get("product_code") or name, "name": name, "family": family}
        ],
        "product_families": [family],
        "cves": [],
        "release_date": now,
        "restart": "may_request",
        "fixed_builds": [],
        "url": None,
        "supersedes": [],
        "size_bytes": sum(f.size for f in row.files),
        "sha256": installer_sha,
        "return_codes": steps.get("return_codes", [r.model_dump() for r in c.DEFAULT_RETURN_CODES]),
        "package": _package(row).model_dump(),
    }


async def commit_upload(ctx: HandlerContext, command: u.UploadRef) -> c.UpdateDetail:
    """Store the content and publish the update, all or nothing."""
    row = await _open(ctx, command.upload_id, states=("received",))
    missing = missing_steps(kind_of(row.files[0].path), row.steps, row.state)
    if missing:
        raise InvalidInput(
            f"upload {row.upload_id} cannot be committed yet: missing {', '.join(missing)}",
            field="upload_id",
        )
    content = _content(ctx)
    stored: list[tuple[str, str, int]] = []
    for item in row.files:
        assembled = await _assemble(ctx, row.upload_id, item.path)
        sha256, size = await asyncio.to_thread(content.put, assembled)
        await upload_store.add_content(ctx.conn, sha256, size)
        stored.append((item.path, sha256, size))
    update_id = str(uuid.uuid4())
    data = _third_party_fields(row, stored[0][1], ctx.now.isoformat())
    await store.put_update(
        ctx.conn,
        update_id=update_id,
        origin="third_party",
        kb=None,
        revision=1,
        content_hash=stored[0][1],
        data=data,
        release_date=ctx.now,
        families=data["product_families"],
    )
    await upload_store.save_package(ctx.conn, update_id, data["package"], stored)
    await upload_store.discard_chunks(ctx.conn, row.upload_id)
    row.state, row.update_id = "committed", update_id
    await upload_store.save(ctx.conn, row)
    created = await store.update(ctx.conn, update_id=update_id)
    assert created is not None  # noqa: S101 - inserted above
    await ctx.outbox.add(
        c.UPDATE_PUBLISHED, c.UpdatePublished(update=store.snapshot(created)), subject=update_id
    )
    return c.UpdateDetail(update=store.snapshot(created), superseded_at=None, expired_at=None)


async def _third_party(ctx: HandlerContext, reference: str, verb: str) -> store.StoredUpdate:
    try:
        found = await store.update(ctx.conn, update_id=str(uuid.UUID(reference)))
    except ValueError:
        found = None
    if found is None:
        raise NotFound(f"update {reference!r} is not in the catalog", field="update")
    if found.origin != "third_party":
        raise Conflict(
            f"update {reference} (KB{found.kb}) is a Microsoft update: only "
            f"third-party updates can be {verb}",
            field="update",
        )
    return found


async def edit_update(ctx: HandlerContext, command: u.EditUpdate) -> c.UpdateDetail:
    """Change a third-party update; the change is a new revision."""
    found = await _third_party(ctx, command.update, "edited")
    data = dict(found.data)
    package = dict(data["package"])
    if command.command_line is not None:
        if package["kind"] == "exe" and not command.command_line.strip():
            raise InvalidInput(
                "command_line '' is not allowed for an .exe: give its silent switch",
                field="command_line",
            )
        package["command_line"] = command.command_line.strip()
    changes = {
        key: value
        for key, value in {
            "title": command.title,
            "description": command.description,
            "classification": command.classification,
            "return_codes": None
            if command.return_codes is None
            else [r.model_dump() for r in merge_return_codes([], command.return_codes)],
        }.items()
        if value is not None
    }
    data.update(changes, package=package)
    if data == found.data:
        return c.UpdateDetail(
            update=store.snapshot(found),
            superseded_at=found.superseded_at,
            expired_at=found.expired_at,
        )
    await store.put_update(
        ctx.conn,
        update_id=found.update_id,
        origin="third_party",
        kb=None,
        revision=found.revision + 1,
        content_hash=found.content_hash,
        data=data,
        release_date=ctx.now,
        families=data["product_families"],
    )
    await upload_store.save_package(ctx.conn, found.update_id, package, [])
    edited = await store.update(ctx.conn, update_id=found.update_id)
    assert edited is not None  # noqa: S101 - just written
    await ctx.outbox.add(
        c.UPDATE_REVISED,
        c.UpdateRevised(update=store.snapshot(edited), previous_revision=found.revision),
        subject=found.update_id,
    )
    return c.UpdateDetail(
        update=store.snapshot(edited),
        superseded_at=edited.superseded_at,
        expired_at=edited.expired_at,
    )


async def delete_update(ctx: HandlerContext, command: u.DeleteUpdate) -> u.Deleted:
    """Delete a third-party update and the content only it used."""
    found = await _third_party(ctx, command.update, "deleted")
    freed = await upload_store.delete_update(ctx.conn, found.update_id)
    await ctx.outbox.add(
        c.UPDATE_DELETED, c.UpdateDeleted(update_id=found.update_id), subject=found.update_id
    )
    content = _content(ctx)
    for sha256, _ in freed:  # last: the transaction commits right after
        await asyncio.to_thread(content.delete, sha256)
    return u.Deleted(update_id=found.update_id, freed_bytes=sum(size for _, size in freed))
