"""Rollouts as kept (migrations/0007_rollouts.sql): one row each, rings, gate and latest
figures as JSON."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from libs.contracts import approval as a
from libs.contracts import rollouts as ro
from libs.contracts.rings import RingGate
from libs.db.pool import Connection
from libs.domain.references import as_id, kb_number
from services.approval.domain.rollouts import ACTIVE, RingRecord, RolloutRecord

_COLUMNS = (
    "rollout_id::text, update_id::text, rings, action, deadline, gate, state, figures,"
    " held_because, started_at, started_by, finished_at"
)


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _record(row: asyncpg.Record) -> RolloutRecord:
    figures = row["figures"]
    return RolloutRecord(
        rollout_id=row["rollout_id"],
        update_id=row["update_id"],
        rings=tuple(
            RingRecord(ring["group_id"], _instant(ring["started_at"]), ring["started_by"])
            for ring in json.loads(row["rings"])
        ),
        action=row["action"],
        deadline=a.DeadlineChoice.model_validate_json(row["deadline"]),
        gate=RingGate.model_validate_json(row["gate"]),
        state=row["state"],
        figures=None if figures is None else ro.GateFigures.model_validate_json(figures),
        held_because=row["held_because"],
        started_at=row["started_at"],
        started_by=row["started_by"],
        finished_at=row["finished_at"],
    )


def _rings(rollout: RolloutRecord) -> str:
    return json.dumps(
        [
            {
                "group_id": ring.group_id,
                "started_at": None if ring.started_at is None else ring.started_at.isoformat(),
                "started_by": ring.started_by,
            }
            for ring in rollout.rings
        ]
    )


async def save(conn: Connection, rollout: RolloutRecord) -> None:
    """Insert or replace the rollout's row (with when its next gate is due, for `due`)."""
    await conn.execute(
        "INSERT INTO rollouts (rollout_id, update_id, rings, action, deadline, gate, state,"
        " figures, held_because, started_at, started_by, finished_at, next_due_at)"
        " VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, $6::jsonb, $7, $8::jsonb, $9, $10, $11,"
        " $12, $13)"
        " ON CONFLICT (rollout_id) DO UPDATE SET rings = EXCLUDED.rings,"
        " state = EXCLUDED.state, figures = EXCLUDED.figures,"
        " held_because = EXCLUDED.held_because, finished_at = EXCLUDED.finished_at,"
        " next_due_at = EXCLUDED.next_due_at",
        uuid.UUID(rollout.rollout_id),
        uuid.UUID(rollout.update_id),
        _rings(rollout),
        rollout.action,
        rollout.deadline.model_dump_json(),
        rollout.gate.model_dump_json(),
        rollout.state,
        None if rollout.figures is None else rollout.figures.model_dump_json(),
        rollout.held_because,
        rollout.started_at,
        rollout.started_by,
        rollout.finished_at,
        rollout.next_due(),
    )


async def active_for(conn: Connection, update_id: str) -> RolloutRecord | None:
    """The update's rollout still running or held, if any."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM rollouts WHERE update_id = $1 AND state = ANY ($2::text[])",
        uuid.UUID(update_id),
        list(ACTIVE),
    )
    return None if row is None else _record(row)


async def has_any(conn: Connection, update_id: str) -> bool:
    """The update was ever rolled out (a rule starts one rollout per update, once)."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM rollouts WHERE update_id = $1)", uuid.UUID(update_id)
    )
    return found


async def find(conn: Connection, reference: str, *, lock: bool = False) -> RolloutRecord | None:
    """A rollout by id, else the latest rollout of the update with this id or KB number."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM rollouts WHERE rollout_id = $1::uuid"
        " OR update_id IN (SELECT update_id FROM updates WHERE update_id = $1::uuid"
        "   OR kb = $2)"
        " ORDER BY rollout_id = $1::uuid DESC NULLS LAST, started_at DESC LIMIT 1"
        + (" FOR UPDATE" if lock else ""),
        as_id(reference),
        kb_number(reference),
    )
    return None if row is None else _record(row)


async def due(conn: Connection, now: datetime, limit: int) -> list[RolloutRecord]:
    """Running rollouts whose next gate is due, locked; others' locked ones are skipped."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM rollouts WHERE state = 'running' AND next_due_at <= $1"
        " ORDER BY next_due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [_record(row) for row in rows]


async def listed(
    conn: Connection, states: Sequence[ro.RolloutState], limit: int
) -> list[RolloutRecord]:
    """Rollouts (in these states; none given: all), newest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM rollouts WHERE cardinality($1::text[]) = 0"
        " OR state = ANY ($1::text[]) ORDER BY started_at DESC, rollout_id LIMIT $2",
        list(states),
        limit,
    )
    return [_record(row) for row in rows]


async def with_ring(conn: Connection, group_id: str) -> list[str]:
    """Ids of the rollouts still running or held that have the group as a ring."""
    rows = await conn.fetch(
        "SELECT rollout_id::text FROM rollouts WHERE state = ANY ($2::text[])"
        " AND rings @> jsonb_build_array(jsonb_build_object('group_id', $1::text))"
        " ORDER BY started_at",
        group_id,
        list(ACTIVE),
    )
    return [row["rollout_id"] for row in rows]
