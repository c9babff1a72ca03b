"""The read copy of approval's group tree and membership that scheduler and reporting mount.

One definition of its tables (groups_sql/), of the events that keep it and of the
statements on it. A service mounts it with `group_copy(queue=..., ...)` in its handler
table and says, through hooks, what else a change means to it (the scheduler re-plans).
All computers is implicit: every computer is in it, so it has no membership rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from libs.contracts import approval as a
from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection
from libs.domain.references import as_id
from libs.service.handlers import HandlerContext, On, ReadCopy

MIGRATIONS = Path(__file__).parent / "groups_sql"

Hook = Callable[[HandlerContext, str], Awaitable[None]]
"""Called in the handler's transaction with the group id (or computer id, for membership)."""


async def _nothing(ctx: HandlerContext, key: str) -> None:
    """The default hook: the copy alone is enough."""


def group_copy(
    *,
    queue: str,
    moved: Hook = _nothing,
    deleted: Hook = _nothing,
    membership_changed: Hook = _nothing,
) -> ReadCopy:
    """The group read copy on the mounting service's `queue`, with its hooks.

    `deleted` runs before the group's row goes, so a hook can clear what refers to it.
    """

    async def learn_group(ctx: HandlerContext, event: a.GroupChanged) -> None:
        """Created, renamed or moved: the group as it is now."""
        group = event.group
        await put_group(ctx.conn, group.group_id, group.name, group.parent_id)
        if ctx.envelope.type == a.GROUP_MOVED.type:
            await moved(ctx, group.group_id)

    async def forget_group(ctx: HandlerContext, event: a.GroupDeleted) -> None:
        await deleted(ctx, event.group_id)
        await delete_group(ctx.conn, event.group_id)

    async def learn_membership(ctx: HandlerContext, event: a.MembershipChanged) -> None:
        await set_memberships(ctx.conn, event.computer_id, event.group_ids)
        await membership_changed(ctx, event.computer_id)

    return ReadCopy(
        name="group_copy",
        migrations=MIGRATIONS,
        routes=(
            On(a.GROUP_CREATED, queue=queue, handle=learn_group),
            On(a.GROUP_RENAMED, queue=queue, handle=learn_group),
            On(a.GROUP_MOVED, queue=queue, handle=learn_group),
            On(a.GROUP_DELETED, queue=queue, handle=forget_group),
            On(a.MEMBERSHIP_CHANGED, queue=queue, handle=learn_membership),
        ),
    )


async def put_group(conn: Connection, group_id: str, name: str, parent_id: str | None) -> None:
    """Created, renamed or moved: the group as it is now."""
    await conn.execute(
        "INSERT INTO groups (group_id, name, parent_id) VALUES ($1, $2, $3)"
        " ON CONFLICT (group_id) DO UPDATE SET name = EXCLUDED.name,"
        " parent_id = EXCLUDED.parent_id",
        uuid.UUID(group_id),
        name,
        None if parent_id is None else uuid.UUID(parent_id),
    )


async def delete_group(conn: Connection, group_id: str) -> None:
    await conn.execute("DELETE FROM groups WHERE group_id = $1", uuid.UUID(group_id))


async def set_memberships(conn: Connection, computer_id: str, group_ids: Sequence[str]) -> None:
    """Replace a computer's groups with those of the event (which lists all of them)."""
    await conn.execute("DELETE FROM memberships WHERE computer_id = $1", computer_id)
    await conn.execute(
        "INSERT INTO memberships (computer_id, group_id) SELECT $1, unnest($2::uuid[])",
        computer_id,
        [g for g in group_ids if g != ROOT_GROUP_ID],
    )


async def find_group(conn: Connection, reference: str) -> tuple[str, str] | None:
    """(id, name) of a group given by id or name (case-insensitive)."""
    group_id = as_id(reference)
    row = await conn.fetchrow(
        "SELECT group_id::text, name FROM groups WHERE group_id = $1::uuid"
        " OR lower(name) = lower($2) ORDER BY group_id = $1::uuid DESC LIMIT 1",
        group_id,
        reference,
    )
    return None if row is None else (row["group_id"], row["name"])
