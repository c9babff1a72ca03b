"""What each agent reported per update, and what the scheduler sent for it (computer_updates)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from libs.db.pool import Connection
from libs.domain.agent_reports import RESTART_COMPLETES, Observation
from services.scheduler.domain.plans import Progress


async def of_computers(
    conn: Connection, computer_ids: Sequence[str]
) -> dict[str, dict[str, Progress]]:
    """Per computer (every one asked, even with no rows): its progress per update."""
    rows = await conn.fetch(
        "SELECT computer_id, update_id::text, state, planned_at, immediate_sent_at"
        " FROM computer_updates WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    found: dict[str, dict[str, Progress]] = {c: {} for c in computer_ids}
    for r in rows:
        found[r["computer_id"]][r["update_id"]] = Progress(
            r["state"], r["planned_at"], r["immediate_sent_at"]
        )
    return found


async def mark_planned(
    conn: Connection, computer_id: str, update_ids: Sequence[str], now: datetime
) -> None:
    """Remember when each update first entered the computer's plan."""
    await conn.execute(
        "INSERT INTO computer_updates (computer_id, update_id, planned_at)"
        " SELECT $1, unnest($2::uuid[]), $3 ON CONFLICT (computer_id, update_id)"
        " DO UPDATE SET planned_at = coalesce(computer_updates.planned_at, EXCLUDED.planned_at)",
        computer_id,
        list(update_ids),
        now,
    )


async def mark_planned_many(
    conn: Connection, planned: Sequence[tuple[str, str]], now: datetime
) -> None:
    """Remember when each (computer, update) first entered the computer's plan, in one
    statement for a whole batch of plans."""
    if not planned:
        return
    await conn.execute(
        "INSERT INTO computer_updates (computer_id, update_id, planned_at)"
        " SELECT c, u, $3 FROM unnest($1::text[], $2::uuid[]) AS p (c, u)"
        " ON CONFLICT (computer_id, update_id) DO UPDATE"
        " SET planned_at = coalesce(computer_updates.planned_at, EXCLUDED.planned_at)",
        [c for c, _ in planned],
        [u for _, u in planned],
        now,
    )


async def held_states(
    conn: Connection, computer_id: str, update_ids: Sequence[str]
) -> dict[tuple[str, str], tuple[str, datetime | None]]:
    """Lock this computer's rows for these updates, creating missing ones (state `unknown`),
    in update order so two replicas handling reports of one computer never deadlock;
    returns (state, reported_at of the report that set it) per (computer, update)."""
    ordered = sorted(set(update_ids))
    await conn.execute(
        "INSERT INTO computer_updates (computer_id, update_id)"
        " SELECT $1, u FROM unnest($2::uuid[]) AS u ORDER BY u ON CONFLICT DO NOTHING",
        computer_id,
        ordered,
    )
    rows = await conn.fetch(
        "SELECT update_id::text, state, state_at FROM computer_updates"
        " WHERE computer_id = $1 AND update_id = ANY ($2::uuid[])"
        " ORDER BY update_id FOR UPDATE",
        computer_id,
        ordered,
    )
    return {(computer_id, r["update_id"]): (r["state"], r["state_at"]) for r in rows}


async def record_states(conn: Connection, computer_id: str, changes: Sequence[Observation]) -> None:
    """Store states the agent's reports moved, stamped with the agent's `reported_at`."""
    await conn.execute(
        "UPDATE computer_updates cu SET state = u.state, state_at = u.at"
        " FROM unnest($2::uuid[], $3::text[], $4::timestamptz[]) AS u (update_id, state, at)"
        " WHERE cu.computer_id = $1 AND cu.update_id = u.update_id",
        computer_id,
        [o.update_id for o in changes],
        [o.state for o in changes],
        [o.reported_at for o in changes],
    )


async def complete_restart(conn: Connection, computer_id: str, at: datetime) -> None:
    """A restart turns this computer's pending installs into installed ones."""
    pending, done = RESTART_COMPLETES
    await conn.execute(
        "UPDATE computer_updates SET state = $4, state_at = greatest(state_at, $2)"
        " WHERE computer_id = $1 AND state = $3",
        computer_id,
        at,
        pending,
        done,
    )


async def mark_immediate_sent(
    conn: Connection, sent: Sequence[tuple[str, str]], at: datetime
) -> None:
    """Remember that these (computer, update) were sent for immediate install at `at`."""
    await conn.execute(
        "UPDATE computer_updates c SET immediate_sent_at = $3"
        " FROM unnest($1::text[], $2::uuid[]) AS s (computer_id, update_id)"
        " WHERE c.computer_id = s.computer_id AND c.update_id = s.update_id",
        [c for c, _ in sent],
        [u for _, u in sent],
        at,
    )


async def forget_update(conn: Connection, update_id: str) -> None:
    await conn.execute("DELETE FROM computer_updates WHERE update_id = $1", uuid.UUID(update_id))
