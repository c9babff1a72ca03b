"""The read copy of catalog updates: learnt from catalog events, never asked for."""

from __future__ import annotations

from libs.contracts import catalog as c
from libs.service import HandlerContext
from services.approval import store
from services.approval.domain.updates import offer_in, offer_told
from services.approval.use_cases.approvals import recompute
from services.approval.use_cases.rules import apply_rules_to_new


class NotYetKnown(Exception):
    """An event about an update whose publication has not arrived yet; retried later."""


async def learn_published(ctx: HandlerContext, event: c.UpdatePublished) -> None:
    """Keep the update; if it is new, every matching rule approves it at once (rules skip
    it when the catalog settings do not offer it)."""
    await store.writers.lock(ctx.conn)
    learnt = await store.updates.learn(ctx.conn, event.update)
    await store.updates.learn_offer(ctx.conn, offer_in(event.update))
    if learnt == "new":
        update = await store.updates.by_id(ctx.conn, event.update.update_id)
        if update is not None:
            await apply_rules_to_new(ctx, update)


async def learn_revised(ctx: HandlerContext, event: c.UpdateRevised) -> None:
    """A new revision replaces what is known (approvals stay with the update)."""
    await store.writers.lock(ctx.conn)
    await store.updates.learn(ctx.conn, event.update)
    await store.updates.learn_offer(ctx.conn, offer_in(event.update))


async def learn_offer(ctx: HandlerContext, event: c.UpdateOfferChanged) -> None:
    """The catalog settings now offer the update, or withdraw it (docs/product.md section 2).

    Withdrawing keeps its approvals (the scheduler stops planning it); offering it again
    does not run the rules on it: a rule approves updates as they are published, or when the
    operator runs it.
    """
    await store.writers.lock(ctx.conn)
    if await store.updates.learn_offer(ctx.conn, offer_told(event)) is None:
        raise NotYetKnown(
            f"update {event.update_id} {'offered' if event.offered else 'withdrawn'} before "
            "it was published here"
        )


async def learn_superseded(ctx: HandlerContext, event: c.UpdateSuperseded) -> None:
    if not await store.updates.mark_superseded(ctx.conn, event.update_id, event.superseded_by):
        raise NotYetKnown(f"update {event.update_id} superseded before it was published here")


async def learn_expired(ctx: HandlerContext, event: c.UpdateExpired) -> None:
    """Expired updates cannot be approved any more; existing approvals stay visible."""
    if not await store.updates.mark_expired(ctx.conn, event.update_id, event.expired_at):
        raise NotYetKnown(f"update {event.update_id} expired before it was published here")


async def learn_deleted(ctx: HandlerContext, event: c.UpdateDeleted) -> None:
    """A deleted third-party update loses its approvals; each removal is published."""
    await store.writers.lock(ctx.conn)
    update = await store.updates.by_id(ctx.conn, event.update_id)
    if update is None:
        return
    await store.approvals.drop_explicit(ctx.conn, [update.update_id])
    await recompute(ctx, await store.groups.load(ctx.conn), update, "update.deleted")
    await store.updates.forget(ctx.conn, update.update_id)
