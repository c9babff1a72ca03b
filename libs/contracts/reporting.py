"""Reporting's queries."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from libs.contracts.spec import CommandSpec, Contract
from libs.settings import ServiceName


class ListServiceInstances(Contract):
    """Which service instances reporting has heard from."""

    service: ServiceName | None = Field(default=None, description="Only this service, if set.")
    include_stale: bool = Field(
        default=False, description="Also list instances not heard from for 3 intervals."
    )


class ServiceInstance(Contract):
    """What reporting knows of one service instance from its heartbeats."""

    service: ServiceName = Field(description="Service name.")
    instance_id: str = Field(description="Process id of the instance.")
    version: str = Field(description="Version it last reported.")
    started_at: AwareDatetime = Field(description="When the instance started.")
    first_seen: AwareDatetime = Field(description="When its first heartbeat was stored.")
    last_seen: AwareDatetime = Field(description="When its latest heartbeat was stored.")
    heartbeats_total: int = Field(ge=0, description="Heartbeats stored for it.")
    last_sequence: int = Field(ge=0, description="Highest heartbeat sequence seen.")
    interval_seconds: float = Field(description="Heartbeat interval the instance announced.")
    alive: bool = Field(description="Heard from within the last 3 heartbeat intervals.")


class ServiceInstances(Contract):
    """Reply to ListServiceInstances, most recently seen first."""

    instances: list[ServiceInstance] = Field(description="Known instances.")


LIST_SERVICE_INSTANCES: CommandSpec[ListServiceInstances, ServiceInstances] = CommandSpec(
    type="reporting.service-instances.list.v1",
    request=ListServiceInstances,
    reply=ServiceInstances,
    handler="reporting",
    summary="List the service instances reporting has heard from, with their last heartbeat.",
)
