"""Read copies of approval's effective approvals and the catalog's update facts, and the hooks
of the shared group read copy: each change marks the plans it may move."""

from __future__ import annotations

from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.domain.resolution import Deadline
from libs.service import HandlerContext
from services.scheduler import store


async def learn_approval(ctx: HandlerContext, event: a.ApprovalChanged) -> None:
    """One group's approval of an update, as versions before
    `approval.update-approval.changed.v1` sent it (only those still queued arrive here)."""
    await learn_approvals(ctx, a.UpdateApprovalChanged.of_group(event))


async def learn_approvals(ctx: HandlerContext, event: a.UpdateApprovalChanged) -> None:
    """One update's approval changed on a list of groups: the copy in one statement, and
    the computers of those groups to re-plan as ranges (not a mark per computer)."""
    effective = event.effective
    if effective is None:
        await store.approvals.delete_many(ctx.conn, event.group_ids, event.update_id)
    else:
        deadline = Deadline(effective.deadline.kind, effective.deadline.at)
        await store.approvals.put_many(
            ctx.conn, event.group_ids, event.update_id, effective.action, deadline, effective.paused
        )
    await store.plans.mark_groups_dirty(ctx.conn, event.group_ids, ctx.now)


async def replan_all(ctx: HandlerContext, group_id: str) -> None:  # noqa: ARG001 - a hook
    """A group moved or went: the nearest-group policy rule may pick differently anywhere."""
    await store.plans.mark_all_dirty(ctx.conn, ctx.now)


async def forget_group(ctx: HandlerContext, group_id: str) -> None:
    """A group went: its approvals and its policy assignment go with it."""
    await store.approvals.forget_group(ctx.conn, group_id)
    await store.policies.unassign(ctx.conn, group_id)
    await replan_all(ctx, group_id)


async def replan_computer(ctx: HandlerContext, computer_id: str) -> None:
    await store.plans.mark_dirty(ctx.conn, [computer_id], ctx.now)


async def _mark_update_dirty(ctx: HandlerContext, update_id: str) -> None:
    """An update's facts changed: computers of the groups it is approved for."""
    groups = await store.approvals.groups_approving(ctx.conn, update_id)
    if groups:
        await store.plans.mark_groups_dirty(ctx.conn, groups, ctx.now)


async def learn_update(ctx: HandlerContext, event: c.UpdatePublished | c.UpdateRevised) -> None:
    if await store.updates.put(ctx.conn, event.update):
        await _mark_update_dirty(ctx, event.update.update_id)


async def learn_offer(ctx: HandlerContext, event: c.UpdateOfferChanged) -> None:
    """Offered again or withdrawn by the catalog settings: its computers are planned anew
    (an update not offered is never planned; its approvals are kept for when it returns)."""
    if await store.updates.set_offered(ctx.conn, event):
        await _mark_update_dirty(ctx, event.update_id)


async def forget_update(ctx: HandlerContext, event: c.UpdateDeleted) -> None:
    await _mark_update_dirty(ctx, event.update_id)
    await store.approvals.forget_update(ctx.conn, event.update_id)
    await store.progress.forget_update(ctx.conn, event.update_id)
    await store.updates.delete(ctx.conn, event.update_id)
