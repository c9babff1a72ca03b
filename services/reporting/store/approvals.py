"""Effective approvals per group (from approval.update-approval.changed.v1): who is targeted,
by when."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from libs.db.pool import Connection
from services.reporting.domain.gauges import ApprovedUpdate, AwaitingApproval


async def save_many(
    conn: Connection,
    group_ids: Sequence[str],
    update_id: str,
    action: str | None,
    deadline: datetime | None,
) -> None:
    """Many groups' effective approval of the update now, the same for all (None: none),
    in one statement."""
    gids, uid = [uuid.UUID(g) for g in group_ids], uuid.UUID(update_id)
    if action is None:
        await conn.execute(
            "DELETE FROM group_approvals WHERE update_id = $2 AND group_id = ANY ($1::uuid[])",
            gids,
            uid,
        )
    else:
        await conn.execute(
            "INSERT INTO group_approvals (group_id, update_id, action, deadline)"
            " SELECT g, $2, $3, $4 FROM unnest($1::uuid[]) AS g ON CONFLICT (update_id, group_id)"
            " DO UPDATE SET action = EXCLUDED.action, deadline = EXCLUDED.deadline",
            gids,
            uid,
            action,
            deadline,
        )


async def delete_group(conn: Connection, group_id: str) -> None:
    await conn.execute("DELETE FROM group_approvals WHERE group_id = $1", uuid.UUID(group_id))


async def delete_update(conn: Connection, update_id: str) -> None:
    await conn.execute("DELETE FROM group_approvals WHERE update_id = $1", uuid.UUID(update_id))


async def approved(conn: Connection, limit: int) -> list[ApprovedUpdate]:
    """Approved, not declined updates (at most `limit`, most computers behind first): name,
    classification, severity and earliest approval deadline."""
    rows = await conn.fetch(
        "SELECT u.update_id::text, coalesce('KB' || u.kb, u.title) AS name, u.classification,"
        " coalesce(u.severity, 'none') AS severity, min(a.deadline) AS deadline,"
        " (SELECT coalesce(sum(n), 0) FROM update_counts c WHERE c.update_id = u.update_id"
        "   AND c.state IN ('needed', 'failed')) AS behind"
        " FROM updates u JOIN group_approvals a USING (update_id)"
        " WHERE u.declined_at IS NULL GROUP BY u.update_id ORDER BY behind DESC, name LIMIT $1",
        limit,
    )
    return [
        ApprovedUpdate(
            update_id=row["update_id"],
            name=row["name"],
            classification=row["classification"],
            severity=row["severity"],
            deadline=row["deadline"],
        )
        for row in rows
    ]


async def awaiting(conn: Connection) -> list[AwaitingApproval]:
    """Per (classification, severity): updates needed somewhere, neither approved nor declined."""
    rows = await conn.fetch(
        "SELECT u.classification, coalesce(u.severity, 'none') AS severity, count(*) AS n"
        " FROM updates u WHERE u.declined_at IS NULL"
        " AND EXISTS (SELECT 1 FROM update_counts c WHERE c.update_id = u.update_id"
        "   AND c.state = 'needed' AND c.n > 0)"
        " AND NOT EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = u.update_id)"
        " GROUP BY 1, 2"
    )
    return [AwaitingApproval(row["classification"], row["severity"], row["n"]) for row in rows]
