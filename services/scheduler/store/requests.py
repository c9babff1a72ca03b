"""Installs users asked for on their computers (install_requests), kept with their answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from libs.contracts.agents import InstallRequest
from libs.db.pool import Connection


async def record(conn: Connection, request: InstallRequest, answered_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO install_requests (computer_id, update_id, requested_at, answered_at)"
        " VALUES ($1, $2, $3, $4)",
        request.computer_id,
        uuid.UUID(request.update_id),
        request.requested_at,
        answered_at,
    )
