"""The read copies of computers, updates and approvals, and what their changes mean to the
reports (a decline deletes an update's report data: docs/product.md sections 5 and 6)."""

from __future__ import annotations

from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts.scheduler import ComputerPolicyChanged, ComputerRegistered
from libs.service import HandlerContext
from services.reporting import store


async def learn_computer(ctx: HandlerContext, event: ComputerRegistered) -> None:
    await store.computers.put(ctx.conn, event)


async def learn_policy(ctx: HandlerContext, event: ComputerPolicyChanged) -> None:
    """The fleet list shows the newest policy in force the scheduler announced."""
    await store.computers.set_policy(ctx.conn, event)


async def learn_update(ctx: HandlerContext, event: c.UpdatePublished | c.UpdateRevised) -> None:
    await store.updates.put(ctx.conn, event.update)


async def learn_offer(ctx: HandlerContext, event: c.UpdateOfferChanged) -> None:
    """Offered again or withdrawn by the catalog settings: only offered updates are "new"."""
    await store.updates.learn_offer(ctx.conn, event)


async def learn_superseded(ctx: HandlerContext, event: c.UpdateSuperseded) -> None:
    """Superseded updates are still counted; the flag lets views filter them."""
    await store.updates.mark_superseded(ctx.conn, event.update_id)


async def forget_update(ctx: HandlerContext, event: c.UpdateDeleted) -> None:
    # The update row first: it waits for ingest batches holding it (see store.updates.known).
    await store.updates.delete(ctx.conn, event.update_id)
    await delete_reports(ctx, event.update_id)
    await store.approvals.delete_update(ctx.conn, event.update_id)


async def learn_approval(ctx: HandlerContext, event: a.ApprovalChanged) -> None:
    """One group's approval of an update, as versions before
    `approval.update-approval.changed.v1` sent it (only those still queued arrive here)."""
    await learn_approvals(ctx, a.UpdateApprovalChanged.of_group(event))


async def learn_approvals(ctx: HandlerContext, event: a.UpdateApprovalChanged) -> None:
    """One update's approval changed on a list of groups (one statement for all of them)."""
    effective = event.effective
    action = None if effective is None else effective.action
    await store.approvals.save_many(
        ctx.conn,
        event.group_ids,
        event.update_id,
        action,
        None if effective is None else effective.deadline.at,
    )
    await store.aggregates.mark_changed(ctx.conn, event.update_id)
    if action is not None:
        await store.updates.set_declined(ctx.conn, event.update_id, None)  # approved again


async def learn_declined(ctx: HandlerContext, event: a.UpdateDeclined) -> None:
    """Declining an update deletes its report data."""
    # Declined first: that row lock waits for ingest batches reading the update, so none
    # writes states after the deletion below (see store.updates.known).
    await store.updates.set_declined(ctx.conn, event.update_id, event.declined_at)
    await delete_reports(ctx, event.update_id)


async def forget_group(ctx: HandlerContext, group_id: str) -> None:
    """The group read copy's `deleted` hook: the group's approvals go with it."""
    await store.approvals.delete_group(ctx.conn, group_id)


async def delete_reports(ctx: HandlerContext, update_id: str) -> None:
    """Every report of an update goes, and its counts are to be published again."""
    moves = await store.states.delete_update(ctx.conn, update_id)
    await store.computers.move_counters(ctx.conn, moves)
    await store.aggregates.delete_update(ctx.conn, update_id)
    await store.aggregates.mark_changed(ctx.conn, update_id)
