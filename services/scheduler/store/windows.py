"""Maintenance windows per group (one row per group that has any)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import TypeAdapter

from libs.contracts.windows import GroupWindows, MaintenanceWindow, group_windows
from libs.db.pool import Connection, rows_affected

_WINDOWS = TypeAdapter(list[MaintenanceWindow])


async def set_windows(
    conn: Connection, group_id: str, windows: Sequence[MaintenanceWindow], now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO maintenance_windows (group_id, windows, updated_at)"
        " VALUES ($1::uuid, $2::jsonb, $3)"
        " ON CONFLICT (group_id) DO UPDATE SET windows = EXCLUDED.windows,"
        " updated_at = EXCLUDED.updated_at",
        group_id,
        json.dumps([w.model_dump(mode="json") for w in windows]),
        now,
    )


async def clear(conn: Connection, group_id: str) -> bool:
    """Remove a group's windows; False when it had none."""
    done = await conn.execute("DELETE FROM maintenance_windows WHERE group_id = $1::uuid", group_id)
    return rows_affected(done) > 0


async def by_group(conn: Connection) -> dict[str, list[MaintenanceWindow]]:
    """Every group's own windows, by group id (groups without windows are left out)."""
    rows = await conn.fetch("SELECT group_id::text, windows::text FROM maintenance_windows")
    return {r["group_id"]: _WINDOWS.validate_json(r["windows"]) for r in rows}


async def listed(conn: Connection, group_id: str | None = None) -> list[GroupWindows]:
    """Groups with their own windows, by name: every group that has some, or one group
    (with an empty list when it has none)."""
    rows = await conn.fetch(
        "SELECT g.group_id::text, g.name, w.windows::text AS windows, w.updated_at"
        " FROM groups g LEFT JOIN maintenance_windows w USING (group_id)"
        " WHERE ($1::uuid IS NULL AND w.group_id IS NOT NULL) OR g.group_id = $1::uuid"
        " ORDER BY lower(g.name), g.group_id",
        group_id,
    )
    return [
        group_windows(
            r["group_id"],
            r["name"],
            [] if r["windows"] is None else _WINDOWS.validate_json(r["windows"]),
            r["updated_at"],
        )
        for r in rows
    ]
