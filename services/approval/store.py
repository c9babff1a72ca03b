"""approval's queries (schema `approval` only)."""

from __future__ import annotations

from libs.contracts.scheduler import ComputerRegistered
from libs.db.pool import Connection


async def add_computer(conn: Connection, computer: ComputerRegistered) -> None:
    """Keep the computer; a repeated registration event changes nothing."""
    await conn.execute(
        "INSERT INTO computers (computer_id, hostname, registered_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (computer_id) DO NOTHING",
        computer.computer_id,
        computer.hostname,
        computer.registered_at,
    )
