"""Which products and classifications computers are offered: reading and changing it."""

from __future__ import annotations

from libs.contracts import catalog as c
from libs.service import HandlerContext
from services.catalog import store
from services.catalog.domain.offers import offer_changes
from services.catalog.domain.settings import changed_settings, settings_view


async def _view(ctx: HandlerContext) -> c.SettingsView:
    current = await store.settings.load(ctx.conn)
    return settings_view(current.settings, await store.updates.known_families(ctx.conn))


async def get_settings(ctx: HandlerContext, _: c.GetSettings) -> c.SettingsView:
    """Offered products and classifications, and what may be chosen."""
    return await _view(ctx)


async def change_settings(ctx: HandlerContext, command: c.ChangeSettings) -> c.SettingsView:
    """Replace offered products/classifications; publishes the change if there is one, and
    offers or withdraws every update whose offered state it changes.

    Under the catalog lock, like imports: an update published meanwhile is decided under
    either the old or the new settings, never missed by both.
    """
    await store.updates.lock_catalog(ctx.conn)
    view = await _view(ctx)
    wanted = changed_settings(view, command)
    if wanted != view.settings:
        in_force = await store.settings.save(ctx.conn, wanted, ctx.now)
        await ctx.outbox.add(c.SETTINGS_CHANGED, c.SettingsChanged(settings=wanted))
        changed = offer_changes(await store.updates.offer_facts(ctx.conn), view.settings, in_force)
        await ctx.outbox.add_many(
            c.UPDATE_OFFERED, [(e, e.update_id) for e in changed if e.offered]
        )
        await ctx.outbox.add_many(
            c.UPDATE_WITHDRAWN, [(e, e.update_id) for e in changed if not e.offered]
        )
    return await _view(ctx)
