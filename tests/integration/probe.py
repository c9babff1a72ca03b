"""A small service built on libs/ only, whose handlers misbehave on request (for tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import Field

from libs.contracts.spec import Contract, command, event
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
    ),
    commands=(Answer(DIVIDE, divide), Answer(SLEEP, sleep), Answer(EXPLODE, explode)),
    heartbeat=False,
)
