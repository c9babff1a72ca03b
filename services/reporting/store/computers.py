"""The read copy of managed computers (from the scheduler's registrations)."""

from __future__ import annotations

from collections.abc import Sequence

from libs.contracts.scheduler import ComputerRegistered
from libs.db.pool import Connection


async def put(conn: Connection, computer: ComputerRegistered) -> None:
    """Keep the computer; a repeated registration changes nothing."""
    await conn.execute(
        "INSERT INTO computers (computer_id, hostname, registered_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (computer_id) DO NOTHING",
        computer.computer_id,
        computer.hostname,
        computer.registered_at,
    )


async def known(conn: Connection, computer_ids: Sequence[str]) -> set[str]:
    """Those of these computers reporting knows."""
    rows = await conn.fetch(
        "SELECT computer_id FROM computers WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    return {row["computer_id"] for row in rows}


async def count(conn: Connection) -> int:
    """Managed computers."""
    found: int = await conn.fetchval("SELECT count(*) FROM computers")
    return found
