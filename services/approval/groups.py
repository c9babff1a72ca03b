"""Computer groups and membership: the tree under All computers."""

from __future__ import annotations

import uuid

from libs.contracts import approval as a
from libs.contracts.scheduler import ComputerRegistered
from libs.service import Conflict, HandlerContext, InvalidInput, NotFound
from services.approval import store
from services.approval.approvals import find_group, recompute_all
from services.approval.domain.tree import TreeError


async def learn_computer(ctx: HandlerContext, event: ComputerRegistered) -> None:
    """A newly registered computer joins All computers."""
    if await store.add_computer(ctx.conn, event):
        await ctx.outbox.add(
            a.MEMBERSHIP_CHANGED,
            a.MembershipChanged(computer_id=event.computer_id, group_ids=[a.ROOT_GROUP_ID]),
            subject=event.computer_id,
        )


async def _check_name(ctx: HandlerContext, name: str, but: str | None = None) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("name: a group name cannot be blank", field="name")
    if await store.name_taken(ctx.conn, name, but):
        raise Conflict(
            f"name: a group named {name!r} already exists (names are unique, any case)",
            field="name",
        )
    return name


async def create_group(ctx: HandlerContext, command: a.CreateGroup) -> a.Group:
    """A new empty group; it inherits its parent's approvals at once."""
    await store.lock(ctx.conn)
    parent = await find_group(ctx, command.parent, "parent")
    name = await _check_name(ctx, command.name)
    group_id = str(uuid.uuid4())
    await store.create_group(ctx.conn, group_id, name, parent)
    groups = await store.groups(ctx.conn)
    await ctx.outbox.add(
        a.GROUP_CREATED, a.GroupChanged(group=groups.group(group_id)), subject=group_id
    )
    await recompute_all(ctx, groups, "group.created", only=[group_id])
    return groups.group(group_id)


async def rename_group(ctx: HandlerContext, command: a.RenameGroup) -> a.Group:
    await store.lock(ctx.conn)
    group_id = await find_group(ctx, command.group, "group")
    if group_id == a.ROOT_GROUP_ID:
        raise Conflict("group: All computers cannot be renamed", field="group")
    name = await _check_name(ctx, command.name, but=group_id)
    await store.rename_group(ctx.conn, group_id, name)
    group = (await store.groups(ctx.conn)).group(group_id)
    await ctx.outbox.add(a.GROUP_RENAMED, a.GroupChanged(group=group), subject=group_id)
    return group


async def move_group(ctx: HandlerContext, command: a.MoveGroup) -> a.Group:
    """Move a subtree; its inherited approvals follow the new parent."""
    await store.lock(ctx.conn)
    group_id = await find_group(ctx, command.group, "group")
    parent = await find_group(ctx, command.parent, "parent")
    before = await store.groups(ctx.conn)
    try:
        before.tree.check_move(group_id, parent)
    except TreeError as error:
        raise Conflict(f"parent: {error}", field="parent") from None
    await store.move_group(ctx.conn, group_id, parent)
    groups = await store.groups(ctx.conn)
    group = groups.group(group_id)
    await ctx.outbox.add(a.GROUP_MOVED, a.GroupChanged(group=group), subject=group_id)
    await recompute_all(ctx, groups, "group.moved", only=list(groups.tree.walk(group_id)))
    return group


async def delete_group(ctx: HandlerContext, command: a.DeleteGroup) -> a.GroupDeleted:
    """Delete an empty group. Refused while it has child groups or computers, or a rule
    targets it: the operator moves or removes them first, so nothing changes silently."""
    await store.lock(ctx.conn)
    group_id = await find_group(ctx, command.group, "group")
    if group_id == a.ROOT_GROUP_ID:
        raise Conflict("group: All computers cannot be deleted", field="group")
    groups = await store.groups(ctx.conn)
    children = groups.tree.children[group_id]
    if children:
        names = ", ".join(groups.names[c] for c in children)
        raise Conflict(
            f"group: {groups.names[group_id]!r} has child groups ({names}); move or delete them "
            "first",
            field="group",
        )
    members = await store.member_count(ctx.conn, group_id)
    if members:
        raise Conflict(
            f"group: {groups.names[group_id]!r} still has {members} computer(s); remove them first",
            field="group",
        )
    rules = await store.rules_targeting(ctx.conn, group_id)
    if rules:
        raise Conflict(
            f"group: auto-approval rules target {groups.names[group_id]!r} ({', '.join(rules)}); "
            "edit them first",
            field="group",
        )
    await store.delete_group(ctx.conn, group_id)
    deleted = a.GroupDeleted(group_id=group_id, name=groups.names[group_id])
    await ctx.outbox.add(a.GROUP_DELETED, deleted, subject=group_id)
    return deleted


async def list_groups(ctx: HandlerContext, _: a.ListGroups) -> a.GroupList:
    """The whole tree, parents before children, with direct counts."""
    groups = await store.groups(ctx.conn)
    counts = await store.group_counts(ctx.conn)
    views = []
    for group_id in groups.tree.walk():
        computers, children = counts[group_id]
        views.append(
            a.GroupView(
                **groups.group(group_id).model_dump(), computers=computers, children=children
            )
        )
    return a.GroupList(groups=views)


async def change_membership(ctx: HandlerContext, command: a.ChangeMembership) -> a.MembershipResult:
    """Add computers to a group or remove them; each changed computer gets one event."""
    await store.lock(ctx.conn)
    group_id = await find_group(ctx, command.group, "group")
    if group_id == a.ROOT_GROUP_ID:
        raise InvalidInput(
            "group: every computer is always in All computers; choose another group",
            field="group",
        )
    wanted = list(dict.fromkeys(command.computers))
    unknown = sorted(set(wanted) - await store.known_computers(ctx.conn, wanted))
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise NotFound(
            f"computers: {len(unknown)} are not managed computers ({shown}); a computer is "
            "known once its agent has checked in",
            field="computers",
        )
    changed = await store.change_membership(ctx.conn, wanted, group_id, member=command.member)
    member_of = await store.computer_groups(ctx.conn, changed)
    await ctx.outbox.add_many(
        a.MEMBERSHIP_CHANGED,
        [(a.MembershipChanged(computer_id=c, group_ids=member_of[c]), c) for c in changed],
    )
    return a.MembershipResult(changed=len(changed))
