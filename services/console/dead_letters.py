"""Dead letters as a tool: the console's dead-letter keeper, its store and its API.

The keeper consumes every `<queue>.dlq` of the services' handler tables and keeps each
message in the console's `dead_letters` table, committing before the ack (at least once; a
redelivered copy of the same dead-lettering changes nothing, since it carries the same
failure time). One row per message id and queue: a message dead-lettered again after a
replay waits again with one more attempt and its new reason.

Listing, showing and purging are SQL. A replay goes back through the normal path: the
message is published again, with a confirm, to the exchange and routing key it was first
published with, its dead-letter headers stripped and its message id kept (so an inbox that
had in fact handled it skips it), and only then is the row marked replayed. The row stays
locked meanwhile, so a replayed message that fails again at once waits for that mark.

`lockgate_dead_letters_waiting{queue="<queue>.dlq"}` counts the waiting rows per
dead-letter queue (every replica of the console reports the same numbers; alerts take the
maximum). See docs/architecture.md, "Dead letters".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel
from aio_pika.exceptions import AMQPError
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import JsonValue

from libs.bus import Bus
from libs.bus.bus import PublishFailed
from libs.bus.replay import replay_headers
from libs.contracts.api import PREFIX
from libs.contracts.names import DLQ_SUFFIX, Exchange, dead_letter_queue_name
from libs.db.pool import Pool
from libs.observability import metrics
from libs.service.pipeline import REASON_CLASS_HEADER, REASON_HEADER
from libs.settings import SERVICE_NAMES
from services.console import auth
from services.console.dead_letter_models import (
    DeadLetter,
    DeadLetterList,
    DeadLetterSummary,
    PurgeResult,
    QueueCount,
    ReplayAll,
    ReplayFailure,
    ReplayResult,
    State,
)
from services.console.models import Problem

if TYPE_CHECKING:
    from services.console.app import Console

log = structlog.get_logger(__name__)

TAG = "dead letters"
MAX_ID = 2**63 - 1
KEEPER_PREFETCH = 32
RETRY_SECONDS = 5.0
"""How long the keeper waits before it retries a dead-letter queue it could not consume, or
a message it could not store."""
ORIGIN_HEADERS = {
    "queue": "x-lockgate-queue",
    "handler": "x-lockgate-handler",
    "exchange": "x-original-exchange",
    "routing_key": "x-original-routing-key",
    "at": "x-dead-lettered-at",
}
DEAD_LETTER_HEADERS = frozenset(
    {
        REASON_CLASS_HEADER,
        REASON_HEADER,
        *ORIGIN_HEADERS.values(),
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
    }
)
"""Headers that describe a dead-lettering, never replayed: with `x-delivery-count` kept, a
replayed message would be dead-lettered again after its first failure."""

DeadLetterId = Annotated[int, Path(ge=1, le=MAX_ID, description="The dead letter's id.")]


class DeadLetterError(Exception):
    """An error of the dead-letter routes, answered as problem details."""

    def __init__(self, status: int, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail, field=field)


# ---------------------------------------------------------------------------------------
# What a dead-lettered message says


@dataclass(frozen=True)
class Letter:
    """A dead-lettered message as the store keeps it."""

    queue: str
    dead_letter_queue: str
    message_id: str
    message_type: str
    handler: str
    reason_class: str
    reason: str
    original_exchange: str
    original_routing_key: str
    headers: dict[str, JsonValue]
    properties: dict[str, JsonValue]
    body: bytes
    failed_at: datetime


def _text(value: object) -> str:
    """A header's value as storable text (bytes decoded; no NUL, which PostgreSQL refuses)."""
    if value is None:
        return ""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.replace("\x00", "\\x00")


