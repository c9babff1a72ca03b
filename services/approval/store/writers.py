"""One approval writer at a time: tree, approvals and rules change under one lock."""

from __future__ import annotations

from libs.db.pool import Connection


async def lock(conn: Connection) -> None:
    """Serialise approval writers (tree, approvals, rules) for this transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lockgate.approval'))")
