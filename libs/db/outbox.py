"""Transactional outbox: events written with the handler's effects, relayed with confirms."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg
import structlog

from libs.bus.bus import Bus
from libs.bus.codec import to_amqp
from libs.contracts.envelope import Envelope
from libs.contracts.spec import Contract, EventSpec
from libs.db.pool import Connection, Pool, advisory_key, check_schema, rows_affected
from libs.observability import metrics

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Contract)

StepObserver = Callable[[str, float], None]
"""Told that a named step took so many seconds of wall time (benchmarks, diagnostics).

ServiceProcess(on_step=...) hands one to the message pipeline and to the outbox relay; when
none is given, nothing is timed.
"""

RELAY_FETCH = "relay.fetch"
RELAY_DECODE = "relay.decode"
RELAY_PUBLISH = "relay.publish"
RELAY_MARK = "relay.mark"
RELAY_STEPS = (RELAY_FETCH, RELAY_DECODE, RELAY_PUBLISH, RELAY_MARK)
"""What the relay reports per batch: select, envelopes back to AMQP, publish with confirms,
mark published."""

_UNTIMED = contextlib.nullcontext()


class _Timed:
    __slots__ = ("_name", "_observer", "_started")

    def __init__(self, observer: StepObserver, name: str) -> None:
        self._observer = observer
        self._name = name
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self._observer(self._name, time.perf_counter() - self._started)


def timed_step(observer: StepObserver | None, name: str) -> AbstractContextManager[object]:
    """A `with` block that tells `observer` how long it took; a shared no-op without one."""
    return _UNTIMED if observer is None else _Timed(observer, name)


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes `schema`'s relay."""
    return f"lockgate_outbox_{check_schema(schema)}"


def relay_application_name(schema: str) -> str:
    """How the relay's lock connection shows in pg_stat_activity."""
    return f"lockgate-outbox-relay-{schema}"


class Outbox:
    """Adds events to the outbox inside the caller's open transaction."""

    def __init__(
        self,
        conn: Connection,
        *,
        schema: str,
        source: str,
        correlation_id: str | None = None,
        now: datetime | None = None,
    ) -> None:
        self._conn = conn
        self._channel = notify_channel(schema)
        self._source = source
        self._correlation_id = correlation_id
        self._now = now
        self._notified = False
        self.added: list[Envelope] = []

    async def add(self, spec: EventSpec[M], event: M, *, subject: str | None = None) -> Envelope:
        """Write one event; it is published after the transaction commits."""
        return (await self.add_many(spec, [(event, subject)]))[0]

    async def add_many(
        self, spec: EventSpec[M], events: Sequence[tuple[M, str | None]]
    ) -> list[Envelope]:
        """Write many events of one type in one round trip (bulk paths)."""
        envelopes = [
            Envelope.new(
                source=self._source,
                type=spec.type,
                subject=subject,
                correlation_id=self._correlation_id,
                now=self._now,
            )
            for _, subject in events
        ]
        await self._conn.execute(
            "INSERT INTO outbox (id, exchange, routing_key, envelope, body)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])",
            [uuid.UUID(e.id) for e in envelopes],
            [spec.exchange.value] * len(events),
            [spec.routing_key(e.subject) for e in envelopes],
            [e.model_dump_json() for e in envelopes],
            [event.model_dump_json().encode() for event, _ in events],
        )
        if not self._notified:
            await self._conn.execute("SELECT pg_notify($1, '')", self._channel)
            self._notified = True
        self.added.extend(envelopes)
        return envelopes


