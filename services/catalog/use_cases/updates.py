"""Looking updates up, and expiring one."""

from __future__ import annotations

from libs.contracts import catalog as c
from libs.service import HandlerContext, NotFound
from services.catalog import store
from services.catalog.domain.updates import StoredUpdate, detail, snapshot, update_reference


async def find(ctx: HandlerContext, reference: str) -> StoredUpdate:
    """The update an operator names by update id or KB number."""
    ref = update_reference(reference)
    found = await store.updates.update(ctx.conn, update_id=ref.update_id, kb=ref.kb)
    if found is None:
        raise NotFound(f"update {reference!r} is not in the catalog", field="update")
    return found


async def get_update(ctx: HandlerContext, query: c.GetUpdate) -> c.UpdateDetail:
    """One update, with what it supersedes and what supersedes it."""
    found = await find(ctx, query.update)
    return detail(found, await store.settings.load(ctx.conn))


async def list_updates(ctx: HandlerContext, query: c.ListUpdates) -> c.UpdateList:
    """Updates matching the filters, newest first, each offered or not under the settings."""
    in_force = await store.settings.load(ctx.conn)
    found, total = await store.updates.list_updates(ctx.conn, query)
    return c.UpdateList(updates=[snapshot(u, in_force) for u in found], total=total)


async def expire_update(ctx: HandlerContext, command: c.ExpireUpdate) -> c.UpdateDetail:
    """Expire an update (once); approval learns it from the event."""
    await store.updates.lock_catalog(ctx.conn)
    found = await find(ctx, command.update)
    if await store.updates.expire(ctx.conn, found.update_id, ctx.now, command.reason):
        await ctx.outbox.add(
            c.UPDATE_EXPIRED,
            c.UpdateExpired(
                update_id=found.update_id, kb=found.kb, expired_at=ctx.now, reason=command.reason
            ),
            subject=found.update_id,
        )
    return detail(await find(ctx, found.update_id), await store.settings.load(ctx.conn))
