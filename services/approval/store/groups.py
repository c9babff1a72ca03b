"""The group tree: groups with their names and parents."""

from __future__ import annotations

import uuid

from libs.db.pool import Connection
from libs.domain.references import as_id
from services.approval.domain.groups import GroupCounts, Groups
from services.approval.domain.tree import Tree


async def load(conn: Connection) -> Groups:
    rows = await conn.fetch("SELECT group_id::text, name, parent_id::text FROM groups")
    return Groups(
        tree=Tree({r["group_id"]: r["parent_id"] for r in rows}),
        names={r["group_id"]: r["name"] for r in rows},
    )


async def find(conn: Connection, reference: str) -> str | None:
    """A group id from an id or a name (case-insensitive)."""
    group_id = as_id(reference)
    if group_id is not None:
        found: str | None = await conn.fetchval(
            "SELECT group_id::text FROM groups WHERE group_id = $1", group_id
        )
        if found is not None:
            return found
    by_name: str | None = await conn.fetchval(
        "SELECT group_id::text FROM groups WHERE lower(name) = lower($1)", reference
    )
    return by_name


async def name_taken(conn: Connection, name: str, but: str | None = None) -> bool:
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM groups WHERE lower(name) = lower($1)"
        " AND group_id IS DISTINCT FROM $2::uuid)",
        name,
        but,
    )
    return taken


async def create(conn: Connection, group_id: str, name: str, parent_id: str) -> None:
    await conn.execute(
        "INSERT INTO groups (group_id, name, parent_id) VALUES ($1, $2, $3)",
        uuid.UUID(group_id),
        name,
        uuid.UUID(parent_id),
    )


async def rename(conn: Connection, group_id: str, name: str) -> None:
    await conn.execute("UPDATE groups SET name = $2 WHERE group_id = $1", uuid.UUID(group_id), name)


async def move(conn: Connection, group_id: str, parent_id: str) -> None:
    await conn.execute(
        "UPDATE groups SET parent_id = $2 WHERE group_id = $1",
        uuid.UUID(group_id),
        uuid.UUID(parent_id),
    )


async def delete(conn: Connection, group_id: str) -> None:
    """Delete a group with its approvals (callers check it has no computers or children)."""
    gid = uuid.UUID(group_id)
    await conn.execute("DELETE FROM effective_approvals WHERE group_id = $1", gid)
    await conn.execute("DELETE FROM explicit_approvals WHERE group_id = $1", gid)
    await conn.execute("DELETE FROM groups WHERE group_id = $1", gid)


async def counts(conn: Connection) -> dict[str, GroupCounts]:
    """Direct computers and direct children per group; All computers counts every computer."""
    rows = await conn.fetch(
        "SELECT g.group_id::text AS group_id,"
        " CASE WHEN g.parent_id IS NULL THEN (SELECT count(*) FROM computers)"
        "      ELSE (SELECT count(*) FROM memberships m WHERE m.group_id = g.group_id) END"
        "   AS computers,"
        " (SELECT count(*) FROM groups c WHERE c.parent_id = g.group_id) AS children"
        " FROM groups g"
    )
    return {r["group_id"]: GroupCounts(r["computers"], r["children"]) for r in rows}
