"""The read copy of managed computers: registrations, check-in inventory, policy in force,
last contact, and per-computer counters (the fleet list's columns)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from libs.contracts.scheduler import AgentCheckin, ComputerPolicyChanged, ComputerRegistered
from libs.db.pool import Connection
from libs.domain.deadline_spread import spread_offset
from services.reporting.domain.counts import ComputerMove

COLUMNS = {
    "installed": "installed",
    "needed": "needed",
    "failed": "failed",
    "installed_pending_restart": "pending_restart",
    "not_applicable": "not_applicable",
}
"""The per-computer counter of each state."""


async def put(conn: Connection, computer: ComputerRegistered) -> None:
    """Keep the computer (registered at its first check-in: its first contact); a repeated
    registration changes nothing."""
    await conn.execute(
        "INSERT INTO computers (computer_id, hostname, registered_at, timezone, last_contact_at)"
        " VALUES ($1, $2, $3, $4, $3) ON CONFLICT (computer_id) DO NOTHING",
        computer.computer_id,
        computer.hostname,
        computer.registered_at,
        computer.timezone,
    )


async def check_in(conn: Connection, checkins: Sequence[AgentCheckin], now: datetime) -> None:
    """One statement for a batch (one check-in per computer, sorted by id): its inventory
    now, and contact at `now`; a computer not known yet is kept (its registration may come
    later)."""
    if not checkins:
        return
    await conn.execute(
        "INSERT INTO computers (computer_id, hostname, registered_at, operating_system,"
        " os_version, architecture, agent_version, timezone, last_contact_at)"
        " SELECT k.c, k.h, $8, k.os, k.v, k.a, k.av, k.tz, $8"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        "   $7::text[]) AS k (c, h, os, v, a, av, tz) ORDER BY k.c"
        " ON CONFLICT (computer_id) DO UPDATE SET hostname = EXCLUDED.hostname,"
        " operating_system = EXCLUDED.operating_system, os_version = EXCLUDED.os_version,"
        " architecture = EXCLUDED.architecture, agent_version = EXCLUDED.agent_version,"
        " timezone = EXCLUDED.timezone,"
        " last_contact_at = greatest(computers.last_contact_at, EXCLUDED.last_contact_at)",
        [c.computer_id for c in checkins],
        [c.hostname for c in checkins],
        [c.operating_system for c in checkins],
        [c.os_version for c in checkins],
        [c.architecture for c in checkins],
        [c.agent_version for c in checkins],
        [c.timezone for c in checkins],
        now,
    )


async def set_policy(conn: Connection, change: ComputerPolicyChanged) -> None:
    """The computer's policy in force and its own deadline's offset (from the policy's
    spread), unless a newer one is already kept. A computer not known yet is kept under its
    id (its check-ins, on their own queue, bring its name)."""
    offset = spread_offset(change.computer_id, change.deadline_spread_hours)
    await conn.execute(
        "INSERT INTO computers (computer_id, hostname, registered_at, last_contact_at, policy,"
        " policy_changed_at, deadline_offset_seconds) VALUES ($1, $1, $3, $3, $2, $3, $4)"
        " ON CONFLICT (computer_id) DO UPDATE SET policy = EXCLUDED.policy,"
        " policy_changed_at = EXCLUDED.policy_changed_at,"
        " deadline_offset_seconds = EXCLUDED.deadline_offset_seconds"
        " WHERE computers.policy_changed_at IS NULL"
        " OR computers.policy_changed_at <= EXCLUDED.policy_changed_at",
        change.computer_id,
        change.policy_name,
        change.changed_at,
        int(offset.total_seconds()),
    )


def computer_columns(ids: Sequence[str], moves: Sequence[ComputerMove]) -> list[list[int]]:
    """Per counter column, the move of each computer in `ids` (in that order)."""
    by_computer = {c: dict.fromkeys(COLUMNS.values(), 0) for c in ids}
    for move in moves:
        column = COLUMNS.get(move.state)
        if column is not None and move.computer_id in by_computer:
            by_computer[move.computer_id][column] += move.n
    return [[by_computer[c][col] for c in ids] for col in COLUMNS.values()]


_MOVE = (
    "installed = c.installed + k.i, needed = c.needed + k.n, failed = c.failed + k.f,"
    " pending_restart = c.pending_restart + k.p, not_applicable = c.not_applicable + k.na"
    " FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[])"
    "   AS k (c, i, n, f, p, na) WHERE c.computer_id = k.c"
)


async def move_counters(conn: Connection, moves: Sequence[ComputerMove]) -> None:
    """Move per-computer counters only (a restart, a deleted update's states)."""
    if not moves:
        return
    ids = sorted({m.computer_id for m in moves})
    await conn.execute("UPDATE computers c SET " + _MOVE, ids, *computer_columns(ids, moves))


async def last_contact(conn: Connection, computer_id: str) -> datetime | None:
    """The computer's last check-in or report (None: unknown computer)."""
    found: datetime | None = await conn.fetchval(
        "SELECT last_contact_at FROM computers WHERE computer_id = $1", computer_id
    )
    return found


async def count(conn: Connection) -> int:
    """Managed computers."""
    found: int = await conn.fetchval("SELECT count(*) FROM computers")
    return found


async def count_silent(conn: Connection, silent_since: datetime) -> int:
    """Managed computers with no contact since `silent_since` (not reporting)."""
    found: int = await conn.fetchval(
        "SELECT count(*) FROM computers WHERE last_contact_at < $1", silent_since
    )
    return found
