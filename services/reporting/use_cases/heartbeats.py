"""Service heartbeats in; which service instances are alive out (`lockgate status`)."""

from __future__ import annotations

from libs.contracts.reporting import ListServiceInstances, ServiceInstances
from libs.contracts.system import ServiceHeartbeat
from libs.service import HandlerContext
from services.reporting import store


async def record_heartbeat(ctx: HandlerContext, heartbeat: ServiceHeartbeat) -> None:
    """Keep the instance's latest heartbeat and count it."""
    await store.heartbeats.record(ctx.conn, heartbeat, ctx.now)


async def list_service_instances(
    ctx: HandlerContext, query: ListServiceInstances
) -> ServiceInstances:
    """Instances heard from, most recently seen first."""
    instances = await store.heartbeats.instances(
        ctx.conn, query.service, include_stale=query.include_stale, now=ctx.now
    )
    return ServiceInstances(instances=instances)
