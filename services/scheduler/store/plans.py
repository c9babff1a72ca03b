"""Computers' plans: what is to be re-planned, claimed for it, stored with a digest.

Two kinds of work, both taken by any replica with FOR UPDATE SKIP LOCKED:

- a mark on one computer's row (`plan_dirty_at`): its check-in, its groups changed;
- ranges of computer ids (`plan_ranges`, migration 0011) for a change that reaches many
  computers at once (an approval of a group and the groups below it, a policy, the tree, an
  update's facts): a root approval over 1,000,000 computers writes a few hundred ranges,
  not 1,000,000 marks.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.contracts.agents import ComputerPlan
from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection
from services.scheduler.domain.computers import ManagedComputer
from services.scheduler.domain.plans import PUSH_LIMIT
from services.scheduler.store.computers import COLUMNS, from_row

RANGE_SIZE = 5000
"""Computers per range: one transaction re-plans them with a handful of statements."""


@dataclass(frozen=True)
class PlanRange:
    """Computers `first_id` to `last_id` (only members of `group_ids`, when given)."""

    range_id: int
    first_id: str
    last_id: str
    group_ids: list[str] | None
    push: bool
    """Send the changed plans to their computers (the change reached few computers)."""


@dataclass(frozen=True)
class PlanRow:
    """A computed plan to store: its JSON text and digest, and the dirty mark it answers."""

    computer_id: str
    plan_json: str
    digest: str
    dirty_seen: datetime | None


async def mark_dirty(conn: Connection, computer_ids: Sequence[str], now: datetime) -> None:
    """A few computers' plans may have changed (a check-in, a computer's groups)."""
    await conn.execute(
        "UPDATE computers SET plan_dirty_at = $2 WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
        now,
    )


async def mark_groups_dirty(
    conn: Connection,
    group_ids: Collection[str],
    now: datetime,
    *,
    push_limit: int = PUSH_LIMIT,
    size: int = RANGE_SIZE,
) -> int:
    """The plans of every computer in these groups (All computers: every computer) may have
    changed: ranges of `size` computers to re-plan, in one statement; returns how many
    computers they cover. Their plans are pushed when at most `push_limit` computers are.

    A sweep over every computer makes every range nobody has taken yet redundant: those go.
    """
    everyone = ROOT_GROUP_ID in group_ids
    if everyone:
        await conn.execute(
            "DELETE FROM plan_ranges WHERE range_id IN"
            " (SELECT range_id FROM plan_ranges FOR UPDATE SKIP LOCKED)"
        )
        source = "SELECT computer_id FROM computers"
    else:
        source = "SELECT DISTINCT computer_id FROM memberships WHERE group_id = ANY ($4::uuid[])"
    covered: int | None = await conn.fetchval(
        "WITH ids AS (SELECT computer_id, count(*) OVER () AS total,"
        "   (row_number() OVER (ORDER BY computer_id) - 1) / $2 AS chunk"
        f"   FROM ({source}) AS s),"
        " made AS (INSERT INTO plan_ranges (first_id, last_id, group_ids, requested_at, push)"
        "   SELECT min(computer_id), max(computer_id), $4::uuid[], $1, max(total) <= $3"
        "   FROM ids GROUP BY chunk ORDER BY chunk RETURNING 1)"
        " SELECT max(total) FROM ids",
        now,
        size,
        push_limit,
        None if everyone else [uuid.UUID(g) for g in group_ids],
    )
    return covered or 0


async def mark_all_dirty(conn: Connection, now: datetime, *, push_limit: int = PUSH_LIMIT) -> int:
    """Policies or the tree changed: every plan may have (rare, operator-driven)."""
    return await mark_groups_dirty(conn, [ROOT_GROUP_ID], now, push_limit=push_limit)


async def claim_dirty(conn: Connection, limit: int) -> list[tuple[str, datetime]]:
    """(computer, when it was marked) of plans to recompute, locked for this transaction."""
    rows = await conn.fetch(
        "SELECT computer_id, plan_dirty_at FROM computers WHERE plan_dirty_at IS NOT NULL"
        " ORDER BY plan_dirty_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [(r["computer_id"], r["plan_dirty_at"]) for r in rows]


async def claim_range(conn: Connection) -> PlanRange | None:
    """The oldest range nobody has taken, locked for this transaction (None: none left)."""
    row = await conn.fetchrow(
        "SELECT range_id, first_id, last_id, group_ids::text[] AS group_ids, push"
        " FROM plan_ranges ORDER BY range_id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    if row is None:
        return None
    return PlanRange(
        row["range_id"],
        row["first_id"],
        row["last_id"],
        None if row["group_ids"] is None else list(row["group_ids"]),
        row["push"],
    )


async def lock_range(conn: Connection, taken: PlanRange) -> list[tuple[str, datetime | None]]:
    """(computer, its dirty mark) of the range's computers, their rows locked in id order.

    The lock comes before anything is read, so of two transactions planning one computer
    the one that commits last read its inputs last: a plan is never replaced by an older one.
    """
    if taken.group_ids is None:
        rows = await conn.fetch(
            "SELECT computer_id, plan_dirty_at FROM computers"
            " WHERE computer_id BETWEEN $1 AND $2 ORDER BY computer_id FOR UPDATE",
            taken.first_id,
            taken.last_id,
        )
    else:
        rows = await conn.fetch(
            "SELECT computer_id, plan_dirty_at FROM computers"
            " WHERE computer_id BETWEEN $1 AND $2 AND computer_id IN"
            "   (SELECT computer_id FROM memberships WHERE group_id = ANY ($3::uuid[]))"
            " ORDER BY computer_id FOR UPDATE",
            taken.first_id,
            taken.last_id,
            [uuid.UUID(g) for g in taken.group_ids],
        )
    return [(r["computer_id"], r["plan_dirty_at"]) for r in rows]


async def finish_range(conn: Connection, taken: PlanRange) -> None:
    await conn.execute("DELETE FROM plan_ranges WHERE range_id = $1", taken.range_id)


async def pending(conn: Connection) -> int:
    """Computers marked and ranges waiting (a gauge of the planner's backlog)."""
    found: int = await conn.fetchval(
        "SELECT (SELECT count(*) FROM computers WHERE plan_dirty_at IS NOT NULL)"
        " + (SELECT count(*) FROM plan_ranges)"
    )
    return found


async def timers_kept(
    conn: Connection, computer_ids: Sequence[str]
) -> dict[tuple[str, str], datetime]:
    """The timers these computers have now, (computer, kind) -> due: re-planning writes only
    those its plans move (a root approval leaves most windows and deadlines where they were).
    Timers themselves are store/timers.py's; this is the planner's read of them."""
    rows = await conn.fetch(
        "SELECT computer_id, kind, due_at FROM timers WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    return {(r["computer_id"], r["kind"]): r["due_at"] for r in rows}


async def save_many(conn: Connection, rows: Sequence[PlanRow]) -> None:
    """Store the plans in one statement; a dirty mark clears only if nobody marked the
    computer again meanwhile (None: it clears only an absent mark)."""
    if not rows:
        return
    await conn.execute(
        "UPDATE computers c SET plan = p.plan::jsonb, plan_hash = p.digest,"
        " plan_dirty_at = CASE WHEN c.plan_dirty_at IS NOT DISTINCT FROM p.seen THEN NULL"
        "                      ELSE c.plan_dirty_at END"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
        "   AS p (computer_id, plan, digest, seen)"
        " WHERE c.computer_id = p.computer_id",
        [r.computer_id for r in rows],
        [r.plan_json for r in rows],
        [r.digest for r in rows],
        [r.dirty_seen for r in rows],
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
