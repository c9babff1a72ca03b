"""Throughput: the probe service's pipeline against a raw aio-pika + asyncpg consumer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.common.baselines import mirror_table, raw_drain
from bench.common.infra import check, unpublished, wait_until
from bench.common.meters import RssSampler, busy_since, counter_value, cpu_seconds, machine_ticks
from bench.common.queues import QueueProbe, publish_confirmed
from bench.common.tracing import Trace
from libs.bus import Bus, to_amqp
from libs.bus.bus import Binding
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, queue_name
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
SINK_QUEUE = "bench.counted-sink"
COUNTING = next(route for route in probe.PROBE.events if route.spec.type == probe.COUNT.type)
PROBE_QUEUE = queue_name(probe.NAME, COUNTING.queue)
HANDLER = COUNTING.name
"""The counting route's inbox key and metric label."""

BASELINE_SCHEMA = f"""
CREATE SCHEMA bench_baseline;
{mirror_table("probe.counts", "bench_baseline.counts")}
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


@dataclass(frozen=True)
class Throughput:
    name: str
    messages: int
    seconds: float
    cpu: float
    rss_start: int
    rss_peak: int
    machine_busy: float
    """Share of all the machine's cores busy during the phase (broker and database included)."""
    handled_seconds: float | None = None
    """Lockgate only: when the last message was handled (before the outbox had drained)."""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


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
    cpu_before, ticks_before = cpu_seconds(), machine_ticks()
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
        finally:
            await pool.close()
    cpu, busy = cpu_seconds() - cpu_before, busy_since(ticks_before)
    conn = await asyncpg.connect(infra.database_url)
    try:
        total = await conn.fetchval("SELECT sum(n) FROM bench_baseline.counts")
        events = await conn.fetchval("SELECT count(*) FROM bench_baseline.events")
    finally:
        await conn.close()
    check(
        total == events == messages,
        f"baseline: counted {total}, {events} events, for {messages} messages",
    )
    return Throughput("baseline", messages, seconds, cpu, rss.start, rss.peak, busy)


async def lockgate_throughput(  # noqa: PLR0917 - one phase's collaborators
    infra: Infra,
    bus: Bus,
    queues: QueueProbe,
    settings: Settings,
    messages: int,
    stack: list[ServiceProcess],
) -> Throughput:
    """Drain `messages` through the probe service; leaves it running in `stack` for RPC."""
    # The queue exactly as the service declares it (idempotent redeclare on start).
    await bus.declare_queue(PROBE_QUEUE, [Binding(Exchange.EVENTS, probe.COUNT.binding_key)])
    await bus.declare_queue(SINK_QUEUE, [Binding(Exchange.EVENTS, probe.COUNTED.binding_key)])
    await prepublish(bus, queues, probe.COUNT.routing_key(), messages, PROBE_QUEUE)
    watcher = await asyncpg.connect(infra.database_url)
    try:
        before = counter_value(metrics.MESSAGES_HANDLED, handler=HANDLER)

        async def all_handled() -> bool:
            return counter_value(metrics.MESSAGES_HANDLED, handler=HANDLER) - before >= messages

        async def outbox_empty() -> bool:
            return await unpublished(watcher, probe.NAME) == 0

        marks = Trace(sql=False)  # only when the consumer starts: nothing per message
        cpu_before, ticks_before = cpu_seconds(), machine_ticks()
        with RssSampler() as rss:
            process = ServiceProcess(
                probe.PROBE, settings, http_port=0, wrap_consumer=marks.consumer
            )
            stack.append(process)
            await process.start()
            await wait_until(all_handled, "every message to be handled", timeout=DRAIN_TIMEOUT)
            handled = time.perf_counter() - marks.consuming[PROBE_QUEUE]
            await wait_until(outbox_empty, "the outbox to be published", timeout=DRAIN_TIMEOUT)
            seconds = time.perf_counter() - marks.consuming[PROBE_QUEUE]
        cpu, busy = cpu_seconds() - cpu_before, busy_since(ticks_before)
        counted = await watcher.fetchval("SELECT sum(n) FROM probe.counts")
        outbox = await watcher.fetchval("SELECT count(*) FROM probe.outbox")
        inbox = await watcher.fetchval("SELECT count(*) FROM probe.inbox")
    finally:
        await watcher.close()
    sunk = await queues.depth(SINK_QUEUE)
    check(
        counted == outbox == inbox == sunk == messages,
        f"lockgate: counted {counted}, outbox {outbox}, inbox {inbox}, sink {sunk}, "
        f"for {messages} messages",
    )
    return Throughput("lockgate", messages, seconds, cpu, rss.start, rss.peak, busy, handled)
