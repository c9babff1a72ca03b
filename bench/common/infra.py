"""Where a benchmark runs: a vhost and a database of its own, removed afterwards, and on what."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import aio_pika
import asyncpg

from libs.db.pool import database_name
from libs.observability.logging import configure_logging
from libs.settings import Settings
from tests.support.infra import Infra, local_infra

POSTGRES_SETTINGS = ("shared_buffers", "synchronous_commit", "fsync", "work_mem")


class BenchFailure(RuntimeError):
    """A result of the benchmark is wrong: its figures would not mean anything."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise BenchFailure(what)


def description(doc: str | None) -> str:
    """The first paragraph of a benchmark's docstring, for its --help."""
    return (doc or "").split("\n\n", 1)[0]


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, *, timeout: float, poll: float = 0.01
) -> None:
    """Poll `condition` every `poll` seconds; fail naming `what` after `timeout`."""
    deadline = time.perf_counter() + timeout
    while not await condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s")
        await asyncio.sleep(poll)


async def unpublished(conn: asyncpg.Connection, schema: str) -> int:
    """Rows of `schema`'s outbox the relay has not published yet."""
    pending: int = await conn.fetchval(
        f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"
    )
    return pending


@contextmanager
def fresh_infra() -> Iterator[Infra]:
    """A vhost and a database of our own, both removed at the end, even on failure."""
    with local_infra(Settings()) as infra:
        print(f"vhost {infra.vhost}, database {database_name(infra.database_url)}", flush=True)
        yield infra


def in_fresh_infra(work: Callable[[Infra], Coroutine[Any, Any, None]]) -> None:
    """Run `work` in its own event loop, vhost and database."""
    with fresh_infra() as infra:
        asyncio.run(work(infra))


def bench_main(body: Callable[[], None]) -> None:
    """Run a benchmark's body: quiet logs, its total time at the end, exit 1 on a wrong result."""
    configure_logging("bench", "warning")
    started = time.perf_counter()
    try:
        body()
    except BenchFailure as failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s", file=sys.stderr)


async def environment(infra: Infra) -> dict[str, str]:
    """Date, machine, load and versions, printed above every benchmark's figures."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        postgres = str(await conn.fetchval("SHOW server_version"))
        knobs = [f"{name}={await conn.fetchval(f'SHOW {name}')}" for name in POSTGRES_SETTINGS]
    finally:
        await conn.close()
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        transport = connection.transport
        rabbit = "?" if transport is None else transport.connection.server_properties["version"]
    finally:
        await connection.close()
    loads = " ".join(f"{load:.2f}" for load in os.getloadavg())
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.node()}",
        "python": platform.python_version(),
        "load avg": f"{loads} (1/5/15 min, at start)",
        "versions": (
            f"aio-pika {version('aio-pika')}, asyncpg {version('asyncpg')}, "
            f"pydantic {version('pydantic')}, RabbitMQ "
            f"{rabbit.decode() if isinstance(rabbit, bytes) else rabbit}, PostgreSQL {postgres}"
        ),
        "postgres": ", ".join(knobs),
    }