def _json(value: object) -> JsonValue:
    """A header's value as JSON (AMQP tables hold bytes, timestamps and decimals too)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, Mapping):
        return {_text(key): _json(item) for key, item in value.items()}
    return _text(value)


def _instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str | bytes):
        with contextlib.suppress(ValueError):
            return _instant(datetime.fromisoformat(_text(value)))
    return None


def letter_of(
    *,
    dead_letter_queue: str,
    headers: Mapping[str, object],
    body: bytes,
    properties: Mapping[str, object],
    now: datetime,
) -> Letter:
    """Read a message taken from `dead_letter_queue`: parked by the pipeline (its
    `x-lockgate-*` and `x-original-*` headers) or dead-lettered by the broker (`x-death`)."""
    queue = dead_letter_queue.removesuffix(DLQ_SUFFIX)
    deaths = headers.get("x-death")
    death = deaths[0] if isinstance(deaths, list) and deaths else None
    if REASON_CLASS_HEADER in headers:
        reason_class = _text(headers[REASON_CLASS_HEADER])
        reason = _text(headers.get(REASON_HEADER))
        queue = _text(headers.get(ORIGIN_HEADERS["queue"])) or queue
        handler = _text(headers.get(ORIGIN_HEADERS["handler"]))
        exchange = _text(headers.get(ORIGIN_HEADERS["exchange"]))
        routing_key = _text(headers.get(ORIGIN_HEADERS["routing_key"]))
        failed_at = _instant(headers.get(ORIGIN_HEADERS["at"])) or now
    elif isinstance(death, Mapping):
        why = _text(death.get("reason")) or "unknown"
        queue = _text(death.get("queue")) or queue
        keys = death.get("routing-keys")
        count = death.get("count")
        reason_class = f"broker:{why}"
        reason = (
            f"the broker dead-lettered it from {queue} ({why})"
            + (f" after {count} deliveries" if isinstance(count, int) else "")
            + ": no handler finished it"
        )
        handler = ""
        exchange = _text(death.get("exchange"))
        routing_key = _text(keys[0]) if isinstance(keys, list) and keys else ""
        failed_at = _instant(death.get("time")) or now
    else:
        reason_class, reason, handler, exchange, routing_key = "unknown", "", "", "", ""
        reason = "no dead-letter headers: put in the dead-letter queue by hand?"
        failed_at = now
    message_id = (
        _text(properties.get("message_id"))
        or _text(headers.get("ce-id"))
        or "sha256:" + hashlib.sha256(body).hexdigest()
    )
    kept = {
        _text(name): _json(value)
        for name, value in headers.items()
        if name not in DEAD_LETTER_HEADERS
    }
    return Letter(
        queue=queue,
        dead_letter_queue=dead_letter_queue,
        message_id=message_id,
        message_type=_text(headers.get("ce-type")) or _text(properties.get("type")),
        handler=handler,
        reason_class=reason_class,
        reason=reason,
        original_exchange=exchange,
        original_routing_key=routing_key,
        headers=kept,
        properties={k: _json(v) for k, v in properties.items() if v is not None},
        body=body,
        failed_at=failed_at,
    )


def _properties(message: AbstractIncomingMessage) -> dict[str, object]:
    """The properties a replay sends again (reply_to is not: its caller is long gone)."""
    return {
        "message_id": message.message_id,
        "type": message.type,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "correlation_id": message.correlation_id,
        "app_id": message.app_id,
        "timestamp": message.timestamp,
    }


def replay_message(
    headers: Mapping[str, object], properties: Mapping[str, object], body: bytes
) -> aio_pika.Message:
    """The message a replay publishes: the stored body, headers and properties."""

    def text(name: str) -> str | None:
        value = properties.get(name)
        return None if value is None else str(value)

    return aio_pika.Message(
        body,
        headers=dict(headers),  # type: ignore[arg-type]  # JSON values are valid AMQP table values
        message_id=text("message_id"),
        type=text("type"),
        content_type=text("content_type"),
        content_encoding=text("content_encoding"),
        correlation_id=text("correlation_id"),
        app_id=text("app_id"),
        timestamp=_instant(properties.get("timestamp")),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


# ---------------------------------------------------------------------------------------
# The store (console schema, migrations/0002_dead_letters.sql)

_SUMMARY = (
    "dead_letter_id, queue, dead_letter_queue, message_id, message_type, handler, "
    "reason_class, reason, original_exchange, original_routing_key, attempts, "
    "first_failed_at, last_failed_at, state, replayed_at, length(body) AS body_bytes"
)

_KEEP = """
INSERT INTO dead_letters AS d (
    queue, dead_letter_queue, message_id, message_type, handler, reason_class, reason,
    original_exchange, original_routing_key, headers, properties, body, attempts,
    first_failed_at, last_failed_at, state
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, 1, $13, $13, 'waiting')
ON CONFLICT (queue, message_id) DO UPDATE SET
    dead_letter_queue = EXCLUDED.dead_letter_queue,
    message_type = EXCLUDED.message_type,
    handler = EXCLUDED.handler,
    reason_class = EXCLUDED.reason_class,
    reason = EXCLUDED.reason,
    original_exchange = EXCLUDED.original_exchange,
    original_routing_key = EXCLUDED.original_routing_key,
    headers = EXCLUDED.headers,
    properties = EXCLUDED.properties,
    body = EXCLUDED.body,
    attempts = d.attempts + 1,
    last_failed_at = EXCLUDED.last_failed_at,
    state = 'waiting'
