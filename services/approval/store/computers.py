"""The read copy of managed computers and their group memberships."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from libs.contracts import approval as a
from libs.contracts.scheduler import ComputerRegistered
from libs.db.pool import Connection, rows_affected


async def add(conn: Connection, computer: ComputerRegistered) -> bool:
    """Keep the computer (it is in All computers); a repeated registration changes nothing."""
    status = await conn.execute(
        "INSERT INTO computers (computer_id, hostname, registered_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (computer_id) DO NOTHING",
        computer.computer_id,
        computer.hostname,
        computer.registered_at,
    )
    return rows_affected(status) == 1


async def known(conn: Connection, computer_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT computer_id FROM computers WHERE computer_id = ANY ($1::text[])", computer_ids
    )
    return {r["computer_id"] for r in rows}


async def hostname(conn: Connection, computer_id: str) -> str | None:
    name: str | None = await conn.fetchval(
        "SELECT hostname FROM computers WHERE computer_id = $1", computer_id
    )
    return name


async def change_membership(
    conn: Connection, computer_ids: Sequence[str], group_id: str, *, member: bool
) -> list[str]:
    """Add or remove; returns the computers whose membership actually changed."""
    if member:
        rows = await conn.fetch(
            "INSERT INTO memberships (computer_id, group_id)"
            " SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING RETURNING computer_id",
            computer_ids,
            uuid.UUID(group_id),
        )
    else:
        rows = await conn.fetch(
            "DELETE FROM memberships WHERE group_id = $2 AND computer_id = ANY ($1::text[])"
            " RETURNING computer_id",
            computer_ids,
            uuid.UUID(group_id),
        )
    return sorted(r["computer_id"] for r in rows)


async def groups_of(conn: Connection, computer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every group of each computer, All computers first."""
    rows = await conn.fetch(
        "SELECT computer_id, group_id::text FROM memberships"
        " WHERE computer_id = ANY ($1::text[]) ORDER BY computer_id, group_id",
        computer_ids,
    )
    found: dict[str, list[str]] = {c: [a.ROOT_GROUP_ID] for c in computer_ids}
    for r in rows:
        found[r["computer_id"]].append(r["group_id"])
    return found


async def count_in_group(conn: Connection, group_id: str) -> int:
    """The computers put in a group (not those of its child groups)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM memberships WHERE group_id = $1", uuid.UUID(group_id)
    )
    return count
