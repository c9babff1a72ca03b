"""End to end: the catalog service imports both documents; every event is counted at a sink."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.bench_catalog_import.parse import Parsed
from bench.common.infra import check, wait_until
from bench.common.meters import busy_since, cpu_seconds, machine_ticks
from bench.common.tracing import Trace, answer_for
from libs.bus import Bus, RpcClient
from libs.bus.bus import Binding
from libs.contracts import catalog as c
from libs.contracts.system import PING, Ping
from libs.db.pool import drop_database
from libs.service import Answer, HandlerContext, ServiceDefinition
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.catalog.domain.updates import update_id_for_kb
from services.catalog.handlers import SERVICE as CATALOG
from services.cli.catalog_commands import IMPORT_TIMEOUT_SECONDS
from tests.support.infra import Infra

SINK_QUEUE = "bench.catalog-updates-sink"
UPDATE_EVENTS = (c.UPDATE_PUBLISHED, c.UPDATE_REVISED, c.UPDATE_SUPERSEDED)
DRAIN_TIMEOUT = 120.0
POLL_SECONDS = 0.001
IMPORT_HANDLER = "handler " + answer_for(CATALOG, c.IMPORT_DOCUMENT.type).name
"""The import's label in a Trace."""


async def import_nothing(_ctx: HandlerContext, command: c.ImportDocument) -> c.ImportResult:
    """The baseline's import: answered without reading the document (no decoding, no
    parse, no write), so only the RPC path is paid: the client's request, the broker, the
    service's pipeline (decode, transaction, inbox claim, stored reply, reply, ack)."""
    return c.ImportResult(
        document_id=command.label,
        updates_in_document=0,
        advisories_in_document=0,
        published=0,
        revised=0,
        unchanged=0,
        superseded=0,
        supersession_links=0,
    )


NO_OP_CATALOG = replace(
    CATALOG,
    commands=tuple(
        Answer(c.IMPORT_DOCUMENT, import_nothing) if route.spec is c.IMPORT_DOCUMENT else route
        for route in CATALOG.commands
    ),
)
"""The catalog service as it is, except that it answers imports without importing."""


@dataclass(frozen=True)
class Received:
    at: float
    type: str
    message_id: str
    subject: str | None


class Sink:
    """Counts the catalog's update events as they reach a quorum queue bound to them."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        at = time.perf_counter()
        subject = (message.headers or {}).get("ce-subject")
        self.received.append(
            Received(
                at=at,
                type=message.type or "",
                message_id=message.message_id or "",
                subject=subject.decode() if isinstance(subject, bytes) else str(subject),
            )
        )

    def take(self) -> list[Received]:
        received, self.received = self.received, []
        return received


@asynccontextmanager
async def sink_consumer(bus: Bus, sink: Sink) -> AsyncIterator[None]:
    await bus.declare_queue(
        SINK_QUEUE, [Binding(spec.exchange, spec.binding_key) for spec in UPDATE_EVENTS]
    )
    channel = await bus.connection.channel(publisher_confirms=False)
    try:
        queue = await channel.get_queue(SINK_QUEUE)
        await queue.consume(sink.on_message, no_ack=True)
        yield
    finally:
        await channel.close()


@dataclass(frozen=True)
class EndToEnd:
    started: float
    """perf_counter() when January's command was sent."""
    first_reply: float
    """Seconds from sending January's command to its reply."""
    replied: float
    """Seconds from sending January's command to February's reply."""
    published: float
    """Seconds from sending January's command until it replied and every event reached the sink."""
    first_event: float
    """Seconds from sending January's command to the first event at the sink."""
    events: Counter[str]
    cpu: float
    machine_busy: float

    @property
    def total_events(self) -> int:
        return sum(self.events.values())


@asynccontextmanager
async def catalog_service(
    infra: Infra,
    database: str,
    trace: Trace | None,
    definition: ServiceDefinition = CATALOG,
) -> AsyncIterator[str]:
    """The catalog service on a database of its own, created now and dropped afterwards."""
    url = f"{infra.database_url}_{database}"
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=url,
        heartbeat_seconds=3600.0,  # one heartbeat at start, before the clock starts
    )
    if trace is None:
        process = ServiceProcess(definition, settings, http_port=0)
    else:
        process = ServiceProcess(
            trace.definition(definition), settings, http_port=0, on_step=trace.step
        )
    try:
        await process.start()
        try:
            yield url
        finally:
            await process.stop()
    finally:
        await drop_database(url)


async def outbox_state(db: asyncpg.Connection) -> tuple[int, int]:
    """(unpublished rows of any kind, update event rows) of the catalog outbox."""
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE published_at IS NULL) AS pending,"
        " count(*) FILTER (WHERE routing_key = ANY ($1::text[])) AS updates"
        " FROM catalog.outbox",
        [spec.routing_key() for spec in UPDATE_EVENTS],
    )
    assert row is not None  # an aggregate always returns a row
    return int(row["pending"]), int(row["updates"])


