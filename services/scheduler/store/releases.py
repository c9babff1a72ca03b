"""Versions of the Lockgate agent (agent_releases), newest first."""

from __future__ import annotations

from datetime import datetime

from libs.contracts.policies import AgentRelease
from libs.db.pool import Connection
from services.scheduler.domain.agent_updates import Version


async def save(conn: Connection, release: AgentRelease, key: Version) -> None:
    await conn.execute(
        "INSERT INTO agent_releases (version, major, minor, patch, mandatory, notes, published_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        release.version,
        *key,
        release.mandatory,
        release.notes,
        release.published_at,
    )


async def read_all(conn: Connection) -> list[AgentRelease]:
    """Every release, newest version first."""
    rows = await conn.fetch(
        "SELECT version, mandatory, notes, published_at FROM agent_releases"
        " ORDER BY major DESC, minor DESC, patch DESC"
    )
    return [AgentRelease(**dict(r)) for r in rows]


async def latest_mandatory(conn: Connection) -> tuple[str, datetime] | None:
    """The newest mandatory agent version and when it was published."""
    row = await conn.fetchrow(
        "SELECT version, published_at FROM agent_releases WHERE mandatory"
        " ORDER BY major DESC, minor DESC, patch DESC LIMIT 1"
    )
    return None if row is None else (row["version"], row["published_at"])
