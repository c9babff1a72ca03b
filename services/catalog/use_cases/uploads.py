"""The third-party upload procedure (docs/product.md section 4): one command per step, commit."""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import NoReturn

import structlog

from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.contracts.uploads import UploadState
from libs.db.pool import Pool
from libs.observability import metrics
from libs.service import Conflict, HandlerContext, InvalidInput, NotFound, Refused, TaskContext
from libs.service.handlers import AfterCommit
from services.catalog import store
from services.catalog.domain.installers.common import InstallerMetadata, InvalidInstaller
from services.catalog.domain.third_party import StoredFile, package, third_party_content
from services.catalog.domain.updates import snapshot
from services.catalog.domain.uploads import (
    OPEN_STATES,
    Upload,
    check_detection_asked,
    check_files,
    check_path,
    check_quota,
    check_rules,
    check_silent,
    default_title,
    extracted,
    merge_return_codes,
    missing_steps,
    not_an_installer,
    session,
    with_received_defaults,
)
from services.catalog.sources.installer_probe import ProbeLimits, probe_installer
from services.catalog.store.content import LocalContentStore, Staged

log = structlog.get_logger(__name__)


async def _open(ctx: HandlerContext, upload_id: str, *, states: tuple[UploadState, ...]) -> Upload:
    upload = await store.uploads.load(ctx.conn, upload_id)
    if upload is None:
        raise NotFound(f"upload {upload_id!r} does not exist", field="upload_id")
    if upload.state not in states:
        raise Conflict(
            f"upload {upload_id} is {upload.state}; this step needs it {' or '.join(states)}",
            field="upload_id",
        )
    return upload


async def _answering(ctx: HandlerContext, upload_id: str) -> Upload:
    """An upload whose steps may still be answered (before commit)."""
    return await _open(ctx, upload_id, states=("receiving", "received"))


def _view(ctx: HandlerContext, upload: Upload) -> u.UploadSession:
    """The session as the operator sees it, with when it expires under this process's
    LOCKGATE_UPLOAD_EXPIRY_HOURS."""
    return session(upload, ctx.settings.upload_expiry_hours)


async def _saved(ctx: HandlerContext, upload: Upload) -> u.UploadSession:
    await store.uploads.save(ctx.conn, upload, ctx.now)
    upload.updated_at = ctx.now
    return _view(ctx, upload)


async def start_upload(ctx: HandlerContext, command: u.StartUpload) -> u.UploadSession:
    """Step 1: declare the installer and extra files; their total size is shown."""
    files = check_files(command.installer, command.extra_files)
    upload_id = str(uuid.uuid4())
    await store.uploads.create(ctx.conn, upload_id, files, ctx.now)
    return _view(ctx, await _open(ctx, upload_id, states=("receiving",)))


async def _refuse(ctx: HandlerContext, upload: Upload, error: Refused) -> NoReturn:
    """Discard everything the upload sent, remember why, and refuse (the cleanup commits)."""
    await store.uploads.discard_chunks(ctx.conn, upload.upload_id)
    upload.state, upload.refusal, upload.received_bytes = "refused", str(error), 0
    await store.uploads.save(ctx.conn, upload, ctx.now)
    raise error


