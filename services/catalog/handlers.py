"""catalog's handler table: every message the service reacts to."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import uuid
from pathlib import Path

from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.contracts.system import PING
from libs.observability import metrics
from libs.service import (
    Answer,
    Every,
    HandlerContext,
    InvalidInput,
    NotFound,
    ServiceDefinition,
    TaskContext,
)
from libs.service.system import answer_ping
from services.catalog import store, upload_store, uploads
from services.catalog.domain.model import SourceDocument
from services.catalog.domain.settings import check_products, ordered_classifications
from services.catalog.domain.updates import (
    catalog_fields,
    content_hash,
    families,
    merge,
    normalize_kb,
    update_id_for_kb,
)
from services.catalog.sources.msrc import InvalidDocument, parse_cvrf

MAX_DOCUMENT_BYTES = 200 * 1024 * 1024


def _document_bytes(command: c.ImportDocument) -> bytes:
    try:
        packed = base64.b64decode(command.content_gzip_b64, validate=True)
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as unpacked:
            raw = unpacked.read(MAX_DOCUMENT_BYTES + 1)
    except (ValueError, OSError, EOFError) as error:  # binascii.Error is a ValueError
        raise InvalidInput(
            f"content_gzip_b64 is not base64 of gzip data ({error}); send the document "
            "gzip-compressed then base64-encoded",
            field="content_gzip_b64",
        ) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"document larger than {MAX_DOCUMENT_BYTES} bytes", field="content_gzip_b64"
        )
    return raw


def _read_document(command: c.ImportDocument) -> tuple[bytes, SourceDocument]:
    raw = _document_bytes(command)
    return raw, parse_cvrf(io.BytesIO(raw))


async def import_document(ctx: HandlerContext, command: c.ImportDocument) -> c.ImportResult:
    """Merge a source document into the catalog; re-importing it changes nothing."""
    try:
        # Decompressing and parsing take a while: off the event loop, so other messages,
        # heartbeats and health checks go on meanwhile.
        raw, document = await asyncio.to_thread(_read_document, command)
    except InvalidDocument as error:
        raise InvalidInput(f"{command.label or 'document'}: {error}", field="content") from None
    conn = ctx.conn
    await store.lock_catalog(conn)
    await store.record_document(conn, document, hashlib.sha256(raw).hexdigest())
    await store.save_contributions(conn, document)
    links = await store.save_links(conn, document.updates)
    await store.save_advisories(conn, document.document_id, document.advisories)

    kbs = [u.kb for u in document.updates]
    merged = {kb: merge(parts) for kb, parts in (await store.contributions(conn, kbs)).items()}
    existing = await store.updates_by_kb(conn, kbs)
    published: list[str] = []
    revised: dict[str, int] = {}
    for kb, update in sorted(merged.items()):
        current, digest = existing.get(kb), content_hash(update)
        if current is not None and current.content_hash == digest:
            continue
        await store.put_update(
            conn,
            update_id=update_id_for_kb(kb),
            origin="microsoft",
            kb=kb,
            revision=1 if current is None else current.revision + 1,
            content_hash=digest,
            data=catalog_fields(update),
            release_date=update.release_date,
            families=families(update),
        )
        if current is None:
            published.append(kb)
        else:
            revised[kb] = current.revision
    superseded = await store.mark_newly_superseded(conn, ctx.now)
    fresh = await store.updates_by_kb(conn, [*published, *revised])
    await ctx.outbox.add_many(
        c.UPDATE_PUBLISHED,
        [
            (c.UpdatePublished(update=store.snapshot(fresh[kb])), fresh[kb].update_id)
            for kb in published
        ],
    )
    await ctx.outbox.add_many(
        c.UPDATE_REVISED,
        [
            (
                c.UpdateRevised(update=store.snapshot(fresh[kb]), previous_revision=previous),
                fresh[kb].update_id,
            )
            for kb, previous in revised.items()
        ],
    )
    await ctx.outbox.add_many(
        c.UPDATE_SUPERSEDED,
        [
            (
                c.UpdateSuperseded(update_id=s.update_id, kb=s.kb, superseded_by=s.superseded_by),
                s.update_id,
            )
            for s in superseded
        ],
    )
    return c.ImportResult(
        document_id=document.document_id,
        updates_in_document=len(document.updates),
        advisories_in_document=len(document.advisories),
        published=len(published),
        revised=len(revised),
        unchanged=len(merged) - len(published) - len(revised),
        superseded=len(superseded),
        supersession_links=links,
    )


async def _find(ctx: HandlerContext, reference: str) -> store.StoredUpdate:
    try:
        found = await store.update(ctx.conn, update_id=str(uuid.UUID(reference)))
    except ValueError:
        found = await store.update(ctx.conn, kb=normalize_kb(reference))
    if found is None:
        raise NotFound(f"update {reference!r} is not in the catalog", field="update")
    return found


def _detail(found: store.StoredUpdate) -> c.UpdateDetail:
    return c.UpdateDetail(
        update=store.snapshot(found), superseded_at=found.superseded_at, expired_at=found.expired_at
    )


async def get_update(ctx: HandlerContext, query: c.GetUpdate) -> c.UpdateDetail:
    """One update, with what it supersedes and what supersedes it."""
    return _detail(await _find(ctx, query.update))


async def list_updates(ctx: HandlerContext, query: c.ListUpdates) -> c.UpdateList:
    """Updates matching the filters, newest first."""
    found, total = await store.list_updates(ctx.conn, query)
    return c.UpdateList(updates=[store.snapshot(u) for u in found], total=total)


async def expire_update(ctx: HandlerContext, command: c.ExpireUpdate) -> c.UpdateDetail:
    """Expire an update (once); approval learns it from the event."""
    await store.lock_catalog(ctx.conn)
    found = await _find(ctx, command.update)
    if await store.expire(ctx.conn, found.update_id, ctx.now, command.reason):
        await ctx.outbox.add(
            c.UPDATE_EXPIRED,
            c.UpdateExpired(
                update_id=found.update_id, kb=found.kb, expired_at=ctx.now, reason=command.reason
            ),
            subject=found.update_id,
        )
    return _detail(await _find(ctx, found.update_id))


async def _settings_view(ctx: HandlerContext) -> c.SettingsView:
    current = await store.settings(ctx.conn)
    available = sorted({*await store.known_families(ctx.conn), *current.products})
    return c.SettingsView(
        settings=current,
        available_products=available,
        available_classifications=list(c.CLASSIFICATIONS),
    )


async def get_settings(ctx: HandlerContext, _: c.GetSettings) -> c.SettingsView:
    """Offered products and classifications, and what may be chosen."""
    return await _settings_view(ctx)


async def change_settings(ctx: HandlerContext, command: c.ChangeSettings) -> c.SettingsView:
    """Replace offered products/classifications; publishes the change if there is one."""
    view = await _settings_view(ctx)
    current = view.settings
    wanted = c.CatalogSettings(
        products=current.products
        if command.products is None
        else check_products(command.products, view.available_products),
        classifications=current.classifications
        if command.classifications is None
        else ordered_classifications(command.classifications),
    )
    if wanted != current:
        await store.save_settings(ctx.conn, wanted, ctx.now)
        await ctx.outbox.add(c.SETTINGS_CHANGED, c.SettingsChanged(settings=wanted))
    return await _settings_view(ctx)


async def sample_gauges(task: TaskContext) -> None:
    """Updates by state and storage used, for Prometheus."""
    async with task.pool.acquire() as conn:
        states = await store.update_states(conn)
        used = await upload_store.used_bytes(conn)
    for state in ("active", "superseded", "expired"):
        metrics.CATALOG_UPDATES.labels(state).set(states.get(state, 0))
    metrics.CATALOG_STORAGE_BYTES.set(used)
    metrics.CATALOG_STORAGE_QUOTA_BYTES.set(task.settings.storage_quota_bytes)


SERVICE = ServiceDefinition(
    name="catalog",
    migrations=Path(__file__).parent / "migrations",
    events=(),
    commands=(
        Answer(PING["catalog"], answer_ping),
        Answer(c.IMPORT_DOCUMENT, import_document),
        Answer(c.GET_UPDATE, get_update),
        Answer(c.LIST_UPDATES, list_updates),
        Answer(c.EXPIRE_UPDATE, expire_update),
        Answer(c.GET_SETTINGS, get_settings),
        Answer(c.CHANGE_SETTINGS, change_settings),
        Answer(u.START_UPLOAD, uploads.start_upload),
        Answer(u.SEND_CHUNK, uploads.send_chunk),
        Answer(u.DESCRIBE, uploads.describe),
        Answer(u.SET_REQUIREMENTS, uploads.set_requirements),
        Answer(u.SET_DETECTION, uploads.set_detection),
        Answer(u.SET_PREREQUISITES, uploads.set_prerequisites),
        Answer(u.SET_COMMAND_LINE, uploads.set_command_line),
        Answer(u.SET_RETURN_CODES, uploads.set_return_codes),
        Answer(u.GET_UPLOAD, uploads.get_upload),
        Answer(u.COMMIT_UPLOAD, uploads.commit_upload),
        Answer(u.EDIT_UPDATE, uploads.edit_update),
        Answer(u.DELETE_UPDATE, uploads.delete_update),
    ),
    tasks=(Every("gauges", lambda s: s.metrics_sample_seconds, sample_gauges),),
)
