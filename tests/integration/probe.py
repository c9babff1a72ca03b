"""Small services built on libs/ only, whose handlers misbehave on request (for tests).

PROBE counts keys and divides numbers; AGENTS_PROBE takes every agent message type of the
registry (agent.<id>.status.v1 through the batching pipeline, the others one by one) and
records whom each one spoke for, so tests see what the pipeline lets through.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import Field

from libs.contracts.agents import AGENT_STATUS
from libs.contracts.envelope import Envelope
from libs.contracts.registry import REGISTRY
from libs.contracts.spec import AgentEventSpec, Contract, command, event
from libs.service import Answer, HandlerContext, InvalidInput, On, ServiceDefinition

NAME = "probe"


class Key(Contract):
    """Names the counter a message is about."""

    key: str = Field(description="Counter name.")


class Divide(Contract):
    """Ask for a quotient."""

    dividend: int = Field(description="Number divided.")
    divisor: int = Field(description="Number it is divided by; not zero.")


class Quotient(Contract):
    """A quotient."""

    value: float = Field(description="dividend / divisor")


class Sleep(Contract):
    """Ask the service to hold the request for a while."""

    seconds: float = Field(description="How long to sleep.")


COUNT = event(
    NAME,
    "counter",
    "count",
    Key,
    summary="Count once.",
    example=Key(key="k"),
    formerly=("probe.count.v1",),
)
COUNTED = event(NAME, "counter", "counted", Key, summary="Counted.", example=Key(key="k"))
FAIL = event(NAME, "counter", "fail", Key, summary="Always raises.", example=Key(key="k"))
REFUSE = event(NAME, "counter", "refuse", Key, summary="Always wrong.", example=Key(key="k"))
STALL = event(NAME, "counter", "stall", Key, summary="Always times out.", example=Key(key="k"))
DIVIDE = command(
    NAME, "math", "divide", Divide, Quotient, summary="Divide.", formerly=("probe.divide.v1",)
)
EXPLODE = command(NAME, "math", "explode", Key, Key, summary="Always crashes.")
SLEEP = command(NAME, "clock", "sleep", Sleep, Key, summary="Sleep.")


async def count(ctx: HandlerContext, message: Key) -> None:
    await ctx.conn.execute(
        "INSERT INTO counts (key, n) VALUES ($1, 1)"
        " ON CONFLICT (key) DO UPDATE SET n = counts.n + 1",
        message.key,
    )
    await ctx.outbox.add(COUNTED, message, subject=message.key)


async def fail(_: HandlerContext, message: Key) -> None:
    raise RuntimeError(f"disk on fire while counting {message.key}")


async def stall(ctx: HandlerContext, message: Key) -> None:
    """A statement that always outlives its timeout while the database is healthy."""
    await ctx.conn.execute("SET LOCAL statement_timeout = 20")
    await ctx.conn.execute("SELECT pg_sleep(1), $1::text", message.key)


async def refuse(_: HandlerContext, message: Key) -> None:
    raise InvalidInput(f"key {message.key!r} is not allowed: no key is", field="key")


async def divide(_: HandlerContext, request: Divide) -> Quotient:
    if request.divisor == 0:
        raise InvalidInput("divisor 0 is not allowed: use any other integer", field="divisor")
    return Quotient(value=request.dividend / request.divisor)


async def explode(_: HandlerContext, request: Key) -> Key:
    raise RuntimeError(f"boom on {request.key}")


async def sleep(_: HandlerContext, request: Sleep) -> Key:
    await asyncio.sleep(request.seconds)
    return Key(key="slept")


PROBE = ServiceDefinition(
    name=NAME,
    migrations=Path(__file__).parent / "probe_migrations",
    events=(
        On(COUNT, queue="inputs", handle=count),
        On(FAIL, queue="inputs", handle=fail),
        On(REFUSE, queue="inputs", handle=refuse),
        On(STALL, queue="inputs", handle=stall),
    ),
    commands=(Answer(DIVIDE, divide), Answer(SLEEP, sleep), Answer(EXPLODE, explode)),
    heartbeat=False,
)

AGENT_SPECS: tuple[AgentEventSpec[Contract], ...] = tuple(
    sorted(
        (spec for spec in REGISTRY.events.values() if isinstance(spec, AgentEventSpec)),
        key=lambda spec: spec.type,
    )
)
"""Every agent message type the registry knows."""


def heard_key(message_type: str, computer_id: str) -> str:
    """The counter bumped by an agent message of `message_type` speaking for `computer_id`."""
    return f"heard/{message_type}/{computer_id}"


async def _hear(ctx: HandlerContext, envelope: Envelope, body: Contract) -> None:
    """Count the message under the computer its body speaks for."""
    spec = REGISTRY.event(envelope.type)
    assert isinstance(spec, AgentEventSpec), "only agent routes lead here"
    await ctx.conn.execute(
        "INSERT INTO counts (key, n) VALUES ($1, 1)"
        " ON CONFLICT (key) DO UPDATE SET n = counts.n + 1",
        heard_key(envelope.type, spec.computer_id_of(body)),
    )


async def hear(ctx: HandlerContext, body: Contract) -> None:
    await _hear(ctx, ctx.envelope, body)


async def hear_many(ctx: HandlerContext, messages: list[tuple[Envelope, Contract]]) -> None:
    for envelope, body in messages:
        await _hear(ctx, envelope, body)


AGENTS_PROBE = ServiceDefinition(
    name="probeagents",
    migrations=Path(__file__).parent / "probe_migrations",
    events=tuple(
        On(
            spec,
            queue="agents",
            handle=hear,
            handle_many=hear_many if spec.type == AGENT_STATUS.type else None,
            sends_rejected=True,
        )
        for spec in AGENT_SPECS
    ),
    heartbeat=False,
)