class OutboxRelay:
    """Publishes a schema's outbox in `seq` order with publisher confirms.

    One relay per schema is active at a time (a session advisory lock), so events keep
    their commit order on the wire whatever the number of replicas; the others wait as
    standbys and take over when the active one's connection ends.
    """

    def __init__(
        self,
        pool: Pool,
        bus: Bus,
        *,
        url: str,
        schema: str,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        on_step: StepObserver | None = None,
        connect_timeout: float = 60.0,
        command_timeout: float | None = None,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._url = url
        self._schema = check_schema(schema)
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._on_step = on_step
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._wake = asyncio.Event()
        self._stopping = False
        self._connected = False
        self._failing_since: float | None = None
        self.is_leader = False

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Relay until stop(); reconnects after database or broker losses.

        An outage (database down, broker gone, a failover) only pauses it: it tries again
        with backoff capped at 5 s, logs the first failure and the recovery, and carries on
        where the outbox says it stopped (unpublished rows stay unpublished until confirmed).
        """
        first_delay = delay = min(self._poll, 0.5)
        while not self._stopping:
            self._connected = False
            try:
                await self._lead()
            except Exception as error:
                self.is_leader = False
                if self._connected:  # it had recovered (or never failed): a new outage
                    delay = first_delay
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning(
                        "outbox.relay_error",
                        error=f"{type(error).__name__}: {error}",
                        exc_info=error,
                    )
                else:
                    log.info("outbox.relay_retry", error=f"{type(error).__name__}: {error}"[:300])
                if self._stopping:
                    return
                self._wake.clear()  # a NOTIFY seen before the loss must not cut the pause short
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return

    async def _lead(self) -> None:
        conn = await asyncpg.connect(
            self._url,
            timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            server_settings={
                "application_name": relay_application_name(self._schema),
                "search_path": self._schema,
            },
        )
        self._connected = True
        if self._failing_since is not None:
            log.info(
                "outbox.relay_reconnected",
                after_seconds=round(time.monotonic() - self._failing_since, 2),
            )
            self._failing_since = None
        try:
            while not self._stopping and not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)",
                advisory_key(f"lockgate.outbox-relay.{self._schema}"),
            ):
                await self._sleep(self._poll)
            if self._stopping:
                return
            self.is_leader = True
            await conn.add_listener(notify_channel(self._schema), self._on_notify)
            while True:
                self._wake.clear()
                stopping = self._stopping
                # Everything runs on the connection holding the lock: if it is lost, the
                # next statement fails and this relay stops leading at once, so two relays
                # never publish side by side.
                await self.drain(conn)
                await self._update_gauges(conn)
                if stopping:
                    return  # that was the final drain, still under the lock
                await self._sleep(self._poll)
        finally:
            self.is_leader = False
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def drain(self, conn: Connection) -> int:
        """Publish every pending event, batch by batch; return how many were published."""
        total = 0
        while True:
            with timed_step(self._on_step, RELAY_FETCH):
                rows = await conn.fetch(
                    "SELECT seq, exchange, routing_key, envelope, body FROM outbox"
                    " WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                    self._batch_size,
                )
            if not rows:
                return total
            with timed_step(self._on_step, RELAY_DECODE):
                items = [
                    (
                        to_amqp(Envelope.model_validate_json(row["envelope"]), bytes(row["body"])),
                        row["exchange"],
                        row["routing_key"],
                    )
                    for row in rows
                ]
            with timed_step(self._on_step, RELAY_PUBLISH):
                confirmed = await self._bus.publish_many(items)
            # Only the confirmed prefix is marked; what follows a failure is sent again next
            # time (consumers dedupe by message id). Events go out in seq order, which is
            # commit order for transactions that do not overlap; overlapping transactions
            # have no order between them to keep.
            prefix = next((i for i, ok in enumerate(confirmed) if not ok), len(confirmed))
            if prefix:
                with timed_step(self._on_step, RELAY_MARK):
                    await conn.execute(
                        "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])",
                        [row["seq"] for row in rows[:prefix]],
                    )
                metrics.OUTBOX_PUBLISHED.inc(prefix)
                total += prefix
            if prefix < len(rows):
                metrics.OUTBOX_PUBLISH_ERRORS.inc()
                await asyncio.sleep(min(self._poll, 1.0))
                return total

    async def _update_gauges(self, conn: Connection) -> None:
        row = await conn.fetchrow(
            "SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS lag"
            " FROM outbox WHERE published_at IS NULL"
        )
        assert row is not None  # noqa: S101 - an aggregate always returns a row
        metrics.OUTBOX_PENDING.set(row["pending"])
        metrics.OUTBOX_LAG.set(float(row["lag"] or 0.0))

    def stop(self) -> None:
        """Finish: the active relay drains once more under its lock, then run() returns."""
        self._stopping = True
        self._wake.set()


async def purge_published(pool: Pool, older_than: timedelta) -> int:
    """Delete published events older than `older_than`."""
    status: str = await pool.execute(
        "DELETE FROM outbox WHERE published_at < now() - $1::interval", older_than
    )
    return rows_affected(status)
