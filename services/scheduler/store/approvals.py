"""The read copy of approval's effective approvals per group (group_approvals)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from libs.contracts.approval import Pause
from libs.db.pool import Connection
from libs.domain.resolution import Deadline
from services.scheduler.domain.plans import GroupApproval


async def put_many(  # noqa: PLR0917 - one approval's columns
    conn: Connection,
    group_ids: Sequence[str],
    update_id: str,
    action: str,
    deadline: Deadline,
    paused: Pause | None = None,
) -> None:
    """The same effective approval of one update on many groups, in one statement."""
    await conn.execute(
        "INSERT INTO group_approvals"
        " (group_id, update_id, action, deadline_kind, deadline_at, paused)"
        " SELECT g, $2, $3, $4, $5, $6::jsonb FROM unnest($1::uuid[]) AS g"
        " ON CONFLICT (group_id, update_id) DO UPDATE SET"
        " action = EXCLUDED.action, deadline_kind = EXCLUDED.deadline_kind,"
        " deadline_at = EXCLUDED.deadline_at, paused = EXCLUDED.paused",
        [uuid.UUID(g) for g in group_ids],
        uuid.UUID(update_id),
        action,
        deadline.kind,
        deadline.at,
        None if paused is None else paused.model_dump_json(),
    )


async def delete_many(conn: Connection, group_ids: Sequence[str], update_id: str) -> None:
    """One update no longer approved on these groups, in one statement."""
    await conn.execute(
        "DELETE FROM group_approvals WHERE update_id = $2 AND group_id = ANY ($1::uuid[])",
        [uuid.UUID(g) for g in group_ids],
        uuid.UUID(update_id),
    )


async def of_groups(conn: Connection, group_ids: Sequence[str]) -> dict[str, list[GroupApproval]]:
    """Per group: its effective approvals (groups without any are left out)."""
    rows = await conn.fetch(
        "SELECT group_id::text, update_id::text, action, deadline_kind, deadline_at, paused"
        " FROM group_approvals WHERE group_id = ANY ($1::uuid[])",
        list(group_ids),
    )
    found: dict[str, list[GroupApproval]] = {}
    pauses: dict[str, Pause] = {}  # each distinct pause parsed once (fleet-wide: one text)
    for r in rows:
        text = r["paused"]
        if text is not None and text not in pauses:
            pauses[text] = Pause.model_validate_json(text)
        found.setdefault(r["group_id"], []).append(
            GroupApproval(
                r["group_id"],
                r["update_id"],
                r["action"],
                Deadline(r["deadline_kind"], r["deadline_at"]),
                None if text is None else pauses[text],
            )
        )
    return found


async def groups_approving(conn: Connection, update_id: str) -> list[str]:
    """The groups with an effective approval of this update."""
    rows = await conn.fetch(
        "SELECT group_id::text FROM group_approvals WHERE update_id = $1", uuid.UUID(update_id)
    )
    return [r["group_id"] for r in rows]


async def forget_group(conn: Connection, group_id: str) -> None:
    await conn.execute("DELETE FROM group_approvals WHERE group_id = $1", uuid.UUID(group_id))


async def forget_update(conn: Connection, update_id: str) -> None:
    await conn.execute("DELETE FROM group_approvals WHERE update_id = $1", uuid.UUID(update_id))
