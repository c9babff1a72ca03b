"""Throughput and RPC latency of the Lockgate pipeline against hand-written baselines.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_pipeline [--messages N] [--rpc-calls N]

Everything runs in this one process, against a vhost and a database of its own
(tests.support.infra.local_infra) that are dropped at the end, even on failure.

Throughput: N `probe.count.v1` messages (same bodies, same envelope headers, same kind of
quorum queue, prefetch 64, pool of 10) are published and confirmed BEFORE each consumer
starts, so only consumption is timed, from the moment the consumer is registered:

* baseline: a raw aio-pika consumer (manual ack) + asyncpg that per message, in one
  transaction, json.loads the body, upserts a counter row and inserts one events row,
  commits, then acks;
* lockgate: tests.integration.probe.PROBE through ServiceProcess in this process (envelope
  decode, pydantic validation, inbox row, counter upsert, outbox row + NOTIFY, commit, ack,
  metrics), timed until every message is handled AND the outbox relay has published (with
  publisher confirms) every `probe.counted.v1` event into a bound quorum sink queue.

Memory: resident set size of this process read from /proc/self/statm by a sampling thread
every 5 ms (not ru_maxrss, which only ever grows over the process, nor tracemalloc, which
slows the code it measures); reported as the peak during a phase minus the RSS at its start.

RPC: sequential round trips of `probe.divide.v1` through libs.bus.RpcClient (publisher
confirm + mandatory) to the probe service (inbox row + stored reply in a transaction, reply
published with a confirm), against a raw aio-pika direct reply-to client (no confirm) and a
raw server (json in, json out, no database, no confirm) on a quorum queue of the same exchange.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from unittest.mock import patch

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from libs.bus import Bus, RpcClient, to_amqp
from libs.bus.bus import Binding, Callback
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from libs.db.migrations import migrate
from libs.observability import metrics
from libs.observability.logging import configure_logging
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from tests.integration import probe
from tests.support.infra import Infra, local_infra

PREFETCH = 64
POOL_SIZE = 10  # libs.db.pool.create_pool's default max_size, used by the baseline too
KEYS = 256  # distinct counter rows the messages spread over
PUBLISH_BATCH = 1000
RPC_WARMUP = 20
DRAIN_TIMEOUT = 600.0
POLL_SECONDS = 0.01

BASELINE_QUEUE = "bench.baseline"
BASELINE_KEY = "bench.baseline.count"
SINK_QUEUE = "bench.counted-sink"
RPC_QUEUE = "bench.rpc"
RPC_KEY = "bench.divide"
PROBE_QUEUE = "probe.inputs"
HANDLER = "inputs/count"

BASELINE_SCHEMA = """
CREATE SCHEMA bench_baseline;
CREATE TABLE bench_baseline.counts (key text PRIMARY KEY, n int NOT NULL);
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

MIB = 1024 * 1024


# --- measuring helpers ----------------------------------------------------------------------


class RssSampler:
    """Peak resident set size of this process while the block runs (sampled, /proc/self/statm)."""

    def __init__(self, interval: float = 0.005) -> None:
        self._interval = interval
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.start = 0
        self.peak = 0

    def current(self) -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self.current())

    def __enter__(self) -> RssSampler:
        gc.collect()
        self.start = self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, all cores, from /proc/stat."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def cpu_seconds() -> float:
    """User + system CPU time this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def busy_since(before: tuple[int, int]) -> float:
    busy, total = machine_ticks()
    return (busy - before[0]) / max(1, total - before[1])


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


@dataclass(frozen=True)
class Latency:
    name: str
    samples: list[float]

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile, in seconds."""
        ordered = sorted(self.samples)
        rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
        return ordered[min(rank, len(ordered)) - 1]


async def wait_until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {DRAIN_TIMEOUT:g} s")
        await asyncio.sleep(POLL_SECONDS)


@contextmanager
def consume_started(queue: str) -> Iterator[list[float]]:
    """Record when Bus.consume is called for `queue` (the start of a service's consumption).

    ServiceProcess.start() first migrates, opens its pool and connection and declares its
    topology; the clock should start where the baseline's does, at the consumer registration.
    """
    original = Bus.consume
    marks: list[float] = []

    async def consume(self: Bus, name: str, callback: Callback, *, prefetch: int) -> str:
        if name == queue:
            marks.append(time.perf_counter())
        return await original(self, name, callback, prefetch=prefetch)

    with patch.object(Bus, "consume", consume):
        yield marks


# --- messages -------------------------------------------------------------------------------


def key_of(index: int) -> str:
    return f"k{index % KEYS}"


def count_body(index: int) -> bytes:
    """The body of message `index`: the same bytes for both consumers."""
    return probe.Key(key=key_of(index)).model_dump_json().encode()


