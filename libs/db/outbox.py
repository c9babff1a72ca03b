"""Transactional outbox: events written with the handler's effects, relayed with confirms.

Waking the relay: nothing is sent from inside the transaction that writes events (a NOTIFY
there makes PostgreSQL serialise the commits of every notifying transaction, so pooled
connections lose group commit). Once the transaction has committed, `wake_relays(schema)`
sets the event of this process's relays for the schema; when none of them leads (the active
relay runs in another replica) it also sends a NOTIFY on the relay's channel, outside any
transaction and at most one per NOTIFY_INTERVAL per process. The relay's poll interval stays
the fallback for anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import structlog

from libs.bus.bus import Bus
from libs.bus.codec import stored_properties
from libs.contracts.envelope import Envelope
from libs.contracts.spec import Contract, EventSpec
from libs.db.pool import Connection, Pool, advisory_key, check_schema, rows_affected
from libs.db.unit_of_work import Unquotable, quote
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

NOTIFY_INTERVAL = 0.05
"""Seconds between two NOTIFYs a process sends for one schema, at least (other replicas)."""
GAUGE_INTERVAL = 1.0
"""Seconds between two updates of the pending/lag gauges by the active relay, at least."""
_WATCH_POLL = (0.001, 0.02)
"""First and longest pause while an outbox watches its transaction end (see Outbox)."""


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


MAX_LITERAL_ROWS = 100
"""Events of one transaction written as literal SQL with its COMMIT, at most; more go
through parameters (one `unnest` insert) just before it."""
MAX_LITERAL_CHARS = 256 * 1024
"""Characters of such literal SQL, at most."""

_INSERT_VALUES = "INSERT INTO outbox (id, exchange, routing_key, envelope, body) VALUES"
_Row = tuple[str, str, str, str, bytes]
"""An outbox row: id, exchange, routing key, envelope JSON, body."""


class Outbox:
    """Adds events to the outbox inside the caller's open transaction.

    Its relay must be woken once that transaction has committed. With `managed=True` the
    caller does it, calling `committed()` right after its commit, and the rows themselves are
    written with the commit: the caller sends `commit_statements()` with its COMMIT
    (libs/db/unit_of_work.py; the message pipeline). Otherwise each `add` writes its rows at
    once and the outbox watches its connection, waking the relay once the transaction has
    ended (periodic tasks, heartbeats, any code that opens its own transaction).
    """

    def __init__(
        self,
        conn: Connection,
        *,
        schema: str,
        source: str,
        correlation_id: str | None = None,
        now: datetime | None = None,
        managed: bool = False,
    ) -> None:
        self._conn = conn
        self._schema = check_schema(schema)
        self._source = source
        self._correlation_id = correlation_id
        self._now = now
        self._managed = managed
        self._watching = False
        self._deferred: list[_Row] = []
        self.written = 0
        """Events added so far."""
        self.added: list[Envelope] = []

    async def add(self, spec: EventSpec[M], event: M, *, subject: str | None = None) -> Envelope:
        """Write one event; it is published after the transaction commits."""
        return (await self.add_many(spec, [(event, subject)]))[0]

    async def add_many(
        self, spec: EventSpec[M], events: Sequence[tuple[M, str | None]]
    ) -> list[Envelope]:
        """Write many events of one type in one round trip (bulk paths)."""
        if not events:
            return []
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
        exchange = spec.exchange.value
        rows = [
            (
                e.id,
                exchange,
                spec.routing_key(e.subject),
                e.model_dump_json(),
                event.model_dump_json().encode(),
            )
            for e, (event, _) in zip(envelopes, events, strict=True)
        ]
        if self._managed:
            self._deferred.extend(rows)  # written with the commit: commit_statements()
        else:
            await self._insert(rows)
            if not self._watching:
                self._watching = True
                _spawn(_wake_after_transaction(self._conn, self._schema))
        self.written += len(envelopes)
        self.added.extend(envelopes)
        return envelopes

    async def _insert(self, rows: list[_Row]) -> None:
        await self._conn.execute(
            "INSERT INTO outbox (id, exchange, routing_key, envelope, body)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])",
            [row[0] for row in rows],
            [row[1] for row in rows],
            [row[2] for row in rows],
            [row[3] for row in rows],
            [row[4] for row in rows],
        )

    async def commit_statements(self, *, literal: bool) -> list[str]:
        """The rows added but not written yet (managed), as literal SQL to send with COMMIT
        (`literal`: the connection takes literals, libs/db/unit_of_work.literals_exact).
        Rows that cannot go that way (too many, or not literal-safe) are written now."""
        rows, self._deferred = self._deferred, []
        if not rows:
            return []
        if literal and len(rows) <= MAX_LITERAL_ROWS:
            try:
                values = ", ".join(
                    f"({quote(a)}, {quote(b)}, {quote(c)}, {quote(d)}, {quote(e)})"
                    for a, b, c, d, e in rows
                )
            except Unquotable:
                pass
            else:
                if len(values) <= MAX_LITERAL_CHARS:
                    return [f"{_INSERT_VALUES} {values}"]
        await self._insert(rows)
        return []

    def committed(self) -> None:
        """The transaction these events were written in has committed: wake the relay."""
        if self.written:
            wake_relays(self._schema)


async def _wake_after_transaction(conn: Connection, schema: str) -> None:
    """Wake `schema`'s relays once `conn` has left its transaction (committed or not: a
    needless wake costs the relay one empty fetch)."""
    pause, longest = _WATCH_POLL
    try:
        while not conn.is_closed() and conn.is_in_transaction():
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)
    except asyncpg.InterfaceError:
        pass  # released to its pool (or closed): its transaction is over
    wake_relays(schema)


_background: set[asyncio.Task[None]] = set()
"""Tasks nobody awaits, kept referenced until they end."""


def _spawn(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


class _Wakeup:
    """One schema's relays in this process, and the NOTIFY for those of other processes."""

    def __init__(self, schema: str) -> None:
        self.channel = notify_channel(schema)
        self.relays: list[OutboxRelay] = []
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        leading = False
        for relay in self.relays:
            relay.wake()
            leading = leading or relay.is_leader
        if leading or not self.relays:
            return  # the active relay is here (or no pool to notify with: its start drains)
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._timer_loop is loop:
            return  # a NOTIFY is already due
        delay = self._last + NOTIFY_INTERVAL - loop.time()
        self._timer_loop = loop
        self._timer = loop.call_later(max(delay, 0.0), self._notify)

    def _notify(self) -> None:
        self._timer = None
        if not self.relays:
            return
        self._last = asyncio.get_running_loop().time()
        _spawn(self._send(self.relays[0].pool))

    async def _send(self, pool: Pool) -> None:
        try:
            await asyncio.wait_for(pool.execute("SELECT pg_notify($1, '')", self.channel), 5.0)
        except Exception as error:  # noqa: BLE001 - the other relays poll as well
            log.debug("outbox.notify_failed", error=f"{type(error).__name__}: {error}")


