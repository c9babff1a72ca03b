"""approval's handler table: every message the service reacts to.

Catalog events keep the read copy of updates (approval never asks the catalog); the
handlers of commands live in groups.py, approvals.py and rules.py.
"""

from __future__ import annotations

from pathlib import Path

from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts.scheduler import COMPUTER_REGISTERED
from libs.contracts.system import PING
from libs.service import Answer, HandlerContext, On, ServiceDefinition
from libs.service.system import answer_ping
from services.approval import approvals, groups, rules, store


class NotYetKnown(Exception):
    """An event about an update whose publication has not arrived yet; retried later."""


async def learn_published(ctx: HandlerContext, event: c.UpdatePublished) -> None:
    """Keep the update; if it is new, every matching rule approves it at once."""
    await store.lock(ctx.conn)
    if await store.learn_update(ctx.conn, event.update) == "new":
        update = await store.update_by_id(ctx.conn, event.update.update_id)
        if update is not None:
            await rules.apply_rules_to_new(ctx, update)


async def learn_revised(ctx: HandlerContext, event: c.UpdateRevised) -> None:
    """A new revision replaces what is known (approvals stay with the update)."""
    await store.lock(ctx.conn)
    await store.learn_update(ctx.conn, event.update)


async def learn_superseded(ctx: HandlerContext, event: c.UpdateSuperseded) -> None:
    if not await store.mark_superseded(ctx.conn, event.update_id, event.superseded_by):
        raise NotYetKnown(f"update {event.update_id} superseded before it was published here")


async def learn_expired(ctx: HandlerContext, event: c.UpdateExpired) -> None:
    """Expired updates cannot be approved any more; existing approvals stay visible."""
    if not await store.mark_expired(ctx.conn, event.update_id, event.expired_at):
        raise NotYetKnown(f"update {event.update_id} expired before it was published here")


async def learn_deleted(ctx: HandlerContext, event: c.UpdateDeleted) -> None:
    """A deleted third-party update loses its approvals; each removal is published."""
    await store.lock(ctx.conn)
    update = await store.update_by_id(ctx.conn, event.update_id)
    if update is None:
        return
    await store.drop_explicit(ctx.conn, update.update_id)
    await approvals.recompute(ctx, await store.groups(ctx.conn), update, "update.deleted")
    await store.forget_update(ctx.conn, update.update_id)


SERVICE = ServiceDefinition(
    name="approval",
    migrations=Path(__file__).parent / "migrations",
    events=(
        On(COMPUTER_REGISTERED, queue="computers", handle=groups.learn_computer),
        On(c.UPDATE_PUBLISHED, queue="updates", handle=learn_published),
        On(c.UPDATE_REVISED, queue="updates", handle=learn_revised),
        On(c.UPDATE_SUPERSEDED, queue="updates", handle=learn_superseded),
        On(c.UPDATE_EXPIRED, queue="updates", handle=learn_expired),
        On(c.UPDATE_DELETED, queue="updates", handle=learn_deleted),
    ),
    commands=(
        Answer(PING["approval"], answer_ping),
        Answer(a.CREATE_GROUP, groups.create_group),
        Answer(a.RENAME_GROUP, groups.rename_group),
        Answer(a.MOVE_GROUP, groups.move_group),
        Answer(a.DELETE_GROUP, groups.delete_group),
        Answer(a.LIST_GROUPS, groups.list_groups),
        Answer(a.CHANGE_MEMBERSHIP, groups.change_membership),
        Answer(a.APPROVE, approvals.approve),
        Answer(a.DECLINE, approvals.decline),
        Answer(a.LIST_UPDATES, approvals.list_updates),
        Answer(a.GROUP_APPROVALS, approvals.group_approvals),
        Answer(a.COMPUTER_APPROVALS, approvals.computer_approvals),
        Answer(a.CREATE_RULE, rules.create_rule),
        Answer(a.EDIT_RULE, rules.edit_rule),
        Answer(a.DELETE_RULE, rules.delete_rule),
        Answer(a.RUN_RULE, rules.run_rule),
        Answer(a.LIST_RULES, rules.list_rules),
    ),
)
