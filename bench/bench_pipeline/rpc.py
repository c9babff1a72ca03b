"""RPC latency: RpcClient to the probe service against a raw direct reply-to client and server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bench.bench_pipeline.throughput import PREFETCH
from bench.common.infra import check
from libs.bus import Bus, RpcClient
from libs.bus.bus import Binding
from libs.contracts.names import Exchange
from tests.integration import probe
from tests.support.infra import Infra

RPC_WARMUP = 20
RPC_QUEUE = "bench.rpc"
RPC_KEY = "bench.divide"


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
        check(value == (index + 1) / 2, f"{index + 1} / 2 answered {value}")
    return samples


async def baseline_rpc(infra: Infra, bus: Bus, calls: int) -> list[float]:
    async with raw_rpc_server(infra, bus):
        connection = await aio_pika.connect(infra.amqp_url)
        try:
            client = RawRpcClient(await connection.channel(publisher_confirms=False))
            await client.start()
            return await timed_calls(lambda i: client.divide(i, 2), calls)
        finally:
            await connection.close()


async def lockgate_rpc(bus: Bus, calls: int) -> list[float]:
    client = RpcClient(bus, source="bench", timeout=5.0)
    await client.start()

    async def call(index: int) -> float:
        reply = await client.call(probe.DIVIDE, probe.Divide(dividend=index, divisor=2))
        return reply.value

    return await timed_calls(call, calls)
