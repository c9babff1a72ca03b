"""Where a service's time goes, seen through ServiceProcess's hooks and asyncpg's query logger.

A Trace is handed to ServiceProcess (on_step=trace.step, wrap_consumer=trace.consumer) and
wraps the service's definition (trace.definition): every handler, batch handler and
periodic task is timed, and each SQL statement it runs is timed too. Nothing in the services
or in libs is patched; the wrapped handlers keep their names, so inbox keys and metric
labels stay the same.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from asyncpg.connection import LoggedQuery

from libs.bus.bus import Callback
from libs.db.outbox import RELAY_STEPS
from libs.db.pool import Connection, Pool
from libs.service import Answer, Every, HandlerContext, On, ServiceDefinition, TaskContext
from libs.service import pipeline as p

SQL = "sql "
INTROSPECTION = SQL + "(asyncpg type introspection, inside the statement that needed it)"
"""asyncpg looks up a type the first time a connection meets it, within that statement's
own time: those lookups are shown, never added to the statements' total."""
_INTROSPECTION_PREFIXES = (
    "WITH RECURSIVE typeinfo_tree",
    "SELECT current_setting('jit')",
    "SELECT set_config('jit'",
)
SCOPE: ContextVar[str | None] = ContextVar("bench_trace_scope", default=None)
"""The traced handler or task running in this context; statements outside one are not kept."""


@dataclass(frozen=True)
class Span:
    name: str
    began: float
    """time.perf_counter() at its start."""
    seconds: float
    size: int = 1
    """Messages in a batch; 1 otherwise."""
    scope: str | None = None
    """For a SQL statement, the handler or task that ran it."""


def answer_for(definition: ServiceDefinition, type_: str) -> Answer[Any, Any]:
    """The route of `definition` that answers commands of `type_`."""
    return next(route for route in definition.commands if route.spec.type == type_)


def short(sql: str, width: int = 72) -> str:
    words = " ".join(sql.split())
    return words if len(words) <= width else words[: width - 3] + "..."


