"""Pauses of updates' approvals (fleet-wide or on a group): domain/pauses.py."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from libs.db.pool import Connection, rows_affected
from services.approval.domain.pauses import Pauses
from services.approval.domain.tree import Paused

FLEET = "fleet"


def _scope(group: str | None) -> str:
    return FLEET if group is None else str(uuid.UUID(group))


async def of_update(conn: Connection, update_id: str) -> Pauses:
    """The update's pauses by group (None: fleet-wide)."""
    rows = await conn.fetch(
        "SELECT group_id::text, paused_by, reason, paused_at FROM pauses WHERE update_id = $1",
        uuid.UUID(update_id),
    )
    return {
        r["group_id"]: Paused(r["paused_by"], r["reason"], r["paused_at"], r["group_id"])
        for r in rows
    }


async def put(conn: Connection, update_id: str, pause: Paused) -> None:
    """Set a pause (the caller checked there is none at its scope)."""
    await conn.execute(
        "INSERT INTO pauses (update_id, scope, group_id, paused_by, reason, paused_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        uuid.UUID(update_id),
        _scope(pause.group),
        None if pause.group is None else uuid.UUID(pause.group),
        pause.by,
        pause.reason,
        pause.at,
    )


async def drop(conn: Connection, update_id: str, groups: Collection[str | None]) -> int:
    """Lift these pauses (by group, None: the fleet-wide one); returns how many there were."""
    status = await conn.execute(
        "DELETE FROM pauses WHERE update_id = $1 AND scope = ANY ($2::text[])",
        uuid.UUID(update_id),
        [_scope(g) for g in groups],
    )
    return rows_affected(status)
