"""Durable timers: one per (computer, kind), claimed with FOR UPDATE SKIP LOCKED."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from libs.db.pool import Connection
from services.scheduler.domain.timers import Timer, TimerChange, TimerCount


async def schedule(conn: Connection, changes: Sequence[TimerChange]) -> None:
    """Set or drop many timers at once (a change due at None drops its timer)."""
    dropped = [c for c in changes if c.due_at is None]
    kept = [c for c in changes if c.due_at is not None]
    if dropped:
        await conn.execute(
            "DELETE FROM timers t USING unnest($1::text[], $2::text[]) AS d (computer_id, kind)"
            " WHERE t.computer_id = d.computer_id AND t.kind = d.kind",
            [c.computer_id for c in dropped],
            [c.kind for c in dropped],
        )
    if kept:
        await conn.execute(
            "INSERT INTO timers (computer_id, kind, due_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])"
            " ON CONFLICT (computer_id, kind) DO UPDATE SET due_at = EXCLUDED.due_at",
            [c.computer_id for c in kept],
            [c.kind for c in kept],
            [c.due_at for c in kept],
        )


async def claim_due(conn: Connection, now: datetime, limit: int) -> list[Timer]:
    """Due timers, locked for this transaction: another replica skips them."""
    rows = await conn.fetch(
        "SELECT computer_id, kind, due_at FROM timers WHERE due_at <= $1"
        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [Timer(r["computer_id"], r["kind"], r["due_at"]) for r in rows]


async def counts(conn: Connection, now: datetime) -> list[TimerCount]:
    """Per kind: timers stored and timers due now (for the Prometheus gauges)."""
    rows = await conn.fetch(
        "SELECT kind, count(*) AS scheduled, count(*) FILTER (WHERE due_at <= $1) AS due"
        " FROM timers GROUP BY kind",
        now,
    )
    return [TimerCount(r["kind"], r["scheduled"], r["due"]) for r in rows]