WHERE EXCLUDED.last_failed_at > d.last_failed_at
"""
"""A later dead-lettering of a stored message counts one more attempt; a copy of the same
one (redelivered before its ack) carries the same failure time and changes nothing."""


async def keep(pool: Pool, letter: Letter) -> None:
    await pool.execute(
        _KEEP,
        letter.queue,
        letter.dead_letter_queue,
        letter.message_id,
        letter.message_type,
        letter.handler,
        letter.reason_class,
        letter.reason,
        letter.original_exchange,
        letter.original_routing_key,
        json.dumps(letter.headers),
        json.dumps(letter.properties),
        letter.body,
        letter.failed_at,
    )


def _summary(row: asyncpg.Record) -> DeadLetterSummary:
    return DeadLetterSummary.model_validate(
        {name: row[name] for name in DeadLetterSummary.model_fields}
    )


def _full(row: asyncpg.Record) -> DeadLetter:
    body = row["body"]
    assert isinstance(body, bytes)  # noqa: S101 - a bytea column
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" in text:
        text = None
    return DeadLetter.model_validate(
        {name: row[name] for name in DeadLetterSummary.model_fields}
        | {
            "headers": json.loads(str(row["headers"])),
            "properties": json.loads(str(row["properties"])),
            "body_text": text,
            "body_base64": base64.b64encode(body).decode(),
        }
    )


async def waiting_per_queue(pool: Pool) -> list[QueueCount]:
    rows = await pool.fetch(
        "SELECT queue, dead_letter_queue, count(*) AS waiting FROM dead_letters"
        " WHERE state = 'waiting' GROUP BY queue, dead_letter_queue ORDER BY queue"
    )
    return [QueueCount(**dict(row)) for row in rows]


async def page(
    pool: Pool, *, queue: str | None, state: State | None, after: int, limit: int
) -> DeadLetterList:
    rows = await pool.fetch(
        f"SELECT {_SUMMARY} FROM dead_letters"
        " WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2)"
        " AND dead_letter_id > $3 ORDER BY dead_letter_id LIMIT $4",
        queue,
        state,
        after,
        limit + 1,
    )
    more = len(rows) > limit
    found = [_summary(row) for row in rows[:limit]]
    return DeadLetterList(
        dead_letters=found,
        next_after=found[-1].dead_letter_id if more else None,
        queues=await waiting_per_queue(pool),
    )


async def one(pool: Pool, dead_letter_id: int) -> DeadLetter | None:
    row = await pool.fetchrow(
        f"SELECT {_SUMMARY}, headers, properties, body FROM dead_letters WHERE dead_letter_id = $1",
        dead_letter_id,
    )
    return None if row is None else _full(row)


async def purge(pool: Pool, *, dead_letter_id: int | None, queue: str | None) -> int:
    """Remove one dead letter, a queue's, or (both None) every one."""
    done = await pool.execute(
        "DELETE FROM dead_letters WHERE ($1::bigint IS NULL OR dead_letter_id = $1)"
        " AND ($2::text IS NULL OR queue = $2)",
        dead_letter_id,
        queue,
    )
    return int(done.split()[-1])


class NotReplayable(Exception):
    """The dead letter cannot be replayed (gone, already replayed, no route known)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title = status, title


async def replay(pool: Pool, bus: Bus, dead_letter_id: int) -> None:
    """Publish one waiting dead letter again (confirmed), then mark it replayed.

    The row is locked from the read to the commit: the keeper's upsert of the same message,
    failing again at once, waits and then counts the new attempt on a replayed row. A crash
    between the confirm and the commit leaves it waiting; replaying it again sends the same
    message id, which an inbox that handled it skips.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT state, original_exchange, original_routing_key, queue, headers,"
            " properties, body FROM dead_letters WHERE dead_letter_id = $1 FOR UPDATE",
            dead_letter_id,
        )
        if row is None:
            raise NotReplayable(404, "NotFound", f"dead letter {dead_letter_id} does not exist")
        if row["state"] != "waiting":
            raise NotReplayable(
                409,
                "Conflict",
                f"dead letter {dead_letter_id} was already replayed; it waits again only if "
                "it is dead-lettered again",
            )
        exchange, routing_key = row["original_exchange"], row["original_routing_key"]
        if not routing_key:
            raise NotReplayable(
                409,
                "Conflict",
                f"dead letter {dead_letter_id} names no original routing key to replay it to",
            )
        headers = {**json.loads(row["headers"]), **replay_headers(exchange, routing_key)}
        message = replay_message(headers, json.loads(row["properties"]), row["body"])
        # To the one queue it failed in (every service queue binds its name on
        # lockgate.replay), not to every subscriber of its first routing key again; the
        # pipeline reads the first exchange and routing key back from the headers.
        # mandatory: a queue that is gone is an error, not a silent success.
        await bus.publish(
            message, exchange=Exchange.REPLAY.value, routing_key=row["queue"], mandatory=True
        )
        await conn.execute(
            "UPDATE dead_letters SET state = 'replayed', replayed_at = now()"
            " WHERE dead_letter_id = $1",
            dead_letter_id,
        )
    log.info(
        "dead_letter.replayed",
        dead_letter_id=dead_letter_id,
        queue=row["queue"],
        exchange=exchange,
        routing_key=routing_key,
    )


