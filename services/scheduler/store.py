"""scheduler's queries (schema `scheduler` only)."""

from __future__ import annotations

from datetime import datetime

from libs.contracts.scheduler import AgentCheckin
from libs.db.pool import Connection


async def record_checkin(conn: Connection, checkin: AgentCheckin, now: datetime) -> bool:
    """Create or refresh the computer; True when this check-in registered it.

    One statement, so two replicas handling a new computer's first check-ins at once still
    register it exactly once.
    """
    inserted: bool = await conn.fetchval(
        "INSERT INTO computers (computer_id, hostname, os_version, timezone, agent_version,"
        "                       registered_at, last_checkin_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6)"
        " ON CONFLICT (computer_id) DO UPDATE SET"
        "   hostname = EXCLUDED.hostname, os_version = EXCLUDED.os_version,"
        "   timezone = EXCLUDED.timezone, agent_version = EXCLUDED.agent_version,"
        "   last_checkin_at = EXCLUDED.last_checkin_at,"
        "   checkins_total = computers.checkins_total + 1"
        " RETURNING xmax = 0",
        checkin.computer_id,
        checkin.hostname,
        checkin.os_version,
        checkin.timezone,
        checkin.agent_version,
        now,
    )
    return inserted
