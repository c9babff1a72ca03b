"""The compliance history: the fleet's headline counts, one point per sample interval."""

from __future__ import annotations

from datetime import datetime

from libs.contracts import reporting as r
from libs.db.pool import Connection, advisory_key, rows_affected

SAMPLER_LOCK = advisory_key("lockgate.reporting.compliance-history")
"""Held (for its transaction) by the one replica sampling at a time."""


async def claim(conn: Connection, at: datetime) -> bool:
    """Whether this transaction samples the interval starting `at`: no other replica is
    sampling now (the advisory lock, until the transaction ends) and none has kept a point
    for it yet."""
    locked: bool = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SAMPLER_LOCK)
    if not locked:
        return False
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM compliance_history WHERE at = $1)", at
    )
    return not taken


async def save(conn: Connection, point: r.CompliancePoint) -> bool:
    """Keep a point unless its interval has one already; whether it was kept."""
    status = await conn.execute(
        "INSERT INTO compliance_history (at, computers, not_reporting, counts)"
        " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (at) DO NOTHING",
        point.at,
        point.computers,
        point.not_reporting,
        point.counts.model_dump_json(),
    )
    return rows_affected(status) == 1


async def prune(conn: Connection, before: datetime) -> int:
    """Delete the points before `before`; how many went."""
    status = await conn.execute("DELETE FROM compliance_history WHERE at < $1", before)
    return rows_affected(status)


async def points(conn: Connection, since: datetime | None, limit: int) -> list[r.CompliancePoint]:
    """The first `limit` points after `since` (None: the newest `limit`), oldest first."""
    columns = "at, computers, not_reporting, counts::text"
    if since is None:
        rows = await conn.fetch(
            f"SELECT * FROM (SELECT {columns} FROM compliance_history ORDER BY at DESC"
            " LIMIT $1) newest ORDER BY at",
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {columns} FROM compliance_history WHERE at > $1 ORDER BY at LIMIT $2",
            since,
            limit,
        )
    return [
        r.CompliancePoint(
            at=row["at"],
            computers=row["computers"],
            not_reporting=row["not_reporting"],
            counts=r.StateCounts.model_validate_json(row["counts"]),
        )
        for row in rows
    ]
