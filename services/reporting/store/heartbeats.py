"""Service instances known from their heartbeats: what `lockgate status` shows."""

from __future__ import annotations

from datetime import datetime

from libs.contracts.reporting import ServiceInstance
from libs.contracts.system import ServiceHeartbeat
from libs.db.pool import Connection


async def record(conn: Connection, heartbeat: ServiceHeartbeat, now: datetime) -> None:
    """Count the heartbeat against its instance (the count is what exactly-once protects)."""
    await conn.execute(
        "INSERT INTO service_instances (instance_id, service, version, started_at, first_seen,"
        "                               last_seen, heartbeats_total, last_sequence,"
        "                               interval_seconds)"
        " VALUES ($1, $2, $3, $4, $5, $5, 1, $6, $7)"
        " ON CONFLICT (instance_id) DO UPDATE SET"
        "   version = EXCLUDED.version, last_seen = EXCLUDED.last_seen,"
        "   interval_seconds = EXCLUDED.interval_seconds,"
        "   heartbeats_total = service_instances.heartbeats_total + 1,"
        "   last_sequence = greatest(service_instances.last_sequence, EXCLUDED.last_sequence)",
        heartbeat.instance_id,
        heartbeat.service,
        heartbeat.version,
        heartbeat.started_at,
        now,
        heartbeat.sequence,
        heartbeat.interval_seconds,
    )


async def instances(
    conn: Connection, service: str | None, *, include_stale: bool, now: datetime
) -> list[ServiceInstance]:
    """Instances, most recently seen first; alive = seen within 3 announced intervals."""
    rows = await conn.fetch(
        "SELECT instance_id, service, version, started_at, first_seen, last_seen,"
        "       heartbeats_total, last_sequence, interval_seconds,"
        "       last_seen >= $2::timestamptz - make_interval(secs => 3 * interval_seconds) AS alive"
        " FROM service_instances WHERE $1::text IS NULL OR service = $1"
        " ORDER BY last_seen DESC, instance_id",
        service,
        now,
    )
    found = [ServiceInstance.model_validate(dict(row)) for row in rows]
    return found if include_stale else [i for i in found if i.alive]
