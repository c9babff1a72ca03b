"""Explicit approvals (set on a group) and effective ones (what applies after inheritance)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

import asyncpg

from libs.db.pool import Connection, rows_affected
from services.approval.domain.approvals import Changes, ExplicitApproval, GroupApproval
from services.approval.domain.deadlines import Deadline
from services.approval.domain.tree import Effective, Explicit, Paused
from services.approval.store.updates import U_COLUMNS
from services.approval.store.updates import from_row as update_from_row


def _deadline(r: asyncpg.Record) -> Deadline:
    return Deadline(r["deadline_kind"], r["deadline_at"])


def _explicit(r: asyncpg.Record) -> Explicit:
    return Explicit(r["action"], _deadline(r), r["approved_at"], r["approved_by"])


PAUSE_COLUMNS = "paused_by, paused_reason, paused_at, paused_group_id::text"
"""An effective approval's pause, as `_effective` reads it."""


def _effective(r: asyncpg.Record) -> Effective:
    """An effective approval from a row with its columns (and PAUSE_COLUMNS)."""
    paused = (
        None
        if r["paused_by"] is None
        else Paused(r["paused_by"], r["paused_reason"], r["paused_at"], r["paused_group_id"])
    )
    return Effective(
        r["action"],
        _deadline(r),
        r["source_group_id"],
        r["approved_at"],
        r["approved_by"],
        paused,
    )


async def explicit_for(conn: Connection, update_id: str) -> dict[str, Explicit]:
    """The explicit approvals of an update, by group."""
    rows = await conn.fetch(
        "SELECT group_id::text, action, deadline_kind, deadline_at, approved_at, approved_by"
        " FROM explicit_approvals WHERE update_id = $1",
        uuid.UUID(update_id),
    )
    return {r["group_id"]: _explicit(r) for r in rows}


async def explicit_for_each(
    conn: Connection, update_ids: Collection[str]
) -> dict[str, dict[str, Explicit]]:
    """The explicit approvals of each of these updates, by group (empty: none)."""
    rows = await conn.fetch(
        "SELECT update_id::text, group_id::text, action, deadline_kind, deadline_at,"
        " approved_at, approved_by FROM explicit_approvals WHERE update_id = ANY ($1::uuid[])",
        list(update_ids),
    )
    found: dict[str, dict[str, Explicit]] = {u: {} for u in update_ids}
    for r in rows:
        found[r["update_id"]][r["group_id"]] = _explicit(r)
    return found


async def put_explicit(conn: Connection, approvals: Sequence[ExplicitApproval]) -> None:
    """Set explicit approvals in one statement, replacing what those groups had; of several
    for the same (update, group) the last one holds."""
    rows = list({(e.update_id, e.group_id): e for e in approvals}.values())
    if not rows:
        return
    await conn.execute(
        "INSERT INTO explicit_approvals (group_id, update_id, action, deadline_kind, deadline_at,"
        " approved_at, approved_by) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[],"
        " $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[])"
        " ON CONFLICT (update_id, group_id) DO UPDATE SET action = EXCLUDED.action,"
        " deadline_kind = EXCLUDED.deadline_kind, deadline_at = EXCLUDED.deadline_at,"
        " approved_at = EXCLUDED.approved_at, approved_by = EXCLUDED.approved_by",
        [e.group_id for e in rows],
        [e.update_id for e in rows],
        [e.explicit.action for e in rows],
        [e.explicit.deadline.kind for e in rows],
        [e.explicit.deadline.at for e in rows],
        [e.explicit.approved_at for e in rows],
        [e.explicit.approved_by for e in rows],
    )


async def drop_explicit(
    conn: Connection, update_ids: Collection[str], group_ids: Collection[str] | None = None
) -> int:
    """Drop the explicit approvals of these updates (on these groups, or everywhere); returns
    how many there were."""
    status = await conn.execute(
        "DELETE FROM explicit_approvals WHERE update_id = ANY ($1::uuid[])"
        " AND ($2::uuid[] IS NULL OR group_id = ANY ($2::uuid[]))",
        list(update_ids),
        None if group_ids is None else list(group_ids),
    )
    return rows_affected(status)


