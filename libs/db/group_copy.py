"""A service's read copy of the group tree and membership, learnt from approval's events.

Scheduler and reporting each keep one in their own schema (tables `groups` and
`memberships`, created by their migrations); these are the statements both use on them.
All computers is implicit: every computer is in it, so it has no membership rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection


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
    try:
        as_id: uuid.UUID | None = uuid.UUID(reference)
    except ValueError:
        as_id = None
    row = await conn.fetchrow(
        "SELECT group_id::text, name FROM groups WHERE group_id = $1::uuid"
        " OR lower(name) = lower($2) ORDER BY group_id = $1::uuid DESC LIMIT 1",
        as_id,
        reference,
    )
    return None if row is None else (row["group_id"], row["name"])