async def replay_waiting(pool: Pool, bus: Bus, queue: str | None) -> ReplayResult:
    """Replay every waiting dead letter (of `queue`), oldest id first; stop at the first
    broker failure. Ids only grow, so one dead-lettered again meanwhile is not met twice."""
    replayed: list[int] = []
    failed: list[ReplayFailure] = []
    after = 0
    while True:
        ids = await pool.fetch(
            "SELECT dead_letter_id FROM dead_letters WHERE state = 'waiting'"
            " AND ($1::text IS NULL OR queue = $1) AND dead_letter_id > $2"
            " ORDER BY dead_letter_id LIMIT 500",
            queue,
            after,
        )
        if not ids:
            return ReplayResult(replayed=replayed, failed=failed)
        for record in ids:
            dead_letter_id = int(record["dead_letter_id"])
            after = dead_letter_id
            try:
                await replay(pool, bus, dead_letter_id)
            except NotReplayable as refused:
                if refused.status != 404:  # replayed or purged meanwhile: nothing to say
                    failed.append(ReplayFailure(dead_letter_id=dead_letter_id, error=str(refused)))
                continue
            except PublishFailed as error:
                failed.append(ReplayFailure(dead_letter_id=dead_letter_id, error=str(error)))
                return ReplayResult(replayed=replayed, failed=failed)
            replayed.append(dead_letter_id)


# ---------------------------------------------------------------------------------------
# The keeper


def dead_letter_queues() -> list[str]:
    """Every service queue's `<queue>.dlq`, from the handler tables."""
    from services.cli.service_registry import definition  # noqa: PLC0415 - the composition root

    return sorted(
        dead_letter_queue_name(queue)
        for service in SERVICE_NAMES
        for queue in definition(service).queues()
    )