_wakeups: dict[str, _Wakeup] = {}


def _wakeup(schema: str) -> _Wakeup:
    found = _wakeups.get(schema)
    if found is None:
        found = _wakeups[schema] = _Wakeup(schema)
    return found


def wake_relays(schema: str) -> None:
    """Events of `schema` were committed: wake its relay, here or in another replica.

    Call it after the commit, never inside the transaction. Must run in the event loop."""
    _wakeup(schema).wake()


_COLUMNS = "seq, exchange, routing_key AS key, envelope::text AS envelope, body"
_FETCH = f"SELECT {_COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1"
_MARK = "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"
_MARK_AND_FETCH = (
    "WITH marked AS (UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[]))"
    f" SELECT {_COLUMNS} FROM outbox"
    " WHERE published_at IS NULL AND seq <> ALL($2::bigint[]) ORDER BY seq LIMIT $3"
)
"""The statement sees the outbox as it was before its own UPDATE: the rows it marks are left
out of the fetch by $2, which holds them too."""


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
        self._gauges_at = 0.0
        self.is_leader = False

    @property
    def pool(self) -> Pool:
        return self._pool

    def wake(self) -> None:
        """Events were committed: drain now instead of at the next poll."""
        self._wake.set()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Relay until stop(); reconnects after database or broker losses.

        An outage (database down, broker gone, a failover) only pauses it: it tries again
        with backoff capped at 5 s, logs the first failure and the recovery, and carries on
        where the outbox says it stopped (unpublished rows stay unpublished until confirmed).
        """
        first_delay = delay = min(self._poll, 0.5)
        wakeup = _wakeup(self._schema)
        wakeup.relays.append(self)
        try:
            await self._run(first_delay, delay)
        finally:
            wakeup.relays.remove(self)

    async def _run(self, first_delay: float, delay: float) -> None:
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
                if stopping or time.monotonic() - self._gauges_at >= GAUGE_INTERVAL:
                    await self._update_gauges(conn)
                    self._gauges_at = time.monotonic()
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
        """Publish every pending event, batch by batch; return how many were published.

        Batch after batch in seq order, each only once the previous one is confirmed; while a
        batch is being published and confirmed, one statement on the lock connection marks
        the batch confirmed before it and fetches the next one.
        """
        total = 0
        marking: list[int] = []
        """Confirmed seqs not marked yet."""
        rows = await self._fetch(conn, marking, [])
        while rows:
            seqs = [row["seq"] for row in rows]
            with timed_step(self._on_step, RELAY_DECODE):
                items = [
                    (row["body"], stored_properties(row["envelope"]), row["exchange"], row["key"])
                    for row in rows
                ]
            started = time.perf_counter()
            publishing = asyncio.ensure_future(self._bus.publish_prepared(items))
            try:
                following = await self._fetch(conn, marking, seqs)
            except BaseException:
                with contextlib.suppress(BaseException):
                    await publishing  # let the batch finish; the rows stay unpublished
                raise
            marking = []
            confirmed = await publishing
            if self._on_step is not None:
                self._on_step(RELAY_PUBLISH, time.perf_counter() - started)
            # Only the confirmed prefix is marked; what follows a failure is sent again next
            # time (consumers dedupe by message id). Events go out in seq order, which is
            # commit order for transactions that do not overlap; overlapping transactions
            # have no order between them to keep.
            prefix = next((i for i, ok in enumerate(confirmed) if not ok), len(confirmed))
            marking = seqs[:prefix]
            metrics.OUTBOX_PUBLISHED.inc(prefix)
            total += prefix
            if prefix < len(rows):
                metrics.OUTBOX_PUBLISH_ERRORS.inc()
                await self._mark(conn, marking)
                await asyncio.sleep(min(self._poll, 1.0))
                return total
            rows = following
        await self._mark(conn, marking)
        return total

    async def _fetch(
        self, conn: Connection, marking: list[int], publishing: list[int]
    ) -> list[asyncpg.Record]:
        """Mark `marking` published and fetch the next batch after it, skipping the rows of
        the batch `publishing` (unconfirmed yet), in one round trip."""
        with timed_step(self._on_step, RELAY_FETCH):
            if not marking and not publishing:
                return await conn.fetch(_FETCH, self._batch_size)
            return await conn.fetch(
                _MARK_AND_FETCH, marking, marking + publishing, self._batch_size
            )

    async def _mark(self, conn: Connection, seqs: list[int]) -> None:
        if seqs:
            with timed_step(self._on_step, RELAY_MARK):
                await conn.execute(_MARK, seqs)

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
