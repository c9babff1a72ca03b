"""Throughput: the probe service's pipeline against a raw aio-pika + asyncpg consumer."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.common.baselines import mirror_table, raw_drain, raw_pipeline_drain
from bench.common.infra import check, unpublished, wait_until
from bench.common.meters import CpuMeter, CpuUsage, RssSampler, counter_value
from bench.common.profile import spy
from bench.common.queues import QueueProbe, publish_confirmed
from bench.common.tracing import Trace
from libs.bus import Bus, to_amqp
from libs.bus.bus import Binding
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, queue_name
from libs.db.pool import database_name
from libs.observability import metrics
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from tests.integration import probe
from tests.support.infra import Infra

PREFETCH = 64
POOL_SIZE = 10  # libs.db.pool.create_pool's default max_size, used by the baseline too
KEYS = 256  # distinct counter rows the messages spread over
DRAIN_TIMEOUT = 600.0

BASELINE_QUEUE = "bench.baseline"
BASELINE_KEY = "bench.baseline.count"
RAW_PIPELINE_QUEUE = "bench.raw-pipeline"
RAW_PIPELINE_KEY = "bench.raw-pipeline.count"
RAW_PIPELINE_SINK = "bench.raw-pipeline.counted-sink"
RAW_PIPELINE_EVENT_KEY = "bench.raw-pipeline.counted"
RAW_SOURCE = "bench/raw"
SINK_QUEUE = "bench.counted-sink"
COUNTING = next(route for route in probe.PROBE.events if route.spec.type == probe.COUNT.type)
PROBE_QUEUE = queue_name(probe.NAME, COUNTING.queue)
HANDLER = COUNTING.name
"""The counting route's inbox key and metric label."""

BASELINE_SCHEMA = f"""
CREATE SCHEMA bench_baseline;
{mirror_table("probe.counts", "bench_baseline.counts")}
{mirror_table("probe.counts", "bench_baseline.pipeline_counts")}
CREATE TABLE bench_baseline.events (
    seq        bigserial   PRIMARY KEY,
    key        text        NOT NULL,
    body       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""
BASELINE_COUNT = (
    "INSERT INTO bench_baseline.counts (key, n) VALUES ($1, 1)"
    " ON CONFLICT (key) DO UPDATE SET n = counts.n + 1"
)
BASELINE_EVENT = "INSERT INTO bench_baseline.events (key, body) VALUES ($1, $2)"
RAW_PIPELINE_COUNT = (
    "INSERT INTO bench_baseline.pipeline_counts (key, n) VALUES ($1, 1)"
    " ON CONFLICT (key) DO UPDATE SET n = pipeline_counts.n + 1"
)


BASELINE_TOTALS = (
    "SELECT coalesce(sum(n), 0) FROM bench_baseline.counts",
    "SELECT count(*) FROM bench_baseline.events",
)
RAW_PIPELINE_TOTALS = ("SELECT coalesce(sum(n), 0) FROM bench_baseline.pipeline_counts",)


async def _totals(infra: Infra, queries: tuple[str, ...]) -> list[int]:
    """What a phase has stored so far (a phase checks what its own run added)."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        return [int(await conn.fetchval(query)) for query in queries]
    finally:
        await conn.close()


@dataclass(frozen=True)
class Throughput:
    name: str
    messages: int
    seconds: float
    usage: CpuUsage
    """CPU during the phase: this process, the run's PostgreSQL backends, RabbitMQ, the machine."""
    rss_start: int
    rss_peak: int
    handled_seconds: float | None = None
    """Lockgate only: when the last message was handled (before the outbox had drained)."""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu(self) -> float:
        """This process's CPU seconds (user + system)."""
        return self.usage.cpu

    @property
    def machine_busy(self) -> float:
        """Share of all the machine's cores busy during the phase (broker and database
        included)."""
        return self.usage.busy

    def per_message_ms(self, component: str) -> float:
        """CPU milliseconds per message of a bench.common.meters component."""
        return self.usage.parts[component] / self.messages * 1000

    @classmethod
    def combine(cls, rounds: list[Throughput]) -> Throughput:
        """The rounds of one consumer as one phase: messages, seconds and CPU added up."""
        first = rounds[0]
        wall = sum(r.usage.wall for r in rounds)
        usage = CpuUsage(
            wall=wall,
            cpu=sum(r.usage.cpu for r in rounds),
            busy=sum(r.usage.busy * r.usage.wall for r in rounds) / wall,
            parts={k: sum(r.usage.parts[k] for r in rounds) for k in first.usage.parts},
        )
        handled = [r.handled_seconds for r in rounds if r.handled_seconds is not None]
        return cls(
            first.name,
            sum(r.messages for r in rounds),
            sum(r.seconds for r in rounds),
            usage,
            min(r.rss_start for r in rounds),
            max(r.rss_peak for r in rounds),
            sum(handled) if handled else None,
        )