class Keeper:
    """Consumes the dead-letter queues into the store and keeps the gauge current."""

    def __init__(
        self, pool: Pool, bus: Bus, queues: Iterable[str], *, sample_seconds: float
    ) -> None:
        self._pool, self._bus = pool, bus
        self._queues = sorted(queues)
        self._sample_seconds = sample_seconds
        self._channels: dict[str, AbstractRobustChannel] = {}
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._labelled: set[str] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dead-letter-keeper")

    def changed(self) -> None:
        """Something changed the store: sample the gauge soon."""
        self._changed.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_look = loop.time()
        while not self._stopping.is_set():
            if loop.time() >= next_look:  # queues not consumed yet: not on every change
                for queue in self._queues:
                    if queue not in self._channels:
                        await self._consume(queue)
                next_look = loop.time() + RETRY_SECONDS
            self._changed.clear()  # before sampling: a change meanwhile wakes the next round
            try:
                await self.sample()
            except Exception as error:  # noqa: BLE001 - a sample may fail; the next one runs
                log.warning("dead_letters.sample_failed", error=repr(error))
            wait = (
                self._sample_seconds
                if len(self._channels) == len(self._queues)
                else min(self._sample_seconds, RETRY_SECONDS)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken(), wait)

    async def _woken(self) -> None:
        """Until stopping, or a change to the store (then after a short pause, to group many)."""
        stop = asyncio.ensure_future(self._stopping.wait())
        change = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({stop, change}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            change.cancel()
        if not self._stopping.is_set():
            await asyncio.sleep(0.2)

    async def _consume(self, queue: str) -> None:
        """Start consuming `queue` if it exists (a service declares it when it first starts)."""
        if await self._bus.queue_state(queue) is None:
            return
        try:
            channel: AbstractRobustChannel = await self._bus.connection.channel(
                publisher_confirms=False
            )
            await channel.set_qos(prefetch_count=KEEPER_PREFETCH)
            declared = await channel.get_queue(queue)

            async def take(message: AbstractIncomingMessage) -> None:
                await self._take(queue, message)

            await declared.consume(take, no_ack=False)
        except (AMQPError, ConnectionError, RuntimeError, TimeoutError) as error:
            log.warning("dead_letters.consume_failed", queue=queue, error=repr(error))
            return
        self._channels[queue] = channel
        log.info("dead_letters.consuming", queue=queue)

    async def _take(self, queue: str, message: AbstractIncomingMessage) -> None:
        letter = letter_of(
            dead_letter_queue=queue,
            headers=dict(message.headers or {}),
            body=message.body,
            properties=_properties(message),
            now=datetime.now(UTC),
        )
        try:
            await keep(self._pool, letter)
        except Exception as error:  # noqa: BLE001 - not stored: it stays in the queue, retried
            log.warning("dead_letters.keep_failed", queue=queue, error=repr(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RETRY_SECONDS)
            await message.nack(requeue=True)
            return
        await message.ack()
        self.changed()
        log.info(
            "dead_letters.kept",
            queue=letter.queue,
            message_id=letter.message_id,
            reason_class=letter.reason_class,
        )

    async def sample(self) -> None:
        """Set lockgate_dead_letters_waiting for every dead-letter queue (0 when none wait)."""
        counts = {c.dead_letter_queue: c.waiting for c in await waiting_per_queue(self._pool)}
        labels = set(self._queues) | set(counts) | self._labelled
        for queue in labels:
            metrics.DEAD_LETTERS_WAITING.labels(queue).set(counts.get(queue, 0))
        self._labelled = labels

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 5)


# ---------------------------------------------------------------------------------------
# The routes


class Routes:
    """What the dead-letter routes share: the console, its keeper (if it runs)."""

    def __init__(self, console: Callable[[], Console]) -> None:
        self.console = console
        self.keepers: list[Keeper] = []

    def changed(self) -> None:
        for keeper in self.keepers:
            keeper.changed()

    async def queue_of(self, given: str | None, field: str = "queue") -> str | None:
        """The queue named (its `.dlq` name accepted), checked against the known ones."""
        if given is None:
            return None
        name = given.removesuffix(DLQ_SUFFIX)
        stored = {c.queue for c in await waiting_per_queue(self.console().pool)}
        allowed = {q.removesuffix(DLQ_SUFFIX) for q in _known_queues()} | stored
        if name not in allowed:
            raise DeadLetterError(
                422,
                "Invalid input",
                f"field {field!r} = {given[:100]!r}: no such queue; allowed: {sorted(allowed)}",
                field,
            )
        return name


PROBLEMS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem} for code in (401, 403, 404, 409, 422, 503)
}


def mount(app: FastAPI, console: Callable[[], Console]) -> None:
    """The dead-letter routes, and the keeper started and stopped with the console."""
    routes = Routes(console)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        async with inner(application):
            running = console()
            if running.settings.dead_letter_keeper:
                keeper = Keeper(
                    running.pool,
                    running.bus,
                    dead_letter_queues(),
                    sample_seconds=running.settings.metrics_sample_seconds,
                )
                await keeper.start()
                routes.keepers.append(keeper)
            try:
                yield
            finally:
                for keeper in routes.keepers:
                    await keeper.stop()
                routes.keepers.clear()

    app.router.lifespan_context = lifespan

    @app.exception_handler(DeadLetterError)
    async def refused(_: Request, error: DeadLetterError) -> JSONResponse:
        return JSONResponse(
            error.problem.model_dump(),
            status_code=error.problem.status,
            media_type="application/problem+json",
        )

    _read_routes(app, routes)
    _write_routes(app, routes)