async def ready(rpc: RpcClient, db: asyncpg.Connection) -> None:
    """The service answers (consumer up, reply channel open) and its outbox is empty."""
    await rpc.call(PING["catalog"], Ping())

    async def quiet() -> bool:
        return (await outbox_state(db))[0] == 0

    await wait_until(quiet, "the start-up heartbeat to be published", timeout=DRAIN_TIMEOUT)


async def no_op_imports(
    infra: Infra, rpc: RpcClient, requests: list[c.ImportDocument], index: int
) -> float:
    """Seconds from sending January's command to February's reply, answered by NO_OP_CATALOG
    (started the same way as the real service, on a database of its own)."""
    async with catalog_service(infra, f"n{index}", None, NO_OP_CATALOG) as url:
        db = await asyncpg.connect(url)
        try:
            await ready(rpc, db)
            gc.collect()
            started = time.perf_counter()
            for request in requests:
                result = await rpc.call(c.IMPORT_DOCUMENT, request, timeout=IMPORT_TIMEOUT_SECONDS)
                check(result.document_id == request.label, f"no-op import answered {result}")
            return time.perf_counter() - started
        finally:
            await db.close()


async def end_to_end(  # noqa: PLR0917 - one round's collaborators
    infra: Infra,
    rpc: RpcClient,
    sink: Sink,
    requests: list[c.ImportDocument],
    parsed: Parsed,
    index: int,
    trace: Trace | None = None,
) -> EndToEnd:
    async with catalog_service(infra, f"r{index}", trace) as url:
        db = await asyncpg.connect(url)
        try:
            await ready(rpc, db)

            async def quiet() -> bool:
                return (await outbox_state(db))[0] == 0

            check(not sink.take(), "the sink got events before the first import")
            gc.collect()
            cpu_before, ticks_before = cpu_seconds(), machine_ticks()
            started = time.perf_counter()
            results: list[c.ImportResult] = []
            reply_times: list[float] = []
            for request in requests:
                results.append(
                    await rpc.call(c.IMPORT_DOCUMENT, request, timeout=IMPORT_TIMEOUT_SECONDS)
                )
                reply_times.append(time.perf_counter())
            replied = reply_times[-1]
            expected = sum(r.published + r.revised + r.superseded for r in results)

            async def all_arrived() -> bool:
                return len(sink.received) >= expected

            await wait_until(
                all_arrived,
                f"{expected} events at the sink",
                timeout=DRAIN_TIMEOUT,
                poll=POLL_SECONDS,
            )
            cpu, busy = cpu_seconds() - cpu_before, busy_since(ticks_before)
            received = list(sink.received)
            await wait_until(quiet, "the outbox to be marked published", timeout=DRAIN_TIMEOUT)
            pending, update_rows = await outbox_state(db)
        finally:
            await db.close()
    # The service has stopped (its relay flushed); nothing more may have arrived.
    check_import(results, parsed, sink.take(), update_rows, pending)
    last = max([replied, *(r.at for r in received)])
    return EndToEnd(
        started=started,
        first_reply=reply_times[0] - started,
        replied=replied - started,
        published=last - started,
        first_event=min(r.at for r in received) - started,
        events=Counter(r.type for r in received),
        cpu=cpu,
        machine_busy=busy,
    )


def check_import(
    results: list[c.ImportResult],
    parsed: Parsed,
    received: list[Received],
    update_rows: int,
    pending: int,
) -> None:
    check(
        tuple(r.document_id for r in results) == parsed.document_ids,
        f"imported {[r.document_id for r in results]}, parse_cvrf read {parsed.document_ids}",
    )
    check(
        tuple(r.updates_in_document for r in results) == parsed.updates
        and tuple(r.advisories_in_document for r in results) == parsed.advisories,
        f"import replies {results} disagree with parse_cvrf {parsed}",
    )
    for r in results:
        check(
            r.published + r.revised + r.unchanged == r.updates_in_document,
            f"{r.document_id}: published + revised + unchanged != updates: {r}",
        )
    published = sum(r.published for r in results)
    check(
        published == len(parsed.kbs),
        f"{published} updates published on a fresh database, {len(parsed.kbs)} distinct KBs",
    )
    expected = Counter(
        {
            c.UPDATE_PUBLISHED.type: published,
            c.UPDATE_REVISED.type: sum(r.revised for r in results),
            c.UPDATE_SUPERSEDED.type: sum(r.superseded for r in results),
        }
    )
    got = Counter(r.type for r in received)
    check(+got == +expected, f"sink got {dict(got)}, the import replies announce {dict(expected)}")
    check(
        len({r.message_id for r in received}) == len(received),
        "an event reached the sink twice",
    )
    subjects = {r.subject for r in received if r.type == c.UPDATE_PUBLISHED.type}
    check(
        subjects == {update_id_for_kb(kb) for kb in parsed.kbs},
        "the published events do not name exactly the update ids of the distinct KBs",
    )
    check(
        update_rows == len(received) and pending == 0,
        f"outbox holds {update_rows} update events ({pending} unpublished rows), "
        f"sink got {len(received)}",
    )
