"""Reads of the shared group read copy (libs/read_copies/groups.py keeps it)."""

from __future__ import annotations

from collections.abc import Sequence

from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection


async def parents(conn: Connection) -> dict[str, str | None]:
    """Every group's parent (None for All computers)."""
    rows = await conn.fetch("SELECT group_id::text, parent_id::text FROM groups")
    return {r["group_id"]: r["parent_id"] for r in rows}


async def memberships(conn: Connection, computer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every group of each computer, All computers first."""
    rows = await conn.fetch(
        "SELECT computer_id, group_id::text FROM memberships WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    found: dict[str, list[str]] = {c: [ROOT_GROUP_ID] for c in computer_ids}
    for r in rows:
        found[r["computer_id"]].append(r["group_id"])
    return found
