"""Importing a source document: merge what it says into the catalog and publish the changes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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
    conn = ctx.conn
    # Decompressing, hashing and parsing take a while: off the event loop, so other
    # messages, heartbeats and health checks go on meanwhile; and the catalog is locked and
    # its settings read while they run. A refused document rolls all of it back.
    reading = asyncio.ensure_future(asyncio.to_thread(read_document, command))
    try:
        await store.updates.lock_catalog(conn)
        in_force = await store.settings.load(conn)
        sha256, document = await reading
    except InvalidDocument as error:
        raise InvalidInput(f"{command.label or 'document'}: {error}", field="content") from None
    finally:
        _forget(reading)
    links = await store.updates.save_document(conn, document, sha256)

    kbs = [u.kb for u in document.updates]
    contributions, existing = await store.updates.import_state(conn, kbs)
    merged = {kb: merge(parts) for kb, parts in contributions.items()}
    published: list[str] = []
    revised: dict[str, int] = {}
    writes: list[store.updates.UpdateWrite] = []
    for kb, update in sorted(merged.items()):
        current, digest = existing.get(kb), content_hash(update)
        if current is not None and current.content_hash == digest:
            continue
        writes.append(
            store.updates.UpdateWrite(
                update_id=update_id_for_kb(kb),
                revision=1 if current is None else current.revision + 1,
                content_hash=digest,
                content=catalog_fields(update),
                release_date=update.release_date,
            )
        )
        if current is None:
            published.append(kb)
        else:
            revised[kb] = current.revision
    # One statement for the whole document (it was one per update: 27-29 round trips).
    await store.updates.put_updates(conn, "microsoft", writes)
    superseded, fresh = await store.updates.supersede_and_read(
        conn, ctx.now, [*published, *revised]
    )
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


def _forget(reading: asyncio.Future[Any]) -> None:
    """Leave a document being read (the import failed before it was needed): the thread ends
    on its own, and what it raises is not reported as never retrieved."""
    if not reading.done():
        reading.cancel()
    elif not reading.cancelled():
        reading.exception()


async def list_imports(ctx: HandlerContext, command: c.ListImports) -> c.ImportList:
    """The most recent imports, newest first, each with the counts it answered."""
    return c.ImportList(imports=await store.imports.recent(ctx.conn, command.limit))
