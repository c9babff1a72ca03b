"""reporting's reads of the group tree read copy (its tables and writes:
libs/read_copies/groups.py)."""

from __future__ import annotations

import uuid

from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection


async def members(conn: Connection, group_id: str) -> list[str]:
    """Computers of a group and of its subgroups (All computers: every computer)."""
    if group_id == ROOT_GROUP_ID:
        rows = await conn.fetch("SELECT computer_id FROM computers")
    else:
        rows = await conn.fetch(
            "WITH RECURSIVE sub (group_id) AS (SELECT $1::uuid UNION ALL"
            " SELECT g.group_id FROM groups g JOIN sub s ON g.parent_id = s.group_id)"
            " SELECT DISTINCT m.computer_id FROM memberships m JOIN sub USING (group_id)",
            uuid.UUID(group_id),
        )
    return [row["computer_id"] for row in rows]


async def to_depth(conn: Connection, depth: int) -> list[tuple[str, str]]:
    """(id, name) of the groups at most `depth` levels below All computers."""
    rows = await conn.fetch(
        "WITH RECURSIVE tree (group_id, name, depth) AS ("
        "   SELECT group_id, name, 0 FROM groups WHERE parent_id IS NULL"
        "   UNION ALL SELECT g.group_id, g.name, t.depth + 1 FROM groups g"
        "   JOIN tree t ON g.parent_id = t.group_id WHERE t.depth < $1"
        " ) SELECT group_id::text, name FROM tree ORDER BY depth, name",
        depth,
    )
    return [(row["group_id"], row["name"]) for row in rows]


async def subtree(conn: Connection, group_id: str) -> list[str]:
    """The group and its subgroups."""
    rows = await conn.fetch(
        "WITH RECURSIVE sub (group_id) AS (SELECT $1::uuid UNION ALL"
        " SELECT g.group_id FROM groups g JOIN sub s ON g.parent_id = s.group_id)"
        " SELECT group_id::text FROM sub",
        uuid.UUID(group_id),
    )
    return [row["group_id"] for row in rows]
