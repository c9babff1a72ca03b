"""Importing a source document: merge what it says into the catalog and publish the changes."""

from __future__ import annotations

import asyncio
import hashlib
import time

from libs.contracts import catalog as c
from libs.service import HandlerContext, InvalidInput
from services.catalog import store
from services.catalog.domain.documents import read_document
from services.catalog.domain.msrc import InvalidDocument
from services.catalog.domain.offers import revision_changes
from services.catalog.domain.updates import (
    catalog_fields,
    content_hash,
    merge,
    offer_facts,
    snapshot,
    update_id_for_kb,
)


async def import_document(ctx: HandlerContext, command: c.ImportDocument) -> c.ImportResult:
    """Merge a source document into the catalog; re-importing it changes nothing (but is
    recorded, like every import, for ListImports)."""
    started = time.monotonic()
    try:
        # Decompressing and parsing take a while: off the event loop, so other messages,
        # heartbeats and health checks go on meanwhile.
        raw, document = await asyncio.to_thread(read_document, command)
    except InvalidDocument as error:
        raise InvalidInput(f"{command.label or 'document'}: {error}", field="content") from None
    conn = ctx.conn
    await store.updates.lock_catalog(conn)
    in_force = await store.settings.load(conn)
    sha256 = hashlib.sha256(raw).hexdigest()
    await store.updates.record_document(conn, document, sha256)
    await store.updates.save_contributions(conn, document)
    links = await store.updates.save_links(conn, document.updates)
    await store.updates.save_advisories(conn, document.document_id, document.advisories)

    kbs = [u.kb for u in document.updates]
    contributions = await store.updates.contributions(conn, kbs)
    merged = {kb: merge(parts) for kb, parts in contributions.items()}
    existing = await store.updates.updates_by_kb(conn, kbs)
    published: list[str] = []
    revised: dict[str, int] = {}
    for kb, update in sorted(merged.items()):
        current, digest = existing.get(kb), content_hash(update)
        if current is not None and current.content_hash == digest:
            continue
        await store.updates.put_update(
            conn,
            update_id=update_id_for_kb(kb),
            origin="microsoft",
            revision=1 if current is None else current.revision + 1,
            content_hash=digest,
            content=catalog_fields(update),
            release_date=update.release_date,
        )
        if current is None:
            published.append(kb)
        else:
            revised[kb] = current.revision
    superseded = await store.updates.mark_newly_superseded(conn, ctx.now)
    fresh = await store.updates.updates_by_kb(conn, [*published, *revised])
    await ctx.outbox.add_many(
        c.UPDATE_PUBLISHED,
        [
            (c.UpdatePublished(update=snapshot(fresh[kb], in_force)), fresh[kb].update_id)
            for kb in published
        ],
    )
    await ctx.outbox.add_many(
        c.UPDATE_REVISED,
        [
            (
                c.UpdateRevised(update=snapshot(fresh[kb], in_force), previous_revision=previous),
                fresh[kb].update_id,
            )
            for kb, previous in revised.items()
        ],
    )
    # A revision may move an update into or out of what the settings offer.
    moved = revision_changes(
        [(offer_facts(existing[kb]), offer_facts(fresh[kb])) for kb in revised], in_force
    )
    await ctx.outbox.add_many(c.UPDATE_OFFERED, [(e, e.update_id) for e in moved if e.offered])
    await ctx.outbox.add_many(
        c.UPDATE_WITHDRAWN, [(e, e.update_id) for e in moved if not e.offered]
    )
    await ctx.outbox.add_many(
        c.UPDATE_SUPERSEDED,
        [
            (
                c.UpdateSuperseded(
                    update_id=s.update_id, kb=s.kb, superseded_by=list(s.superseded_by)
                ),
                s.update_id,
            )
            for s in superseded
        ],
    )
    result = c.ImportResult(
        document_id=document.document_id,
        updates_in_document=len(document.updates),
        advisories_in_document=len(document.advisories),
        published=len(published),
        revised=len(revised),
        unchanged=len(merged) - len(published) - len(revised),
        superseded=len(superseded),
        supersession_links=links,
    )
    await store.imports.record(
        conn,
        document,
        result=result,
        sha256=sha256,
        label=command.label,
        sent_by=ctx.envelope.source,
        imported_at=ctx.now,
        duration_seconds=time.monotonic() - started,
    )
    return result


async def list_imports(ctx: HandlerContext, command: c.ListImports) -> c.ImportList:
    """The most recent imports, newest first, each with the counts it answered."""
    return c.ImportList(imports=await store.imports.recent(ctx.conn, command.limit))
