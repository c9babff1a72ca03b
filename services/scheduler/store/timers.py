"""Durable timers: one per (computer, kind), claimed with FOR UPDATE SKIP LOCKED.

Beside them (migrations/0010_timers_narrow.sql): `timer_plans`, what firing a computer's
timers needs from its plan (domain/timers.py TimerPlan), kept with the digest of the plan it
was made of, so that firing reads a narrow row instead of the plan; and `timer_marks`, when
a window and a deadline last fired, so that firing never rewrites the (wide) computer row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from libs.contracts.agents import ComputerPlan
from libs.db.pool import Connection
from services.scheduler.domain.restarts import RestartState
from services.scheduler.domain.timers import (
    DueTimer,
    Marks,
    Timer,
    TimerChange,
    TimerCount,
    TimerPlan,
)


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


async def keep_plans(conn: Connection, plans: Sequence[tuple[str, str, str]]) -> None:
    """Keep (computer, digest of its plan, TimerPlan JSON made of that plan) for firing its
    timers (domain/timers.py TimerPlan); the last one given per computer wins."""
    latest = {computer_id: (digest, firing) for computer_id, digest, firing in plans}
    if not latest:
        return
    await conn.execute(
        "INSERT INTO timer_plans (computer_id, plan_hash, firing)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
        " ON CONFLICT (computer_id) DO UPDATE"
        " SET plan_hash = EXCLUDED.plan_hash, firing = EXCLUDED.firing",
        list(latest),
        [digest for digest, _ in latest.values()],
        [firing for _, firing in latest.values()],
    )


async def plans_of(
    conn: Connection, computer_ids: Sequence[str]
) -> dict[str, tuple[ComputerPlan, str | None]]:
    """These computers' stored plans with their digests (computers never planned are left
    out): what a TimerPlan is made of when none is kept for the current plan."""
    rows = await conn.fetch(
        "SELECT computer_id, plan::text AS plan, plan_hash FROM computers"
        " WHERE computer_id = ANY ($1::text[]) AND plan IS NOT NULL",
        list(computer_ids),
    )
    return {
        r["computer_id"]: (ComputerPlan.model_validate_json(r["plan"]), r["plan_hash"])
        for r in rows
    }


CLAIM = (
    "WITH due AS ("
    "  SELECT computer_id, kind, due_at FROM timers WHERE due_at <= $1"
    "  ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED),"
    " mine AS MATERIALIZED (SELECT computer_id FROM computers"
    "  WHERE computer_id IN (SELECT computer_id FROM due)"
    "  ORDER BY computer_id FOR UPDATE SKIP LOCKED)"
    " SELECT d.computer_id, d.kind, d.due_at, p.firing, c.computer_id IS NOT NULL AS known,"
    "        c.restart_phase, c.restart_due_at, c.restart_prompts, c.restart_grace_until,"
    "        c.user_logged_on"
    " FROM due d"
    " LEFT JOIN computers c ON c.computer_id = d.computer_id"
    " LEFT JOIN timer_plans p ON p.computer_id = d.computer_id AND p.plan_hash = c.plan_hash"
    " WHERE c.computer_id IS NULL OR d.computer_id IN (SELECT computer_id FROM mine)"
    " ORDER BY d.due_at"
)
"""Due timers locked for this transaction (another replica skips them), each with its
computer's TimerPlan when the one kept was made of the plan the computer has now.

The computers' rows are locked too, and a timer whose computer another transaction holds
is left for the next round: everything else that writes a computer's timers (the planner,
the agents' reports) locks the computer's row first, so firing, which takes the timer
first, must never wait for a computer row (it would deadlock with them)."""


PARSED_LIMIT = 4096
"""TimerPlan texts kept parsed (computers that share a plan share its TimerPlan's text)."""
_parsed: dict[str, TimerPlan] = {}


def parsed(text: str) -> TimerPlan:
    """The TimerPlan of a kept text, validated once per distinct text (it is immutable)."""
    found = _parsed.get(text)
    if found is None:
        if len(_parsed) >= PARSED_LIMIT:
            _parsed.clear()
        found = _parsed[text] = TimerPlan.model_validate_json(text)
    return found


async def claim_due(conn: Connection, now: datetime, limit: int) -> list[DueTimer]:
    """Due timers, locked for this transaction: another replica skips them."""
    return [
        DueTimer(
            timer=Timer(r["computer_id"], r["kind"], r["due_at"]),
            plan=None if r["firing"] is None else parsed(r["firing"]),
            known=r["known"],
            restart=RestartState(
                r["restart_phase"],
                r["restart_due_at"],
                r["restart_prompts"],
                r["restart_grace_until"],
            )
            if r["known"]
            else RestartState("idle", None),
            user_logged_on=bool(r["user_logged_on"]),
        )
        for r in await conn.fetch(CLAIM, now, limit)
    ]


async def fired(conn: Connection, changes: Sequence[TimerChange], marks: Sequence[Marks]) -> None:
    """After firing claimed timers, in one statement: move them to their next due time (or
    drop them) and keep when windows and deadlines fired (one mark per computer)."""
    dropped = [c for c in changes if c.due_at is None]
    kept = [c for c in changes if c.due_at is not None]
    await conn.execute(
        "WITH dropped AS ("
        "  DELETE FROM timers t USING unnest($1::text[], $2::text[]) AS d (computer_id, kind)"
        "  WHERE t.computer_id = d.computer_id AND t.kind = d.kind),"
        " kept AS ("
        "  UPDATE timers t SET due_at = k.due_at"
        "  FROM unnest($3::text[], $4::text[], $5::timestamptz[]) AS k (computer_id, kind, due_at)"
        "  WHERE t.computer_id = k.computer_id AND t.kind = k.kind)"
        " INSERT INTO timer_marks (computer_id, last_window_at, deadline_fired_through)"
        " SELECT * FROM unnest($6::text[], $7::timestamptz[], $8::timestamptz[])"
        " ON CONFLICT (computer_id) DO UPDATE SET"
        "  last_window_at = coalesce(EXCLUDED.last_window_at, timer_marks.last_window_at),"
        "  deadline_fired_through ="
        "   coalesce(EXCLUDED.deadline_fired_through, timer_marks.deadline_fired_through)",
        [c.computer_id for c in dropped],
        [c.kind for c in dropped],
        [c.computer_id for c in kept],
        [c.kind for c in kept],
        [c.due_at for c in kept],
        [m.computer_id for m in marks],
        [m.last_window_at for m in marks],
        [m.deadline_fired_through for m in marks],
    )


async def counts(conn: Connection, now: datetime) -> list[TimerCount]:
    """Per kind: timers stored and timers due now (for the Prometheus gauges)."""
    rows = await conn.fetch(
        "SELECT kind, count(*) AS scheduled, count(*) FILTER (WHERE due_at <= $1) AS due"
        " FROM timers GROUP BY kind",
        now,
    )
    return [TimerCount(r["kind"], r["scheduled"], r["due"]) for r in rows]
