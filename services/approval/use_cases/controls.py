"""Pause, resume and roll back an update's approval (rules: domain/pauses.py): the change
written, the effective approvals recomputed (their events carry the pause to the read
copies), and one `approval.update.paused|resumed|rolled-back.v1` saying who and why."""

from __future__ import annotations

from libs.contracts import approval as a
from libs.contracts.spec import EventSpec
from libs.service import HandlerContext
from services.approval import store
from services.approval.domain import deadlines
from services.approval.domain.approvals import ExplicitApproval
from services.approval.domain.groups import Groups
from services.approval.domain.pauses import (
    check_installs_there,
    said,
    to_resume,
    to_roll_back,
)
from services.approval.domain.tree import Explicit, Paused
from services.approval.domain.updates import Update
from services.approval.use_cases.approvals import recompute
from services.approval.use_cases.lookups import find_group, find_update

_EVENTS: dict[a.ControlVerb, EventSpec[a.UpdateControlled]] = {
    "paused": a.UPDATE_PAUSED,
    "resumed": a.UPDATE_RESUMED,
    "rolled_back": a.UPDATE_ROLLED_BACK,
}


async def _target(
    ctx: HandlerContext, command: a.PauseUpdate | a.ResumeUpdate | a.RollbackUpdate
) -> tuple[Update, str | None, Groups]:
    """Under the writers' lock: the update, the group (None: fleet-wide) and the tree."""
    await store.writers.lock(ctx.conn)
    update = await find_update(ctx, command.update, "update")
    group = None if command.group is None else await find_group(ctx, command.group, "group")
    return update, group, await store.groups.load(ctx.conn)


def _reply(  # noqa: PLR0917 - one reply's fields
    update: Update,
    groups: Groups,
    verb: a.ControlVerb,
    group: str | None,
    command: a.PauseUpdate | a.ResumeUpdate | a.RollbackUpdate,
    ctx: HandlerContext,
    *,
    effective_changed: int = 0,
    note: str | None = None,
    rolled_back: list[str] | None = None,
) -> a.UpdateControlled:
    return a.UpdateControlled(
        update_id=update.update_id,
        kb=update.kb,
        title=update.title,
        verb=verb,
        group_id=group,
        group_name=None if group is None else groups.names[group],
        by=command.requested_by,
        reason=command.reason,
        at=ctx.now,
        changed=note is None,
        effective_changed=effective_changed,
        groups=[groups.names[g] for g in rolled_back or []],
        note=note,
    )


async def _published(ctx: HandlerContext, reply: a.UpdateControlled) -> a.UpdateControlled:
    await ctx.outbox.add(_EVENTS[reply.verb], reply, subject=reply.update_id)
    return reply


async def pause(ctx: HandlerContext, command: a.PauseUpdate) -> a.UpdateControlled:
    """Hold the update's installs fleet-wide or in a group (and what inherits from it)."""
    update, group, groups = await _target(ctx, command)
    pauses = await store.pauses.of_update(ctx.conn, update.update_id)
    existing = pauses.get(group)
    if existing is not None:
        return _reply(
            update, groups, "paused", group, command, ctx, note=said(existing, groups.names)
        )
    if group is not None:
        check_installs_there(
            (await store.approvals.effective_for(ctx.conn, update.update_id)).get(group),
            group,
            update=command.update,
            names=groups.names,
            nothing="nothing to pause there (pause it fleet-wide to hold approvals yet to come)",
        )
    await store.pauses.put(
        ctx.conn, update.update_id, Paused(command.requested_by, command.reason, ctx.now, group)
    )
    changed = await recompute(ctx, groups, update, "pause")
    reply = _reply(update, groups, "paused", group, command, ctx, effective_changed=changed)
    return await _published(ctx, reply)


async def resume(ctx: HandlerContext, command: a.ResumeUpdate) -> a.UpdateControlled:
    """Lift the update's pauses: every one (fleet-wide), or the one set on the group."""
    update, group, groups = await _target(ctx, command)
    pauses = await store.pauses.of_update(ctx.conn, update.update_id)
    held = None
    if group is not None:
        held = (await store.approvals.effective_for(ctx.conn, update.update_id)).get(group)
    lifted = to_resume(pauses, group, held, names=groups.names)
    if not lifted:
        scope = "anywhere" if group is None else f"on group {groups.names[group]!r}"
        return _reply(update, groups, "resumed", group, command, ctx, note=f"not paused {scope}")
    await store.pauses.drop(ctx.conn, update.update_id, lifted)
    changed = await recompute(ctx, groups, update, "resume")
    reply = _reply(update, groups, "resumed", group, command, ctx, effective_changed=changed)
    return await _published(ctx, reply)


async def rollback(ctx: HandlerContext, command: a.RollbackUpdate) -> a.UpdateControlled:
    """Turn the update's install approvals into uninstall (fleet-wide, or in the group)."""
    update, group, groups = await _target(ctx, command)
    explicit = await store.approvals.explicit_for(ctx.conn, update.update_id)
    held = await store.approvals.effective_for(ctx.conn, update.update_id)
    targets = to_roll_back(
        groups.tree, explicit, held, group, update=command.update, names=groups.names
    )
    value = Explicit(
        "uninstall",
        deadlines.resolve(command.deadline.kind, command.deadline.at, ctx.now),
        ctx.now,
        f"rollback:{command.requested_by}",
    )
    await store.approvals.put_explicit(
        ctx.conn, [ExplicitApproval(update.update_id, g, value) for g in targets]
    )
    changed = await recompute(ctx, groups, update, "rollback")
    reply = _reply(
        update,
        groups,
        "rolled_back",
        group,
        command,
        ctx,
        effective_changed=changed,
        rolled_back=targets,
    )
    return await _published(ctx, reply)