async def prepublish(bus: Bus, routing_key: str, messages: int, queue: str) -> float:
    """Publish `messages` count messages with confirms; return seconds taken once queued."""
    started = time.perf_counter()
    for first in range(0, messages, PUBLISH_BATCH):
        items = []
        for index in range(first, min(first + PUBLISH_BATCH, messages)):
            envelope = Envelope.new(source="bench", type=probe.COUNT.type, subject=key_of(index))
            items.append((to_amqp(envelope, count_body(index)), Exchange.EVENTS.value, routing_key))
        confirmed = await bus.publish_many(items)
        if not all(confirmed):
            raise RuntimeError(f"{confirmed.count(False)} publishes to {queue} not confirmed")
    seconds = time.perf_counter() - started
    queued = await queue_depth(bus, queue)
    if queued != messages:
        raise RuntimeError(f"{queue} holds {queued} messages after publishing {messages}")
    return seconds


async def queue_depth(bus: Bus, queue: str) -> int:
    channel = await bus.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
    finally:
        await channel.close()
    return int(count or 0)


# --- throughput: baseline -------------------------------------------------------------------


async def baseline_throughput(infra: Infra, bus: Bus, messages: int) -> Throughput:
    setup = await asyncpg.connect(infra.database_url)
    try:
        await setup.execute(BASELINE_SCHEMA)
    finally:
        await setup.close()
    await bus.declare_queue(BASELINE_QUEUE, [Binding(Exchange.EVENTS, BASELINE_KEY)])
    await prepublish(bus, BASELINE_KEY, messages, BASELINE_QUEUE)

    done = asyncio.Event()
    acked = 0
    cpu_before, ticks_before = cpu_seconds(), machine_ticks()
    with RssSampler() as rss:
        pool = await asyncpg.create_pool(infra.database_url, min_size=1, max_size=POOL_SIZE)
        connection = await aio_pika.connect(infra.amqp_url)
        try:

            async def on_message(message: AbstractIncomingMessage) -> None:
                nonlocal acked
                data = json.loads(message.body)
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(BASELINE_COUNT, data["key"])
                    await conn.execute(BASELINE_EVENT, data["key"], message.body.decode())
                await message.ack()
                acked += 1
                if acked == messages:
                    done.set()

            started = time.perf_counter()
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.get_queue(BASELINE_QUEUE)
            tag = await queue.consume(on_message, no_ack=False)
            await asyncio.wait_for(done.wait(), DRAIN_TIMEOUT)
            seconds = time.perf_counter() - started
            await queue.cancel(tag)
        finally:
            await connection.close()
            await pool.close()
    cpu, busy = cpu_seconds() - cpu_before, busy_since(ticks_before)

    check = await asyncpg.connect(infra.database_url)
    try:
        total = await check.fetchval("SELECT sum(n) FROM bench_baseline.counts")
        events = await check.fetchval("SELECT count(*) FROM bench_baseline.events")
    finally:
        await check.close()
    if total != messages or events != messages:
        raise RuntimeError(f"baseline: counted {total}, {events} events, for {messages} messages")
    return Throughput("baseline", messages, seconds, cpu, rss.start, rss.peak, busy)


# --- throughput: lockgate -------------------------------------------------------------------


def handled_so_far() -> float:
    """The probe's handled counter, read from that one metric (a registry-wide collect would
    also read /proc and the gc stats on every poll, which showed up in a profile)."""
    for family in metrics.MESSAGES_HANDLED.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("handler") == HANDLER:
                return sample.value
    return 0.0


