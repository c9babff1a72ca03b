"""Messages every service speaks: ping over RPC, periodic heartbeats, RPC errors."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, Field

from libs.contracts.names import SERVICE_NAMES, ServiceName
from libs.contracts.spec import CommandSpec, Contract, EventSpec, command, event


class Ping(Contract):
    """Asks a service to prove it is up: it answers from its database."""

    echo: str | None = Field(
        default=None, max_length=200, description="Text the service returns unchanged."
    )


class Pong(Contract):
    """A service's answer to a ping."""

    service: str = Field(description="Name of the service that answered.")
    instance_id: str = Field(description="Id of the answering process (one per replica).")
    version: str = Field(description="Lockgate version the process runs.")
    started_at: AwareDatetime = Field(description="When the answering process started.")
    database_time: AwareDatetime = Field(description="now() read from the service's database.")
    echo: str | None = Field(default=None, description="The ping's echo text.")


class ServiceHeartbeat(Contract):
    """Published by every service instance at a fixed interval, through its outbox."""

    service: ServiceName = Field(description="Name of the service sending it.")
    instance_id: str = Field(min_length=1, max_length=100, description="Id of the process.")
    version: str = Field(description="Lockgate version the process runs.")
    started_at: AwareDatetime = Field(description="When the process started.")
    sequence: int = Field(ge=1, description="1 for the process's first heartbeat, then +1 each.")
    interval_seconds: float = Field(
        default=15.0, gt=0, description="Seconds until this instance's next heartbeat."
    )


class RpcError(Contract):
    """The reply to a command that failed: what went wrong, named precisely."""

    error: str = Field(description="Error class, e.g. `InvalidMessage` or `NotFound`.")
    message: str = Field(description="Human-readable explanation naming field, value, allowed.")
    field: str | None = Field(default=None, description="The input field at fault, if any.")


def ping_spec(service: ServiceName) -> CommandSpec[Ping, Pong]:
    """`<service>.service.ping.v1`, answered by every service (`<service>.ping.v1` until v2)."""
    return command(
        service,
        "service",
        "ping",
        Ping,
        Pong,
        summary=f"Ask {service} to answer from its database (liveness through the backbone).",
        formerly=(f"{service}.ping.v1",),
    )


def heartbeat_spec(service: ServiceName) -> EventSpec[ServiceHeartbeat]:
    """`<service>.service.heartbeat.v1`, published by every service instance."""
    return event(
        service,
        "service",
        "heartbeat",
        ServiceHeartbeat,
        summary=f"An instance of {service} is alive; reporting counts it per instance.",
        subject="the instance id",
        example=ServiceHeartbeat(
            service=service,
            instance_id=f"lockgate-{service}-1-1-3f9a2c",
            version="0.1.0",
            started_at=datetime(2026, 2, 10, 7, 58, 12, tzinfo=UTC),
            sequence=137,
            interval_seconds=15.0,
        ),
    )


PING: dict[str, CommandSpec[Ping, Pong]] = {s: ping_spec(s) for s in SERVICE_NAMES}
HEARTBEAT: dict[str, EventSpec[ServiceHeartbeat]] = {s: heartbeat_spec(s) for s in SERVICE_NAMES}
