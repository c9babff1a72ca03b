"""A service's own handler run outside the service, on a plain connection: timed or EXPLAINed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg

from bench.common.tracing import short
from libs.contracts.envelope import Envelope, source_of
from libs.db.outbox import Outbox
from libs.db.pool import Connection
from libs.service import HandlerContext
from libs.service.handlers import Instance
from libs.settings import Settings


async def explain(conn: asyncpg.Connection, sql: str, *args: object) -> str:
    """The plan of one statement, run for real inside a savepoint that is rolled back."""
    savepoint = conn.transaction()
    await savepoint.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
    finally:
        await savepoint.rollback()
    return "\n".join(str(row[0]) for row in rows)


class Explaining:
    """Stands in for a connection: each statement first runs under EXPLAIN (ANALYZE, BUFFERS)
    in a savepoint that is rolled back, then for real, so later ones see its effects. Hand
    `connection` to a handler to get the plans of everything it runs, in order."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.plans: list[tuple[str, str]] = []

    @property
    def connection(self) -> Connection:
        return cast(Connection, self)

    async def _plan(self, sql: str, args: tuple[object, ...]) -> None:
        self.plans.append((sql, await explain(self._conn, sql, *args)))

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        await self._plan(sql, args)
        return await self._conn.fetch(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> object:
        await self._plan(sql, args)
        return await self._conn.fetchval(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        await self._plan(sql, args)
        return await self._conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: object) -> str:
        await self._plan(sql, args)
        return await self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the rest of the connection, as is
        return getattr(self._conn, name)


def handler_context(
    conn: Connection, service: str, envelope: Envelope, settings: Settings | None = None
) -> HandlerContext:
    """What one of `service`'s handlers gets, on `conn` (whose search path is `service`)."""
    now = datetime.now(UTC)
    return HandlerContext(
        conn=conn,
        envelope=envelope,
        outbox=Outbox(conn, schema=service, source=source_of(service)),
        now=now,
        instance=Instance(service, "bench", "0", now),
        settings=settings or Settings(),
    )


async def explained(
    url: str, schema: str, work: Callable[[Connection], Awaitable[object]]
) -> list[tuple[str, str]]:
    """The plans of every statement `work` runs on a connection whose search path is
    `schema`, in one transaction that is rolled back."""
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    explaining = Explaining(conn)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await work(explaining.connection)
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
    return explaining.plans


async def explain_handler(
    url: str,
    service: str,
    envelope: Envelope,
    handle: Callable[[HandlerContext], Awaitable[object]],
    settings: Settings | None = None,
) -> list[tuple[str, str]]:
    """The plans of every statement `handle` runs, given the context one of `service`'s
    handlers gets, in one transaction that is rolled back."""
    return await explained(
        url, service, lambda conn: handle(handler_context(conn, service, envelope, settings))
    )


def execution_ms(plan: str) -> float:
    for line in plan.splitlines():
        if line.startswith("Execution Time:"):
            return float(line.split()[2])
    return float("nan")


def print_plans(title: str, plans: list[tuple[str, str]], *, full: bool = True) -> None:
    print(f"\n{title}")
    for sql, plan in plans:
        print(f"-- {execution_ms(plan):8.2f} ms  {short(sql, 90)}")
        if full:
            for line in plan.splitlines():
                print(f"     {line if len(line) <= 160 else line[:157] + '...'}")