async def lockgate_throughput(
    infra: Infra, bus: Bus, settings: Settings, messages: int, stack: list[ServiceProcess]
) -> Throughput:
    """Drain `messages` through the probe service; leaves it running in `stack` for RPC."""
    await migrate(infra.database_url, probe.NAME, probe.PROBE.migrations)
    # The queue exactly as the service declares it (idempotent redeclare on start).
    await bus.declare_queue(PROBE_QUEUE, [Binding(Exchange.EVENTS, probe.COUNT.binding_key)])
    await bus.declare_queue(SINK_QUEUE, [Binding(Exchange.EVENTS, probe.COUNTED.binding_key)])
    await prepublish(bus, probe.COUNT.routing_key(), messages, PROBE_QUEUE)

    watcher = await asyncpg.connect(infra.database_url)
    try:
        before = handled_so_far()

        async def all_handled() -> bool:
            return handled_so_far() - before >= messages

        async def outbox_empty() -> bool:
            pending: int = await watcher.fetchval(
                "SELECT count(*) FROM probe.outbox WHERE published_at IS NULL"
            )
            return pending == 0

        cpu_before, ticks_before = cpu_seconds(), machine_ticks()
        with RssSampler() as rss, consume_started(PROBE_QUEUE) as marks:
            process = ServiceProcess(probe.PROBE, settings, http_port=0)
            stack.append(process)
            await process.start()
            await wait_until(all_handled, "every message to be handled")
            handled = time.perf_counter() - marks[0]
            await wait_until(outbox_empty, "the outbox to be published")
            seconds = time.perf_counter() - marks[0]
        cpu, busy = cpu_seconds() - cpu_before, busy_since(ticks_before)

        counted = await watcher.fetchval("SELECT sum(n) FROM probe.counts")
        outbox = await watcher.fetchval("SELECT count(*) FROM probe.outbox")
        inbox = await watcher.fetchval("SELECT count(*) FROM probe.inbox")
    finally:
        await watcher.close()
    sunk = await queue_depth(bus, SINK_QUEUE)
    if not counted == outbox == inbox == sunk == messages:
        raise RuntimeError(
            f"lockgate: counted {counted}, outbox {outbox}, inbox {inbox}, "
            f"sink {sunk}, for {messages} messages"
        )
    return Throughput("lockgate", messages, seconds, cpu, rss.start, rss.peak, busy, handled)


# --- RPC latency ----------------------------------------------------------------------------


@asynccontextmanager
async def raw_rpc_server(infra: Infra, bus: Bus) -> AsyncIterator[None]:
    """Answers `{"dividend", "divisor"}` with `{"value"}` on reply-to, then acks."""
    await bus.declare_queue(RPC_QUEUE, [Binding(Exchange.COMMANDS, RPC_KEY)])
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)

        async def serve(message: AbstractIncomingMessage) -> None:
            request = json.loads(message.body)
            body = json.dumps({"value": request["dividend"] / request["divisor"]}).encode()
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body, content_type="application/json", correlation_id=message.correlation_id
                ),
                routing_key=message.reply_to or "",
            )
            await message.ack()

        queue = await channel.get_queue(RPC_QUEUE)
        await queue.consume(serve, no_ack=False)
        yield
    finally:
        await connection.close()


class RawRpcClient:
    """The least a direct reply-to caller does: publish, await the correlated reply."""

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel
        self._pending: dict[str, asyncio.Future[AbstractIncomingMessage]] = {}
        self._sequence = 0

    async def start(self) -> None:
        replies = await self._channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
        await replies.consume(self._on_reply, no_ack=True)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message)

    async def divide(self, dividend: int, divisor: int) -> float:
        self._sequence += 1
        correlation_id = str(self._sequence)
        future: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        exchange = await self._channel.get_exchange(Exchange.COMMANDS.value, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                probe.Divide(dividend=dividend, divisor=divisor).model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                correlation_id=correlation_id,
                reply_to="amq.rabbitmq.reply-to",
            ),
            routing_key=RPC_KEY,
        )
        reply = await asyncio.wait_for(future, 5.0)
        value: float = json.loads(reply.body)["value"]
        return value


async def timed_calls(call: Callable[[int], Awaitable[float]], calls: int) -> list[float]:
    for index in range(RPC_WARMUP):
        await call(index + 1)
    samples = []
    for index in range(calls):
        started = time.perf_counter()
        value = await call(index + 1)
        samples.append(time.perf_counter() - started)
        assert value == (index + 1) / 2, value
    return samples


async def baseline_rpc(infra: Infra, bus: Bus, calls: int) -> Latency:
    async with raw_rpc_server(infra, bus):
        connection = await aio_pika.connect(infra.amqp_url)
        try:
            client = RawRpcClient(await connection.channel(publisher_confirms=False))
            await client.start()
            samples = await timed_calls(lambda i: client.divide(i, 2), calls)
        finally:
            await connection.close()
    return Latency("baseline", samples)


async def lockgate_rpc(bus: Bus, calls: int) -> Latency:
    client = RpcClient(bus, source="bench", timeout=5.0)
    await client.start()

    async def call(index: int) -> float:
        reply = await client.call(probe.DIVIDE, probe.Divide(dividend=index, divisor=2))
        return reply.value

    return Latency("lockgate", await timed_calls(call, calls))


# --- report ---------------------------------------------------------------------------------