class Trace:
    """Spans of one instrumented run: pipeline and relay steps, handlers, tasks, statements."""

    def __init__(
        self,
        *,
        sql: bool = True,
        count_deliveries: bool = False,
        at_consume: Callable[[str], None] | None = None,
    ) -> None:
        self.spans: list[Span] = []
        self.consuming: dict[str, float] = {}
        """perf_counter() when each queue's consumer was about to be registered."""
        self.delivered: Counter[str] = Counter()
        """Deliveries finished per queue (acked, or handed to the dead-letter path)."""
        self.raised: Counter[str] = Counter()
        """Handler, batch or task calls that raised, per label."""
        self.first_call: dict[str, tuple[float, datetime]] = {}
        """perf_counter() and the wall clock when each label was first called."""
        self._sql = sql
        self._count = count_deliveries
        self._at_consume = at_consume
        self._pools: set[int] = set()
        self._pool_lock = asyncio.Lock()
        self._running: dict[object, tuple[str, float]] = {}
        """Calls of handlers and tasks that have not returned yet: label and start."""

    # ServiceProcess hooks

    def step(self, name: str, seconds: float) -> None:
        self.spans.append(Span(name, time.perf_counter() - seconds, seconds))

    def consumer(self, queue: str, callback: Callback) -> Callback:
        if self._at_consume is not None:
            self._at_consume(queue)
        self.consuming[queue] = time.perf_counter()
        if not self._count:
            return callback

        async def counted(message: Any) -> None:  # noqa: ANN401 - the broker's message type
            try:
                await callback(message)
            finally:
                self.delivered[queue] += 1

        return counted

    # the service's own functions

    def definition(self, definition: ServiceDefinition) -> ServiceDefinition:
        """The same service with every handler and task traced."""
        return replace(
            definition,
            events=tuple(self._on(route) for route in definition.events),
            commands=tuple(self._answer(route) for route in definition.commands),
            tasks=tuple(self._task(task) for task in definition.tasks),
        )

    def _timed(
        self, label: str, work: Callable[..., Awaitable[Any]], *, batch: bool = False
    ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(work)
        async def traced(context: HandlerContext | TaskContext, *args: Any) -> Any:  # noqa: ANN401
            if isinstance(context, HandlerContext):
                self.attach(context.conn)
            else:
                await self.attach_pool(context.pool)
            token = SCOPE.set(label)
            began = time.perf_counter()
            self.first_call.setdefault(label, (began, datetime.now(UTC)))
            running = object()
            self._running[running] = (label, began)
            try:
                return await work(context, *args)
            except BaseException:
                self.raised[label] += 1
                raise
            finally:
                SCOPE.reset(token)
                del self._running[running]
                size = len(args[0]) if batch else 1
                self.spans.append(Span(label, began, time.perf_counter() - began, size))

        return traced

    def _on(self, route: On[Any]) -> On[Any]:
        many = route.handle_many
        if many is not None:
            many = self._timed(f"batch {route.name}", many, batch=True)
        return replace(
            route, handle=self._timed(f"handler {route.name}", route.handle), handle_many=many
        )

    def _answer(self, route: Answer[Any, Any]) -> Answer[Any, Any]:
        return replace(route, handle=self._timed(f"handler {route.name}", route.handle))

    def _task(self, task: Every) -> Every:
        return replace(task, work=self._timed(f"task {task.name}", task.work))

    # SQL statements

    def attach(self, conn: Connection) -> None:
        """Time the statements run on `conn` inside a traced handler, task or scope()."""
        if self._sql:
            conn.add_query_logger(self._logged)

    async def attach_pool(self, pool: Pool) -> None:
        """Attach to every connection of a task's pool: all of them are borrowed once (the
        pool opens the missing ones), so whichever the task gets next is timed. A connection
        the pool opens later (after one idles out, 5 min) is not."""
        if not self._sql:
            return
        async with self._pool_lock:
            if id(pool) in self._pools:
                return
            borrowed = [await pool.acquire(timeout=60) for _ in range(pool.get_max_size())]
            for conn in borrowed:
                self.attach(conn)
            for conn in borrowed:
                await pool.release(conn)
            self._pools.add(id(pool))

    @contextmanager
    def scope(self, label: str) -> Iterator[None]:
        """Keep the statements run here (on attached connections) under `label`."""
        token = SCOPE.set(label)
        try:
            yield
        finally:
            SCOPE.reset(token)

    def _logged(self, record: LoggedQuery) -> None:
        scope = SCOPE.get()
        if scope is not None:
            began = time.perf_counter() - record.elapsed
            query = " ".join(record.query.split())
            nested = query.startswith(_INTROSPECTION_PREFIXES)
            name = INTROSPECTION if nested else SQL + short(query)
            self.spans.append(Span(name, began, record.elapsed, scope=scope))

    # figures

    def totals(
        self, *, since: float = float("-inf"), until: float = float("inf")
    ) -> dict[str, tuple[int, float]]:
        """(calls, seconds) per span name, for spans that began in [since, until); a handler
        or task call still running counts until `until` (or now)."""
        end = min(until, time.perf_counter())
        running = [Span(label, began, end - began) for label, began in self._running.values()]
        found: dict[str, tuple[int, float]] = {}
        for span in [*self.spans, *running]:
            if since <= span.began < until:
                calls, seconds = found.get(span.name, (0, 0.0))
                found[span.name] = (calls + 1, seconds + span.seconds)
        return found

    def named(self, name: str) -> list[Span]:
        return [span for span in self.spans if span.name == name]

    def breakdown(
        self, label: str, *, since: float = float("-inf"), until: float = float("inf")
    ) -> list[tuple[str, int, float]]:
        """(indented name, calls, seconds) of the spans that began in [since, until): the
        pipeline's steps around a handler `label` (not a batch or a task, which the pipeline
        does not run), nested as they run; the handler, batch or task `label` and each
        statement it ran; what of a step its parts leave ("rest"); the relay's steps."""
        totals = self.totals(since=since, until=until)

        def seconds(name: str) -> float:
            return totals.get(name, (0, 0.0))[1]

        def line(depth: int, name: str) -> tuple[str, int, float]:
            return ("  " * depth + name, *totals.get(name, (0, 0.0)))

        statements: dict[str, tuple[int, float]] = {}
        for span in self.spans:
            if span.scope == label and since <= span.began < until:
                calls, spent = statements.get(span.name, (0, 0.0))
                statements[span.name] = (calls + 1, spent + span.seconds)
        rows = [line(0, label)]
        rows += [
            (f"  {name}", calls, spent)
            for name, (calls, spent) in sorted(statements.items(), key=lambda item: -item[1][1])
        ]
        sql = sum(spent for name, (_, spent) in statements.items() if name != INTROSPECTION)
        rows.append(("  (rest: not SQL)", 0, seconds(label) - sql))
        if label.startswith("handler ") and p.STEP_PROCESS in totals:
            nested = [(f"    {name}", calls, spent) for name, calls, spent in rows]
            transaction = [p.STEP_CLAIM, label, p.STEP_STORE_REPLY]
            process = [p.STEP_DECODE, p.STEP_TRANSACTION, p.STEP_REPLY, p.STEP_ACK]
            rows = [line(0, p.STEP_PROCESS), line(1, p.STEP_DECODE), line(1, p.STEP_TRANSACTION)]
            rows += [line(2, p.STEP_CLAIM), *nested, line(2, p.STEP_STORE_REPLY)]
            rest = seconds(p.STEP_TRANSACTION) - sum(seconds(name) for name in transaction)
            rows.append(("    (rest: pool acquire, BEGIN, COMMIT)", 0, rest))
            rows += [line(1, p.STEP_REPLY), line(1, p.STEP_ACK)]
            rest = seconds(p.STEP_PROCESS) - sum(seconds(name) for name in process)
            rows.append(("  (rest)", 0, rest))
        rows += [(f"{name} (concurrent)", *totals[name]) for name in RELAY_STEPS if name in totals]
        return [row for row in rows if row[1] or "(rest" in row[0]]
