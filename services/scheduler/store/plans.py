"""Computers' plans: marked dirty by events, claimed for recomputing, stored with a digest."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from libs.contracts.agents import ComputerPlan
from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection, rows_affected
from services.scheduler.domain.computers import ManagedComputer
from services.scheduler.store.computers import COLUMNS, from_row


async def mark_dirty(conn: Connection, computer_ids: Sequence[str], now: datetime) -> None:
    await conn.execute(
        "UPDATE computers SET plan_dirty_at = $2 WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
        now,
    )


async def mark_group_dirty(conn: Connection, group_id: str, now: datetime) -> int:
    """Every computer of a group (All computers: every computer)."""
    if group_id == ROOT_GROUP_ID:
        status = await conn.execute("UPDATE computers SET plan_dirty_at = $1", now)
    else:
        status = await conn.execute(
            "UPDATE computers c SET plan_dirty_at = $2 FROM memberships m"
            " WHERE m.group_id = $1 AND m.computer_id = c.computer_id",
            uuid.UUID(group_id),
            now,
        )
    return rows_affected(status)


async def mark_all_dirty(conn: Connection, now: datetime) -> None:
    """Policies or the tree changed: every plan may have (rare, operator-driven)."""
    await conn.execute("UPDATE computers SET plan_dirty_at = $1", now)


async def claim_dirty(conn: Connection, limit: int) -> list[tuple[str, datetime]]:
    """(computer, when it was marked) of plans to recompute, locked for this transaction."""
    rows = await conn.fetch(
        "SELECT computer_id, plan_dirty_at FROM computers WHERE plan_dirty_at IS NOT NULL"
        " ORDER BY plan_dirty_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [(r["computer_id"], r["plan_dirty_at"]) for r in rows]


async def save(
    conn: Connection,
    computer_id: str,
    plan: ComputerPlan,
    digest: str,
    dirty_seen: datetime | None,
) -> None:
    """Store the plan; the dirty mark clears only if nobody marked it again meanwhile."""
    await conn.execute(
        "UPDATE computers SET plan = $2::jsonb, plan_hash = $3,"
        " plan_dirty_at = CASE WHEN plan_dirty_at IS NOT DISTINCT FROM $4 THEN NULL"
        "                      ELSE plan_dirty_at END"
        " WHERE computer_id = $1",
        computer_id,
        plan.model_dump_json(),
        digest,
        dirty_seen,
    )


async def find(conn: Connection, computer_id: str) -> ComputerPlan | None:
    """The computer's stored plan (None: never planned, or unknown)."""
    found: str | None = await conn.fetchval(
        "SELECT plan::text FROM computers WHERE computer_id = $1", computer_id
    )
    return None if found is None else ComputerPlan.model_validate_json(found)


async def load(
    conn: Connection, computer_ids: Sequence[str]
) -> dict[str, tuple[ComputerPlan, ManagedComputer]]:
    """Stored plans with their computers (computers never planned are left out)."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS}, plan::text AS plan FROM computers"
        " WHERE computer_id = ANY ($1::text[]) AND plan IS NOT NULL",
        list(computer_ids),
    )
    return {
        r["computer_id"]: (ComputerPlan.model_validate_json(r["plan"]), from_row(r)) for r in rows
    }
