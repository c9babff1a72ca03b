"""Computer groups and membership: the tree under All computers."""

from __future__ import annotations

import uuid

from libs.contracts import approval as a
from libs.contracts.scheduler import ComputerRegistered
from libs.service import Conflict, HandlerContext
from services.approval import store
from services.approval.domain.groups import (
    check_deletable,
    check_known_computers,
    check_member_group,
    check_renamable,
    clean_name,
    views,
)
from services.approval.domain.tree import TreeError
from services.approval.store import rollouts as rollout_rows
from services.approval.use_cases.approvals import recompute_all
from services.approval.use_cases.lookups import find_group


async def learn_computer(ctx: HandlerContext, event: ComputerRegistered) -> None:
    """A newly registered computer joins All computers."""
    if await store.computers.add(ctx.conn, event):
        await ctx.outbox.add(
            a.MEMBERSHIP_CHANGED,
            a.MembershipChanged(computer_id=event.computer_id, group_ids=[a.ROOT_GROUP_ID]),
            subject=event.computer_id,
        )


async def _check_name(ctx: HandlerContext, name: str, but: str | None = None) -> str:
    name = clean_name(name)
    if await store.groups.name_taken(ctx.conn, name, but):
        raise Conflict(
            f"name: a group named {name!r} already exists (names are unique, any case)",
            field="name",
        )
    return name


async def create_group(ctx: HandlerContext, command: a.CreateGroup) -> a.Group:
    """A new empty group; it inherits its parent's approvals at once."""
    await store.writers.lock(ctx.conn)
    parent = await find_group(ctx, command.parent, "parent")
    name = await _check_name(ctx, command.name)
    group_id = str(uuid.uuid4())
    await store.groups.create(ctx.conn, group_id, name, parent)
    groups = await store.groups.load(ctx.conn)
    await ctx.outbox.add(
        a.GROUP_CREATED, a.GroupChanged(group=groups.group(group_id)), subject=group_id
    )
    await recompute_all(ctx, groups, "group.created", only=[group_id])
    return groups.group(group_id)


async def rename_group(ctx: HandlerContext, command: a.RenameGroup) -> a.Group:
    await store.writers.lock(ctx.conn)
    group_id = await find_group(ctx, command.group, "group")
    check_renamable(group_id)
    name = await _check_name(ctx, command.name, but=group_id)
    await store.groups.rename(ctx.conn, group_id, name)
    group = (await store.groups.load(ctx.conn)).group(group_id)
    await ctx.outbox.add(a.GROUP_RENAMED, a.GroupChanged(group=group), subject=group_id)
    return group


async def move_group(ctx: HandlerContext, command: a.MoveGroup) -> a.Group:
    """Move a subtree; its inherited approvals follow the new parent."""
    await store.writers.lock(ctx.conn)
    group_id = await find_group(ctx, command.group, "group")
    parent = await find_group(ctx, command.parent, "parent")
    before = await store.groups.load(ctx.conn)
    try:
        before.tree.check_move(group_id, parent)
    except TreeError as error:
        raise Conflict(f"parent: {error}", field="parent") from None
    await store.groups.move(ctx.conn, group_id, parent)
    groups = await store.groups.load(ctx.conn)
    group = groups.group(group_id)
    await ctx.outbox.add(a.GROUP_MOVED, a.GroupChanged(group=group), subject=group_id)
    await recompute_all(ctx, groups, "group.moved", only=list(groups.tree.walk(group_id)))
    return group


async def delete_group(ctx: HandlerContext, command: a.DeleteGroup) -> a.GroupDeleted:
    """Delete an empty group (domain.groups.check_deletable says what empty means)."""
    await store.writers.lock(ctx.conn)
    group_id = await find_group(ctx, command.group, "group")
    groups = await store.groups.load(ctx.conn)
    check_deletable(
        groups,
        group_id,
        members=await store.computers.count_in_group(ctx.conn, group_id),
        rules=await store.rules.targeting(ctx.conn, group_id),
    )
    rollouts = await rollout_rows.with_ring(ctx.conn, group_id)
    if rollouts:
        raise Conflict(
            f"group: {groups.names[group_id]!r} is a ring of rollouts still running or held "
            f"({', '.join(rollouts)}); cancel them or let them complete first",
            field="group",
        )
    await store.groups.delete(ctx.conn, group_id)
    deleted = a.GroupDeleted(group_id=group_id, name=groups.names[group_id])
    await ctx.outbox.add(a.GROUP_DELETED, deleted, subject=group_id)
    return deleted


async def list_groups(ctx: HandlerContext, _: a.ListGroups) -> a.GroupList:
    """The whole tree, parents before children, with direct counts."""
    groups = await store.groups.load(ctx.conn)
    return a.GroupList(groups=views(groups, await store.groups.counts(ctx.conn)))


async def change_membership(ctx: HandlerContext, command: a.ChangeMembership) -> a.MembershipResult:
    """Add computers to a group or remove them; each changed computer gets one event."""
    await store.writers.lock(ctx.conn)
    group_id = await find_group(ctx, command.group, "group")
    check_member_group(group_id)
    wanted = list(dict.fromkeys(command.computers))
    check_known_computers(wanted, await store.computers.known(ctx.conn, wanted))
    changed = await store.computers.change_membership(
        ctx.conn, wanted, group_id, member=command.member
    )
    member_of = await store.computers.groups_of(ctx.conn, changed)
    await ctx.outbox.add_many(
        a.MEMBERSHIP_CHANGED,
        [(a.MembershipChanged(computer_id=c, group_ids=member_of[c]), c) for c in changed],
    )
    return a.MembershipResult(changed=len(changed))
