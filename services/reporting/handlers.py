"""reporting's handler table: every message the service reacts to."""

from __future__ import annotations

from pathlib import Path

from libs.contracts.reporting import (
    LIST_SERVICE_INSTANCES,
    ListServiceInstances,
    ServiceInstances,
)
from libs.contracts.system import HEARTBEAT, PING, ServiceHeartbeat
from libs.service import Answer, HandlerContext, On, ServiceDefinition
from libs.service.system import answer_ping
from libs.settings import SERVICE_NAMES
from services.reporting import store


async def record_heartbeat(ctx: HandlerContext, heartbeat: ServiceHeartbeat) -> None:
    """Keep the instance's latest heartbeat and count it."""
    await store.record_heartbeat(ctx.conn, heartbeat, ctx.now)


async def list_service_instances(
    ctx: HandlerContext, query: ListServiceInstances
) -> ServiceInstances:
    """Instances heard from, most recently seen first."""
    instances = await store.service_instances(
        ctx.conn, query.service, include_stale=query.include_stale, now=ctx.now
    )
    return ServiceInstances(instances=instances)


SERVICE = ServiceDefinition(
    name="reporting",
    migrations=Path(__file__).parent / "migrations",
    events=tuple(
        On(HEARTBEAT[service], queue="service-heartbeats", handle=record_heartbeat)
        for service in SERVICE_NAMES
    ),
    commands=(
        Answer(PING["reporting"], answer_ping),
        Answer(LIST_SERVICE_INSTANCES, list_service_instances),
    ),
)