def _read_routes(app: FastAPI, routes: Routes) -> None:
    """List and show: any role."""
    console = routes.console

    @app.get(
        f"{PREFIX}/dead-letters",
        tags=[TAG],
        response_model=DeadLetterList,
        summary="List dead letters",
        responses=PROBLEMS,
    )
    async def list_dead_letters(
        _: Annotated[auth.Caller, Depends(auth.viewer)],
        queue: Annotated[
            str | None,
            Query(max_length=300, description="Only this queue's (or its `.dlq` name)."),
        ] = None,
        state: Annotated[
            Literal["waiting", "replayed", "all"],
            Query(description="`waiting` (default), `replayed` or `all`."),
        ] = "waiting",
        after: Annotated[
            int, Query(ge=0, le=MAX_ID, description="Ids after this one (`next_after`).")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    ) -> DeadLetterList:
        return await page(
            console().pool,
            queue=await routes.queue_of(queue),
            state=None if state == "all" else state,
            after=after,
            limit=limit,
        )

    @app.get(
        f"{PREFIX}/dead-letters/{{dead_letter_id}}",
        tags=[TAG],
        response_model=DeadLetter,
        summary="Show one dead letter with its headers and body",
        responses=PROBLEMS,
    )
    async def show_dead_letter(
        dead_letter_id: DeadLetterId, _: Annotated[auth.Caller, Depends(auth.viewer)]
    ) -> DeadLetter:
        found = await one(console().pool, dead_letter_id)
        if found is None:
            raise DeadLetterError(
                404, "NotFound", f"dead letter {dead_letter_id} does not exist", "dead_letter_id"
            )
        return found


def _write_routes(app: FastAPI, routes: Routes) -> None:
    """Replay and purge: admin only."""
    console = routes.console

    @app.post(
        f"{PREFIX}/dead-letters/{{dead_letter_id}}/replay",
        tags=[TAG],
        response_model=ReplayResult,
        summary="Replay one dead letter to its original exchange and routing key",
        responses=PROBLEMS,
    )
    async def replay_dead_letter(
        dead_letter_id: DeadLetterId, _: Annotated[auth.Caller, Depends(auth.admin)]
    ) -> ReplayResult:
        running = console()
        try:
            await replay(running.pool, running.bus, dead_letter_id)
        except NotReplayable as refused:
            raise DeadLetterError(
                refused.status, refused.title, str(refused), "dead_letter_id"
            ) from None
        except PublishFailed as error:
            raise DeadLetterError(503, "Service unavailable", str(error)) from None
        finally:
            routes.changed()
        return ReplayResult(replayed=[dead_letter_id], failed=[])

    @app.post(
        f"{PREFIX}/dead-letters/replay",
        tags=[TAG],
        response_model=ReplayResult,
        summary="Replay every waiting dead letter, or one queue's",
        responses=PROBLEMS,
    )
    async def replay_dead_letters(
        body: ReplayAll, _: Annotated[auth.Caller, Depends(auth.admin)]
    ) -> ReplayResult:
        running = console()
        try:
            return await replay_waiting(
                running.pool, running.bus, await routes.queue_of(body.queue)
            )
        finally:
            routes.changed()

    @app.delete(
        f"{PREFIX}/dead-letters/{{dead_letter_id}}",
        tags=[TAG],
        response_model=PurgeResult,
        summary="Purge one dead letter",
        responses=PROBLEMS,
    )
    async def purge_dead_letter(
        dead_letter_id: DeadLetterId, _: Annotated[auth.Caller, Depends(auth.admin)]
    ) -> PurgeResult:
        purged = await purge(console().pool, dead_letter_id=dead_letter_id, queue=None)
        if not purged:
            raise DeadLetterError(
                404, "NotFound", f"dead letter {dead_letter_id} does not exist", "dead_letter_id"
            )
        routes.changed()
        return PurgeResult(purged=purged)

    @app.delete(
        f"{PREFIX}/dead-letters",
        tags=[TAG],
        response_model=PurgeResult,
        summary="Purge one queue's dead letters, or every one",
        responses=PROBLEMS,
    )
    async def purge_dead_letters(
        _: Annotated[auth.Caller, Depends(auth.admin)],
        queue: Annotated[
            str | None,
            Query(max_length=300, description="Only this queue's (or its `.dlq` name)."),
        ] = None,
        everything: Annotated[
            bool, Query(description="Without `queue`: must be true to purge every dead letter.")
        ] = False,
    ) -> PurgeResult:
        name = await routes.queue_of(queue)
        if name is None and not everything:
            raise DeadLetterError(
                422,
                "Invalid input",
                "field 'queue' is missing: name a queue, or set everything=true to purge "
                "every dead letter",
                "queue",
            )
        purged = await purge(console().pool, dead_letter_id=None, queue=name)
        routes.changed()
        return PurgeResult(purged=purged)


_KNOWN: list[str] = []


def _known_queues() -> list[str]:
    """The dead-letter queues of the handler tables (read once)."""
    if not _KNOWN:
        _KNOWN.extend(dead_letter_queues())
    return _KNOWN