async def send_chunk(ctx: HandlerContext, command: u.SendChunk) -> u.UploadSession:
    """Receive bytes of one declared file, in order; the quota is checked on each chunk."""
    upload = await _open(ctx, command.upload_id, states=("receiving",))
    path = check_path(command.path, "path")
    declared = {f.path: f.size for f in upload.files}
    if path not in declared:
        raise InvalidInput(
            f"path {command.path!r} was not declared; declared: {sorted(declared)}", field="path"
        )
    try:
        data = base64.b64decode(command.data_b64, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise InvalidInput("data_b64 is not valid base64", field="data_b64") from None
    have = await store.uploads.received(ctx.conn, upload.upload_id, path)
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
    metadata = None
    if upload.received_bytes + len(data) == sum(declared.values()):
        # the last chunk: read the installer before taking the storage lock, which every
        # other upload's chunks wait for (a child process reads it, within limits)
        metadata = await _read_installer(ctx, upload, (path, data))
    await store.uploads.lock_storage(ctx.conn)
    try:
        used = await store.uploads.used_bytes(ctx.conn)
        check_quota(used, len(data), ctx.settings.storage_quota_bytes)
    except Refused as refusal:
        await _refuse(ctx, upload, refusal)
    await store.uploads.add_chunk(ctx.conn, upload.upload_id, path, command.offset, data)
    upload.received_bytes += len(data)
    upload.received_by_file[path] = have + len(data)
    if metadata is not None:
        upload.state = "received"
        upload.extracted = extracted(metadata)
        upload.steps = with_received_defaults(upload.steps, upload.extracted)
    return await _saved(ctx, upload)


async def _assemble(ctx: HandlerContext, upload_id: str, path: str, tail: bytes = b"") -> Path:
    target = await asyncio.to_thread(store.content.for_settings(ctx.settings).temporary)
    with target.open("wb") as out:
        async for chunk in store.uploads.chunks(ctx.conn, upload_id, path):
            out.write(chunk)
        out.write(tail)
    return target


async def _read_installer(
    ctx: HandlerContext, upload: Upload, last: tuple[str, bytes]
) -> InstallerMetadata:
    """Read the installer's own metadata (with `last`, the chunk not stored yet); any failure
    to read it refuses the whole upload as not a valid installer (HTTP 422), never a retry."""
    path, data = last
    tail = data if path == upload.installer else b""
    assembled = await _assemble(ctx, upload.upload_id, upload.installer, tail)
    limits = ProbeLimits.from_settings(ctx.settings)
    try:
        return await probe_installer(assembled, upload.installer, limits)
    except InvalidInstaller as error:
        await _refuse(ctx, upload, not_an_installer(str(error)))
    finally:
        assembled.unlink(missing_ok=True)


async def describe(ctx: HandlerContext, command: u.Describe) -> u.UploadSession:
    """Step 2: name, description, classification (extracted values where left out)."""
    upload = await _answering(ctx, command.upload_id)
    steps = upload.steps
    upload.steps = replace(
        steps,
        title=command.title or steps.title or default_title(upload.extracted),
        description=command.description
        if command.description is not None
        else (steps.description or ""),
        classification=command.classification,
        described=True,
    )
    return await _saved(ctx, upload)


async def set_requirements(ctx: HandlerContext, command: u.SetRequirements) -> u.UploadSession:
    """Step 3: architecture, operating systems, free disk space and memory (the contract
    bounds the sizes); the answer replaces the step's earlier one."""
    upload = await _answering(ctx, command.upload_id)
    upload.steps = replace(
        upload.steps,
        architecture=command.architecture,
        operating_systems=tuple(command.operating_systems),
        min_free_disk_bytes=command.min_free_disk_bytes,
        min_memory_bytes=command.min_memory_bytes,
    )
    return await _saved(ctx, upload)


async def set_detection(ctx: HandlerContext, command: u.SetDetectionRules) -> u.UploadSession:
    """Step 4: detection rules; .msi/.msp detect themselves and are not asked."""
    upload = await _answering(ctx, command.upload_id)
    check_detection_asked(upload.kind)
    rules = check_rules(command.rules, "rules")
    upload.steps = replace(upload.steps, detection_rules=tuple(rules))
    return await _saved(ctx, upload)


async def set_prerequisites(ctx: HandlerContext, command: u.SetPrerequisites) -> u.UploadSession:
    """Step 5: none, another package managed here, or rules."""
    if command.package is not None:
        found = await store.updates.update(ctx.conn, update_id=command.package)
        if found is None or found.origin != "third_party":
            raise NotFound(
                f"package {command.package!r} is not a third-party update managed here",
                field="package",
            )
    rules = check_rules(command.rules, "rules")
    upload = await _answering(ctx, command.upload_id)
    upload.steps = replace(
        upload.steps, prerequisite_package=command.package, prerequisite_rules=tuple(rules)
    )
    return await _saved(ctx, upload)


async def set_command_line(ctx: HandlerContext, command: u.SetCommandLine) -> u.UploadSession:
    """Step 6: installer arguments; an .exe without them cannot install silently."""
    upload = await _answering(ctx, command.upload_id)
    upload.steps = replace(upload.steps, command_line=check_silent(upload.kind, command.arguments))
    return await _saved(ctx, upload)


async def set_return_codes(ctx: HandlerContext, command: u.SetReturnCodes) -> u.UploadSession:
    """Step 7: add or change return codes (0 and 3010 by default)."""
    upload = await _answering(ctx, command.upload_id)
    merged = merge_return_codes(upload.steps.codes, command.codes)
    upload.steps = replace(upload.steps, return_codes=tuple(merged))
    return await _saved(ctx, upload)


async def get_upload(ctx: HandlerContext, command: u.UploadRef) -> u.UploadSession:
    """Step 8: the summary of every answer, the total size and what is missing; for an
    interrupted upload, what the wizard resumes from (each file's bytes received, the steps
    answered, what the installer said of itself)."""
    return _view(
        ctx,
        await _open(
            ctx,
            command.upload_id,
            states=("receiving", "received", "committed", "refused", "cancelled", "expired"),
        ),
    )


async def list_uploads(ctx: HandlerContext, command: u.ListUploads) -> u.UploadList:
    """The most recent upload sessions, newest first, only those in `states` if given."""
    found = await store.uploads.recent(ctx.conn, command.states, command.limit)
    return u.UploadList(uploads=[_view(ctx, upload) for upload in found])


async def commit_upload(ctx: HandlerContext, command: u.UploadRef) -> c.UpdateDetail:
    """Store the content and publish the update, all or nothing."""
    upload = await _open(ctx, command.upload_id, states=("received",))
    missing = missing_steps(upload.kind, upload.steps, upload.state)
    if missing:
        raise InvalidInput(
            f"upload {upload.upload_id} cannot be committed yet: missing {', '.join(missing)}",
            field="upload_id",
        )
    stored = await _stage(ctx, upload)
    update_id = str(uuid.uuid4())
    installing = package(upload, stored)
    content = third_party_content(upload, installing, stored[0].sha256, ctx.now)
    await store.updates.put_update(
        ctx.conn,
        update_id=update_id,
        origin="third_party",
        revision=1,
        content_hash=stored[0].sha256,
        content=content,
        release_date=ctx.now,
    )
    await store.packages.save(ctx.conn, update_id, installing, stored)
    await store.uploads.discard_chunks(ctx.conn, upload.upload_id)
    upload.state, upload.update_id = "committed", update_id
    await store.uploads.save(ctx.conn, upload, ctx.now)
    created = await store.updates.update(ctx.conn, update_id=update_id)
    assert created is not None  # noqa: S101 - inserted above
    published = snapshot(created, await store.settings.load(ctx.conn))
    await ctx.outbox.add(c.UPDATE_PUBLISHED, c.UpdatePublished(update=published), subject=update_id)
    return c.UpdateDetail(update=published, superseded_at=None, expired_at=None)


async def _stage(ctx: HandlerContext, upload: Upload) -> list[StoredFile]:
    """Write each file under a temporary name and record its content; the files move into
    place only once this transaction has committed (the sweeper finishes a move a crash cut
    short, and removes what a rollback left)."""
    content_store = store.content.for_settings(ctx.settings)
    staged: list[Staged] = []
    try:
        for item in upload.files:
            assembled = await _assemble(ctx, upload.upload_id, item.path)
            staged.append(await asyncio.to_thread(content_store.stage, assembled))
        await asyncio.to_thread(content_store.hold, staged)  # however long assembling took
        await store.content.lock(ctx.conn, [f.sha256 for f in staged])
        for file in staged:
            await store.packages.add_content(ctx.conn, file.sha256, file.size)
    except BaseException:
        for file in staged:  # never committed: nothing names them
            file.path.unlink(missing_ok=True)
        raise
    ctx.on_commit(partial(_settle, content_store, staged))
    return [
        StoredFile(path=item.path, sha256=file.sha256, size=file.size)
        for item, file in zip(upload.files, staged, strict=True)
    ]


async def _settle(content_store: LocalContentStore, staged: list[Staged], _: Pool) -> None:
    """After commit: each staged file into its place (already there: the copy is dropped)."""
    for file in staged:
        await asyncio.to_thread(content_store.settle, file.path, file.sha256)


async def cancel_upload(ctx: HandlerContext, command: u.UploadRef) -> u.UploadSession:
    """Abandon an upload before commit: its bytes go and its quota is free at once.

    Cancelling one that already ended without commit (cancelled, expired, refused) answers
    its session as it stands; a committed one is refused (delete the update instead)."""
    upload = await store.uploads.load(ctx.conn, command.upload_id)
    if upload is None:
        raise NotFound(f"upload {command.upload_id!r} does not exist", field="upload_id")
    if upload.state == "committed":
        raise Conflict(
            f"upload {upload.upload_id} is committed (update {upload.update_id}) and cannot be "
            f"cancelled; delete the update instead (lockgate delete {upload.update_id})",
            field="upload_id",
        )
    if upload.state not in OPEN_STATES:
        return _view(ctx, upload)
    await store.uploads.discard_chunks(ctx.conn, upload.upload_id)
    upload.state, upload.received_bytes = "cancelled", 0
    ctx.on_commit(_count_ended("cancelled", 1))
    return await _saved(ctx, upload)


def _count_ended(how: str, count: int) -> AfterCommit:
    async def count_it(_: Pool) -> None:
        metrics.CATALOG_UPLOADS_ENDED.labels(how).inc(count)

    return count_it


EXPIRE_BATCH = 500


async def expire_abandoned(task: TaskContext) -> list[str]:
    """Periodic: expire every upload with no activity for LOCKGATE_UPLOAD_EXPIRY_HOURS, drop
    its bytes and free its quota; returns the ids expired."""
    now = task.clock.now()
    idle_since = now - timedelta(hours=task.settings.upload_expiry_hours)
    expired: list[str] = []
    while True:
        async with task.pool.acquire() as conn, conn.transaction():
            batch = await store.uploads.expire_abandoned(conn, idle_since, now, EXPIRE_BATCH)
        expired.extend(batch)
        if len(batch) < EXPIRE_BATCH:
            break
    if expired:
        metrics.CATALOG_UPLOADS_ENDED.labels("expired").inc(len(expired))
        log.info(
            "uploads.expired",
            upload_ids=expired,
            idle_hours=task.settings.upload_expiry_hours,
        )
    return expired