async def effective_for(conn: Connection, update_id: str) -> dict[str, Effective]:
    """The stored effective approvals of an update, by group."""
    rows = await conn.fetch(
        "SELECT group_id::text, action, deadline_kind, deadline_at, source_group_id::text,"
        f" approved_at, approved_by, {PAUSE_COLUMNS} FROM effective_approvals"
        " WHERE update_id = $1",
        uuid.UUID(update_id),
    )
    return {r["group_id"]: _effective(r) for r in rows}


async def save_effective(conn: Connection, update_id: str, changes: Changes) -> None:
    """Write the changed effective approvals of one update in two round trips."""
    uid = uuid.UUID(update_id)
    if changes.removed:
        await conn.execute(
            "DELETE FROM effective_approvals WHERE update_id = $1 AND group_id = ANY ($2::uuid[])",
            uid,
            list(changes.removed),
        )
    if changes.upserts:
        items = list(changes.upserts.items())
        await conn.execute(
            "INSERT INTO effective_approvals (update_id, group_id, action, deadline_kind,"
            " deadline_at, source_group_id, approved_at, approved_by, paused_by,"
            " paused_reason, paused_at, paused_group_id)"
            " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
            " $6::uuid[], $7::timestamptz[], $8::text[], $9::text[], $10::text[],"
            " $11::timestamptz[], $12::uuid[])"
            " ON CONFLICT (update_id, group_id) DO UPDATE SET action = EXCLUDED.action,"
            " deadline_kind = EXCLUDED.deadline_kind, deadline_at = EXCLUDED.deadline_at,"
            " source_group_id = EXCLUDED.source_group_id, approved_at = EXCLUDED.approved_at,"
            " approved_by = EXCLUDED.approved_by, paused_by = EXCLUDED.paused_by,"
            " paused_reason = EXCLUDED.paused_reason, paused_at = EXCLUDED.paused_at,"
            " paused_group_id = EXCLUDED.paused_group_id",
            uid,
            [g for g, _ in items],
            [e.action for _, e in items],
            [e.deadline.kind for _, e in items],
            [e.deadline.at for _, e in items],
            [e.source_group for _, e in items],
            [e.approved_at for _, e in items],
            [e.approved_by for _, e in items],
            [None if e.paused is None else e.paused.by for _, e in items],
            [None if e.paused is None else e.paused.reason for _, e in items],
            [None if e.paused is None else e.paused.at for _, e in items],
            [None if e.paused is None else e.paused.group for _, e in items],
        )


async def of_group(conn: Connection, group_id: str) -> list[GroupApproval]:
    """Every update with an effective approval on the group, with its explicit one if any."""
    rows = await conn.fetch(
        f"SELECT {U_COLUMNS}, f.action, f.deadline_kind, f.deadline_at,"
        " f.source_group_id::text, f.approved_at, f.approved_by, f.paused_by,"
        " f.paused_reason, f.paused_at, f.paused_group_id::text,"
        " x.action AS x_action, x.deadline_kind AS x_kind, x.deadline_at AS x_at,"
        " x.approved_at AS x_approved_at, x.approved_by AS x_approved_by"
        " FROM effective_approvals f JOIN updates u USING (update_id)"
        " LEFT JOIN explicit_approvals x ON x.update_id = f.update_id AND x.group_id = f.group_id"
        " WHERE f.group_id = $1 ORDER BY u.release_date DESC, u.kb",
        uuid.UUID(group_id),
    )
    return [
        GroupApproval(
            update=update_from_row(r),
            explicit=None
            if r["x_action"] is None
            else Explicit(
                r["x_action"],
                Deadline(r["x_kind"], r["x_at"]),
                r["x_approved_at"],
                r["x_approved_by"],
            ),
            effective=_effective(r),
        )
        for r in rows
    ]


async def effective_of_groups(
    conn: Connection, group_ids: Sequence[str]
) -> dict[str, list[tuple[str, Effective]]]:
    """Per update: the (group, effective approval) pairs among these groups."""
    rows = await conn.fetch(
        "SELECT update_id::text, group_id::text, action, deadline_kind, deadline_at,"
        f" source_group_id::text, approved_at, approved_by, {PAUSE_COLUMNS}"
        " FROM effective_approvals WHERE group_id = ANY ($1::uuid[])",
        list(group_ids),
    )
    found: dict[str, list[tuple[str, Effective]]] = {}
    for r in rows:
        found.setdefault(r["update_id"], []).append((r["group_id"], _effective(r)))
    return found
