"""The state of each update on each computer, and the history of install attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from libs.contracts import reporting as r
from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection
from libs.domain.agent_reports import RESTART_COMPLETES, Observation
from services.reporting.domain.batches import Attempt
from services.reporting.domain.counts import StatesByUpdate


async def lock(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, datetime | None]]:
    """Create missing rows as placeholders, then lock every row in one order (no deadlock
    between replicas); returns (state, reported_at) per (computer, update)."""
    ordered = sorted(keys, key=lambda k: (k[1], k[0]))
    computers = [c for c, _ in ordered]
    updates = [u for _, u in ordered]
    await conn.execute(
        "INSERT INTO computer_updates (computer_id, update_id, state)"
        " SELECT c, u, 'none' FROM unnest($1::text[], $2::uuid[]) AS k (c, u)"
        " ORDER BY u, c ON CONFLICT DO NOTHING",
        computers,
        updates,
    )
    rows = await conn.fetch(
        "SELECT cu.computer_id, cu.update_id::text, cu.state, cu.reported_at"
        " FROM computer_updates cu JOIN unnest($1::text[], $2::uuid[]) AS k (c, u)"
        " ON cu.computer_id = k.c AND cu.update_id = k.u"
        " ORDER BY cu.update_id, cu.computer_id FOR UPDATE OF cu",
        computers,
        updates,
    )
    return {
        (row["computer_id"], row["update_id"]): (row["state"], row["reported_at"]) for row in rows
    }


async def save(conn: Connection, changes: Sequence[tuple[Observation, str]]) -> None:
    """Write new states, one (observation, state it replaces) per locked row."""
    if not changes:
        return
    await conn.execute(
        "UPDATE computer_updates cu SET state = k.state, reported_at = k.at,"
        " last_return_code = coalesce(k.code, cu.last_return_code)"
        " FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[], $5::bigint[])"
        "   AS k (c, u, state, at, code)"
        " WHERE cu.computer_id = k.c AND cu.update_id = k.u",
        [o.computer_id for o, _ in changes],
        [o.update_id for o, _ in changes],
        [o.state for o, _ in changes],
        [o.reported_at for o, _ in changes],
        [o.return_code for o, _ in changes],
    )


async def complete_restart(conn: Connection, computer_id: str, at: datetime) -> list[str]:
    """A restart turns this computer's pending installs into installed ones; returns the
    updates it completed."""
    pending, done = RESTART_COMPLETES
    rows = await conn.fetch(
        "UPDATE computer_updates SET state = $4, reported_at = greatest(reported_at, $2)"
        " WHERE computer_id = $1 AND state = $3"
        " RETURNING update_id::text",
        computer_id,
        at,
        pending,
        done,
    )
    return [row["update_id"] for row in rows]


async def save_attempts(conn: Connection, attempts: Sequence[Attempt]) -> None:
    """Every attempt in one statement; repeats are ignored."""
    if not attempts:
        return
    await conn.execute(
        "INSERT INTO install_attempts (computer_id, update_id, started_at, finished_at,"
        " return_code, outcome, operation)"
        " SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::timestamptz[],"
        " $5::bigint[], $6::text[], $7::text[]) ON CONFLICT DO NOTHING",
        [a.computer_id for a in attempts],
        [a.update_id for a in attempts],
        [a.started_at for a in attempts],
        [a.finished_at for a in attempts],
        [a.return_code for a in attempts],
        [a.outcome for a in attempts],
        [a.operation for a in attempts],
    )


async def delete_update(conn: Connection, update_id: str) -> None:
    """Every state and attempt of an update."""
    uid = uuid.UUID(update_id)
    for table in ("computer_updates", "install_attempts"):
        await conn.execute(f"DELETE FROM {table} WHERE update_id = $1", uid)


async def of_computers(conn: Connection, computer_ids: Sequence[str]) -> StatesByUpdate:
    """Per update: how many of these computers are in each state."""
    rows = await conn.fetch(
        "SELECT update_id::text, state, count(*) AS n FROM computer_updates"
        " WHERE computer_id = ANY ($1::text[]) AND state <> 'none' GROUP BY update_id, state",
        list(computer_ids),
    )
    found: StatesByUpdate = {}
    for row in rows:
        found.setdefault(row["update_id"], {})[row["state"]] = row["n"]
    return found


async def of_computer(conn: Connection, computer_id: str) -> list[r.ComputerUpdate]:
    """The updates reported on one computer, by KB number."""
    rows = await conn.fetch(
        "SELECT cu.update_id::text, u.kb, u.title, cu.state, cu.reported_at, cu.last_return_code"
        " FROM computer_updates cu JOIN updates u USING (update_id)"
        " WHERE cu.computer_id = $1 AND cu.state <> 'none' ORDER BY u.kb",
        computer_id,
    )
    return [
        r.ComputerUpdate(
            update_id=row["update_id"],
            kb=row["kb"],
            title=row["title"],
            state=row["state"],
            reported_at=row["reported_at"],
            last_return_code=row["last_return_code"],
        )
        for row in rows
    ]


async def overdue(conn: Connection, update_ids: Sequence[str], now: datetime) -> dict[str, int]:
    """Per update: computers that still need it (needed or failed) past their own deadline,
    the earliest over the effective approvals of the groups they are in (approvals carry
    inheritance already; every computer is in All computers)."""
    rows = await conn.fetch(
        "SELECT cu.update_id::text, count(*) AS n FROM computer_updates cu"
        " WHERE cu.update_id = ANY ($1::uuid[]) AND cu.state IN ('needed', 'failed')"
        " AND EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = cu.update_id"
        "   AND a.deadline <= $2 AND (a.group_id = $3::uuid OR a.group_id IN"
        "     (SELECT m.group_id FROM memberships m WHERE m.computer_id = cu.computer_id)))"
        " GROUP BY cu.update_id",
        [uuid.UUID(u) for u in update_ids],
        now,
        ROOT_GROUP_ID,
    )
    return {row["update_id"]: row["n"] for row in rows}


async def attempts(
    conn: Connection, update_id: str, page: r.Page
) -> tuple[int, int, list[r.AttemptView]]:
    """(successes, failures, a page of the failed attempts, latest first) of an update."""
    uid = uuid.UUID(update_id)
    totals = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE outcome <> 'failure') AS ok,"
        " count(*) FILTER (WHERE outcome = 'failure') AS failed"
        " FROM install_attempts WHERE update_id = $1",
        uid,
    )
    rows = await conn.fetch(
        "SELECT computer_id, return_code, outcome, started_at, finished_at FROM install_attempts"
        " WHERE update_id = $1 AND outcome = 'failure' ORDER BY finished_at DESC, computer_id"
        " OFFSET $2 LIMIT $3",
        uid,
        page.offset,
        page.limit,
    )
    views = [r.AttemptView(**dict(row)) for row in rows]
    return (totals["ok"] if totals else 0), (totals["failed"] if totals else 0), views
