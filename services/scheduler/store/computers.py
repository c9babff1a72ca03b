"""Computers known to the scheduler: registration by check-in, fired marks, restarts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from libs.contracts.scheduler import AgentCheckin
from libs.db.pool import Connection
from services.scheduler.domain.applicability import Inventory
from services.scheduler.domain.computers import ManagedComputer, PublishedPolicy
from services.scheduler.domain.restarts import RestartState

COLUMNS = (
    "computer_id, timezone, user_logged_on, last_checkin_at,"
    " (SELECT last_window_at FROM timer_marks m WHERE m.computer_id = computers.computer_id)"
    "  AS last_window_at,"
    " (SELECT deadline_fired_through FROM timer_marks m"
    "  WHERE m.computer_id = computers.computer_id) AS deadline_fired_through,"
    " plan_hash, restart_phase, restart_due_at, restart_prompts, restart_grace_until,"
    " agent_version, architecture, operating_system, free_disk_bytes, memory_bytes,"
    " published_policy_id::text AS published_policy_id, published_policy,"
    " published_spread_hours"
)
"""The columns `from_row` reads (the fired marks are kept in timer_marks: store/timers.py)."""


def from_row(r: asyncpg.Record) -> ManagedComputer:
    return ManagedComputer(
        computer_id=r["computer_id"],
        timezone=r["timezone"],
        user_logged_on=r["user_logged_on"],
        last_checkin_at=r["last_checkin_at"],
        last_window_at=r["last_window_at"],
        deadline_fired_through=r["deadline_fired_through"],
        plan_hash=r["plan_hash"],
        restart=RestartState(
            r["restart_phase"],
            r["restart_due_at"],
            r["restart_prompts"],
            r["restart_grace_until"],
        ),
        agent_version=r["agent_version"],
        inventory=Inventory(
            architecture=r["architecture"],
            operating_system=r["operating_system"],
            free_disk_bytes=r["free_disk_bytes"],
            memory_bytes=r["memory_bytes"],
        ),
        published_policy=None
        if r["published_policy"] is None
        else PublishedPolicy(
            r["published_policy_id"], r["published_policy"], r["published_spread_hours"]
        ),
    )


async def record_checkin(conn: Connection, checkin: AgentCheckin, now: datetime) -> bool:
    """Create or refresh the computer (its inventory included) and mark its plan for
    recomputing; True when this check-in registered it.

    One statement, so two replicas handling a new computer's first check-ins at once still
    register it exactly once.
    """
    inserted: bool = await conn.fetchval(
        "INSERT INTO computers (computer_id, hostname, os_version, timezone, agent_version,"
        "                       registered_at, last_checkin_at, hardware_id, architecture,"
        "                       user_logged_on, plan_dirty_at, operating_system,"
        "                       free_disk_bytes, memory_bytes)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $6, $10, $11, $12)"
        " ON CONFLICT (computer_id) DO UPDATE SET"
        "   hostname = EXCLUDED.hostname, os_version = EXCLUDED.os_version,"
        "   timezone = EXCLUDED.timezone, agent_version = EXCLUDED.agent_version,"
        "   last_checkin_at = EXCLUDED.last_checkin_at, hardware_id = EXCLUDED.hardware_id,"
        "   architecture = EXCLUDED.architecture, user_logged_on = EXCLUDED.user_logged_on,"
        "   operating_system = EXCLUDED.operating_system,"
        "   free_disk_bytes = EXCLUDED.free_disk_bytes, memory_bytes = EXCLUDED.memory_bytes,"
        "   checkins_total = computers.checkins_total + 1"
        " RETURNING xmax = 0",
        checkin.computer_id,
        checkin.hostname,
        checkin.os_version,
        checkin.timezone,
        checkin.agent_version,
        now,
        checkin.hardware_id,
        checkin.architecture,
        checkin.user_logged_on,
        checkin.operating_system,
        checkin.free_disk_bytes,
        checkin.memory_bytes,
    )
    return inserted


async def known(conn: Connection, computer_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM computers WHERE computer_id = $1)", computer_id
    )
    return found


async def find(conn: Connection, computer_ids: Sequence[str]) -> dict[str, ManagedComputer]:
    """These computers, by id (unknown ones are left out)."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM computers WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    return {r["computer_id"]: from_row(r) for r in rows}


async def set_published_policies(
    conn: Connection, announced: Sequence[tuple[str, PublishedPolicy]]
) -> None:
    """Remember the policy in force announced for each of these computers (one statement)."""
    if not announced:
        return
    await conn.execute(
        "UPDATE computers c SET published_policy_id = k.p, published_policy = k.n,"
        " published_spread_hours = k.s"
        " FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[]) AS k (c, p, n, s)"
        " WHERE c.computer_id = k.c",
        [computer_id for computer_id, _ in announced],
        [policy.policy_id for _, policy in announced],
        [policy.name for _, policy in announced],
        [policy.deadline_spread_hours for _, policy in announced],
    )


async def set_user_logged_on(conn: Connection, computer_id: str, value: bool) -> None:
    await conn.execute(
        "UPDATE computers SET user_logged_on = $2 WHERE computer_id = $1", computer_id, value
    )


async def set_restart(conn: Connection, computer_id: str, state: RestartState) -> None:
    await conn.execute(
        "UPDATE computers SET restart_phase = $2, restart_due_at = $3, restart_prompts = $4,"
        " restart_grace_until = $5 WHERE computer_id = $1",
        computer_id,
        state.phase,
        state.due_at,
        state.prompts,
        state.grace_until,
    )


async def restarts_pending(conn: Connection) -> int:
    found: int = await conn.fetchval("SELECT count(*) FROM computers WHERE restart_phase <> 'idle'")
    return found