def key_of(index: int) -> str:
    return f"k{index % KEYS}"


async def prepublish(
    bus: Bus, queues: QueueProbe, routing_key: str, messages: int, queue: str
) -> None:
    """Publish `messages` count messages with confirms; check they all wait in `queue`."""
    items = []
    for index in range(messages):
        envelope = Envelope.new(source="bench", type=probe.COUNT.type, subject=key_of(index))
        body = probe.Key(key=key_of(index)).model_dump_json().encode()
        items.append((to_amqp(envelope, body), Exchange.EVENTS.value, routing_key))
    await publish_confirmed(bus, items)
    queued = await queues.depth(queue)
    check(queued == messages, f"{queue} holds {queued} messages after publishing {messages}")


async def baseline_throughput(
    infra: Infra, bus: Bus, queues: QueueProbe, messages: int
) -> Throughput:
    await bus.declare_queue(BASELINE_QUEUE, [Binding(Exchange.EVENTS, BASELINE_KEY)])
    await prepublish(bus, queues, BASELINE_KEY, messages, BASELINE_QUEUE)
    before = await _totals(infra, BASELINE_TOTALS)
    meter = CpuMeter(database_name(infra.database_url))
    with RssSampler() as rss:
        pool = await asyncpg.create_pool(infra.database_url, min_size=1, max_size=POOL_SIZE)
        try:

            async def handle(message: AbstractIncomingMessage) -> None:
                data = json.loads(message.body)
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(BASELINE_COUNT, data["key"])
                    await conn.execute(BASELINE_EVENT, data["key"], message.body.decode())

            seconds = await raw_drain(
                infra.amqp_url, BASELINE_QUEUE, messages, PREFETCH, handle, timeout=DRAIN_TIMEOUT
            )
            usage = meter.stop()  # before its backends end with the pool
        finally:
            await pool.close()
    after = await _totals(infra, BASELINE_TOTALS)
    total, events = (a - b for a, b in zip(after, before, strict=True))
    check(
        total == events == messages,
        f"baseline: counted {total}, {events} events, for {messages} messages",
    )
    return Throughput("raw consumer", messages, seconds, usage, rss.start, rss.peak)


async def raw_pipeline_throughput(
    infra: Infra, bus: Bus, queues: QueueProbe, messages: int
) -> Throughput:
    """The fair baseline: the pipeline's work by hand. Per message: json.loads the body, one
    transaction upserting the counter row, then the event it caused (the same ce-* headers
    and properties the relay sends) published with a confirm, then the ack."""
    await bus.declare_queue(RAW_PIPELINE_QUEUE, [Binding(Exchange.EVENTS, RAW_PIPELINE_KEY)])
    await bus.declare_queue(RAW_PIPELINE_SINK, [Binding(Exchange.EVENTS, RAW_PIPELINE_EVENT_KEY)])
    await queues.purge(RAW_PIPELINE_SINK)
    await prepublish(bus, queues, RAW_PIPELINE_KEY, messages, RAW_PIPELINE_QUEUE)
    before = await _totals(infra, RAW_PIPELINE_TOTALS)
    meter = CpuMeter(database_name(infra.database_url))
    with RssSampler() as rss:
        pool = await asyncpg.create_pool(infra.database_url, min_size=1, max_size=POOL_SIZE)
        try:

            async def handle(message: AbstractIncomingMessage) -> tuple[aio_pika.Message, str]:
                key = json.loads(message.body)["key"]
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(RAW_PIPELINE_COUNT, key)
                event_id, now = str(uuid.uuid4()), datetime.now(UTC)
                headers = {
                    "ce-id": event_id,
                    "ce-source": RAW_SOURCE,
                    "ce-type": probe.COUNTED.type,
                    "ce-time": now.isoformat(),
                    "ce-specversion": "1.0",
                    "ce-subject": key,
                }
                event = aio_pika.Message(
                    json.dumps({"key": key}).encode(),
                    headers=headers,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=event_id,
                    type=probe.COUNTED.type,
                    timestamp=now,
                    app_id=RAW_SOURCE,
                    correlation_id=message.message_id,
                )
                return event, RAW_PIPELINE_EVENT_KEY

            seconds = await raw_pipeline_drain(
                infra.amqp_url,
                RAW_PIPELINE_QUEUE,
                messages,
                PREFETCH,
                Exchange.EVENTS.value,
                handle,
                timeout=DRAIN_TIMEOUT,
            )
            usage = meter.stop()  # before its backends end with the pool
        finally:
            await pool.close()
    (total,) = (
        a - b for a, b in zip(await _totals(infra, RAW_PIPELINE_TOTALS), before, strict=True)
    )
    sunk = await queues.depth(RAW_PIPELINE_SINK)
    check(
        total == sunk == messages,
        f"raw pipeline: counted {total}, sink {sunk}, for {messages} messages",
    )
    return Throughput("raw pipeline", messages, seconds, usage, rss.start, rss.peak)


