"""Editing and deleting third-party updates once their upload is committed."""

from __future__ import annotations

import asyncio
from functools import partial

from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.db.pool import Pool
from libs.service import HandlerContext
from libs.settings import Settings
from services.catalog import store
from services.catalog.domain.third_party import (
    check_third_party,
    edited,
    package_of,
    update_id_of,
)
from services.catalog.domain.updates import StoredUpdate, detail, snapshot


async def _third_party(ctx: HandlerContext, reference: str, verb: str) -> StoredUpdate:
    update_id = update_id_of(reference)
    found = None if update_id is None else await store.updates.update(ctx.conn, update_id=update_id)
    return check_third_party(found, reference, verb)


async def edit_update(ctx: HandlerContext, command: u.EditUpdate) -> c.UpdateDetail:
    """Change a third-party update; the change is a new revision."""
    found = await _third_party(ctx, command.update, "edited")
    content = edited(found.content, command)
    in_force = await store.settings.load(ctx.conn)
    if content == found.content:
        return detail(found, in_force)
    await store.updates.put_update(
        ctx.conn,
        update_id=found.update_id,
        origin="third_party",
        revision=found.revision + 1,
        content_hash=found.content_hash,
        content=content,
        release_date=ctx.now,
    )
    await store.packages.save(ctx.conn, found.update_id, package_of(content), [])
    changed = await store.updates.update(ctx.conn, update_id=found.update_id)
    assert changed is not None  # noqa: S101 - just written
    await ctx.outbox.add(
        c.UPDATE_REVISED,
        c.UpdateRevised(update=snapshot(changed, in_force), previous_revision=found.revision),
        subject=found.update_id,
    )
    return detail(changed, in_force)


async def delete_update(ctx: HandlerContext, command: u.DeleteUpdate) -> u.Deleted:
    """Delete a third-party update and the content only it used."""
    found = await _third_party(ctx, command.update, "deleted")
    await store.content.lock_update(ctx.conn, found.update_id)
    freed = await store.packages.delete_update(ctx.conn, found.update_id)
    await ctx.outbox.add(
        c.UPDATE_DELETED, c.UpdateDeleted(update_id=found.update_id), subject=found.update_id
    )
    ctx.on_commit(partial(remove_unnamed, ctx.settings, [f.sha256 for f in freed]))
    return u.Deleted(update_id=found.update_id, freed_bytes=sum(f.size for f in freed))


async def remove_unnamed(settings: Settings, sha256s: list[str], pool: Pool) -> list[str]:
    """After the deletion committed: remove each file no row names any more. Each is checked
    again under its lock, since an upload of the same bytes may have named it meanwhile (a
    crash here leaves orphans, which the sweeper removes). Returns the sha256s removed."""
    content_store = store.content.for_settings(settings)
    removed: list[str] = []
    async with pool.acquire() as conn:
        for sha256 in sha256s:
            async with conn.transaction():
                await store.content.lock(conn, [sha256])
                if not await store.content.is_named(conn, sha256):
                    await asyncio.to_thread(content_store.delete, sha256)
                    removed.append(sha256)
    return removed
