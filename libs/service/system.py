"""What every service does on its own: answer pings and publish heartbeats."""

from __future__ import annotations

from libs.contracts.envelope import source_of
from libs.contracts.system import HEARTBEAT, Ping, Pong, ServiceHeartbeat
from libs.db.outbox import Outbox
from libs.db.pool import Pool
from libs.service.handlers import HandlerContext, Instance


async def answer_ping(ctx: HandlerContext, ping: Ping) -> Pong:
    """Answer from the database, so a pong proves broker, process and database all work."""
    database_time = await ctx.conn.fetchval("SELECT now()")
    return Pong(
        service=ctx.instance.service,
        instance_id=ctx.instance.instance_id,
        version=ctx.instance.version,
        started_at=ctx.instance.started_at,
        database_time=database_time,
        echo=ping.echo,
    )


async def emit_heartbeat(
    pool: Pool, instance: Instance, sequence: int, interval_seconds: float
) -> None:
    """Write one heartbeat event to the outbox (the relay publishes it)."""
    async with pool.acquire() as conn, conn.transaction():
        outbox = Outbox(conn, schema=instance.service, source=source_of(instance.service))
        await outbox.add(
            HEARTBEAT[instance.service],
            ServiceHeartbeat(
                service=instance.service,
                instance_id=instance.instance_id,
                version=instance.version,
                started_at=instance.started_at,
                sequence=sequence,
                interval_seconds=interval_seconds,
            ),
            subject=instance.instance_id,
        )