def report(
    messages: int,
    rows: list[Throughput],
    latencies: list[Latency],
    environment: dict[str, str],
) -> None:
    print()
    for name, value in environment.items():
        print(f"{name:>12}: {value}")
    print(
        "CPU s: this process (user+sys); machine busy: all cores, RabbitMQ and PostgreSQL"
        " included; RSS: this process, sampled from /proc/self/statm every 5 ms"
    )
    print()
    print(
        f"Throughput: {messages} messages pre-published, prefetch {PREFETCH}, "
        f"pool {POOL_SIZE}, {KEYS} counter keys, quorum queues"
    )
    header = (
        f"| {'consumer':<9} | {'drain s':>8} | {'msg/s':>8} | {'CPU s':>6} "
        f"| {'CPU ms/msg':>10} | {'machine busy':>12} | {'RSS start MiB':>13} "
        f"| {'RSS peak MiB':>12} | {'RSS delta MiB':>13} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        print(
            f"| {row.name:<9} | {row.seconds:>8.2f} | {row.rate:>8.0f} | {row.cpu:>6.2f} "
            f"| {row.cpu / row.messages * 1000:>10.3f} | {row.machine_busy:>12.0%} "
            f"| {row.rss_start / MIB:>13.1f} | {row.rss_peak / MIB:>12.1f} "
            f"| {(row.rss_peak - row.rss_start) / MIB:>13.1f} |"
        )
    by_name = {row.name: row for row in rows}
    base, lockgate = by_name["baseline"], by_name["lockgate"]
    if lockgate.handled_seconds is not None:
        print(
            f"lockgate: all messages handled after {lockgate.handled_seconds:.2f} s "
            f"({messages / lockgate.handled_seconds:.0f} msg/s), outbox published after "
            f"{lockgate.seconds:.2f} s"
        )
    print(f"throughput ratio lockgate/baseline: {lockgate.rate / base.rate:.3f}")
    print()
    calls = len(latencies[0].samples)
    print(f"RPC: {calls} sequential probe.divide.v1 round trips after {RPC_WARMUP} warm-up calls")
    header = f"| {'client':<9} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} | {'mean ms':>7} |"
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for latency in latencies:
        print(
            f"| {latency.name:<9} | {latency.percentile(50) * 1000:>7.3f} "
            f"| {latency.percentile(95) * 1000:>7.3f} | {latency.percentile(99) * 1000:>7.3f} "
            f"| {statistics.fmean(latency.samples) * 1000:>7.3f} |"
        )
    lat = {latency.name: latency for latency in latencies}
    ratios = ", ".join(
        f"p{p} {lat['lockgate'].percentile(p) / lat['baseline'].percentile(p):.2f}"
        for p in (50, 95, 99)
    )
    print(f"RPC latency ratio lockgate/baseline: {ratios}")


async def environment(infra: Infra) -> dict[str, str]:
    conn = await asyncpg.connect(infra.database_url)
    try:
        postgres = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        transport = connection.transport
        rabbit = "?" if transport is None else transport.connection.server_properties["version"]
    finally:
        await connection.close()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.node()}",
        "python": platform.python_version(),
        "load avg": " ".join(f"{load:.2f}" for load in os.getloadavg()) + " (1/5/15 min, at start)",
        "versions": (
            f"aio-pika {version('aio-pika')}, asyncpg {version('asyncpg')}, "
            f"pydantic {version('pydantic')}, RabbitMQ "
            f"{rabbit.decode() if isinstance(rabbit, bytes) else rabbit}, PostgreSQL {postgres}"
        ),
    }


async def run(infra: Infra, messages: int, calls: int) -> None:
    settings = Settings(amqp_url=infra.amqp_url, database_url=infra.database_url, prefetch=PREFETCH)
    env = await environment(infra)
    bus = await Bus.connect(
        infra.amqp_url, name="lockgate-bench", delivery_limit=settings.delivery_limit
    )
    stack: list[ServiceProcess] = []
    try:
        await bus.declare_exchanges()
        print(f"baseline: publishing {messages} then draining ...", flush=True)
        base = await baseline_throughput(infra, bus, messages)
        print(f"lockgate: publishing {messages} then draining ...", flush=True)
        lockgate = await lockgate_throughput(infra, bus, settings, messages, stack)
        print(f"RPC: {calls} calls each ...", flush=True)
        rpc_base = await baseline_rpc(infra, bus, calls)
        rpc_lockgate = await lockgate_rpc(bus, calls)
    finally:
        for process in stack:
            await process.stop()
        await bus.close()
    report(messages, [base, lockgate], [rpc_base, rpc_lockgate], env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=20_000, help="messages per consumer")
    parser.add_argument("--rpc-calls", type=int, default=500, help="timed RPC calls per client")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rpc_calls < 1:
        parser.error("--messages and --rpc-calls must be positive")
    configure_logging("bench", "warning")
    started = time.perf_counter()
    with local_infra(Settings()) as infra:
        print(f"vhost {infra.vhost}, database {infra.database_url.rsplit('/', 1)[-1]}")
        asyncio.run(run(infra, args.messages, args.rpc_calls))
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