async def lockgate_throughput(  # noqa: PLR0917 - one phase's collaborators
    infra: Infra,
    bus: Bus,
    queues: QueueProbe,
    settings: Settings,
    messages: int,
    stack: list[ServiceProcess],
    *,
    profile: str | None = None,
) -> Throughput:
    """Drain `messages` through the probe service; leaves it running in `stack` for RPC.

    With `profile` (a path under bench/profiles/), py-spy records this process from the
    service's start until the outbox is published (a separate pass: its figures are not the
    ones reported)."""
    # The queue exactly as the service declares it (idempotent redeclare on start).
    await bus.declare_queue(PROBE_QUEUE, [Binding(Exchange.EVENTS, probe.COUNT.binding_key)])
    await bus.declare_queue(SINK_QUEUE, [Binding(Exchange.EVENTS, probe.COUNTED.binding_key)])
    await queues.purge(SINK_QUEUE)
    await prepublish(bus, queues, probe.COUNT.routing_key(), messages, PROBE_QUEUE)
    watcher = await asyncpg.connect(infra.database_url)
    try:
        stored_before = await stored(watcher)
        before = counter_value(metrics.MESSAGES_HANDLED, handler=HANDLER)

        async def all_handled() -> bool:
            return counter_value(metrics.MESSAGES_HANDLED, handler=HANDLER) - before >= messages

        async def outbox_empty() -> bool:
            return await unpublished(watcher, probe.NAME) == 0

        marks = Trace(sql=False)  # only when the consumer starts: nothing per message
        meter = CpuMeter(database_name(infra.database_url))
        with RssSampler() as rss, spy(profile):
            process = ServiceProcess(
                probe.PROBE, settings, http_port=0, wrap_consumer=marks.consumer
            )
            stack.append(process)
            await process.start()
            await wait_until(all_handled, "every message to be handled", timeout=DRAIN_TIMEOUT)
            handled = time.perf_counter() - marks.consuming[PROBE_QUEUE]
            await wait_until(outbox_empty, "the outbox to be published", timeout=DRAIN_TIMEOUT)
            seconds = time.perf_counter() - marks.consuming[PROBE_QUEUE]
        usage = meter.stop()
        counted, outbox, inbox = (
            after - earlier
            for after, earlier in zip(await stored(watcher), stored_before, strict=True)
        )
    finally:
        await watcher.close()
    sunk = await queues.depth(SINK_QUEUE)
    check(
        counted == outbox == inbox == sunk == messages,
        f"lockgate: counted {counted}, outbox {outbox}, inbox {inbox}, sink {sunk}, "
        f"for {messages} messages",
    )
    return Throughput("lockgate", messages, seconds, usage, rss.start, rss.peak, handled)


async def stored(conn: asyncpg.Connection) -> tuple[int, int, int]:
    """(sum of the probe's counters, outbox rows, inbox rows)."""
    row = await conn.fetchrow(
        "SELECT (SELECT coalesce(sum(n), 0) FROM probe.counts) AS counted,"
        " (SELECT count(*) FROM probe.outbox) AS outbox,"
        " (SELECT count(*) FROM probe.inbox) AS inbox"
    )
    assert row is not None
    return int(row["counted"]), int(row["outbox"]), int(row["inbox"])
