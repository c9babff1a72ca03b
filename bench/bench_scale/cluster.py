"""Past one broker node: the same quorum-queue work on the shared node and on a private
3-node RabbitMQ cluster on this box (tests/support/servers.py `rabbitmq_cluster(3)`), where
every quorum queue has a replica on each node; and reporting ingesting through it.

On one 2-core box a cluster cannot be faster (three Erlang VMs share the cores and every
message is replicated three times); what this measures is the price of the replication
that lets the broker survive a node, and that the services run on it unchanged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aio_pika

QUEUE = "bench.scale.quorum"
BATCH = 500
BODY = b'{"computer_id":"pc-0000001","detections":[]}' * 8


@dataclass(frozen=True)
class QuorumRates:
    nodes: int
    messages: int
    publish_per_second: float
    consume_per_second: float


async def quorum_rates(amqp_url: str, nodes: int, messages: int) -> QuorumRates:
    """Confirmed publishes (batches of 500) to a quorum queue, then consume + ack of all."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.purge()
        exchange = channel.default_exchange
        started = time.perf_counter()
        for first in range(0, messages, BATCH):
            count = min(BATCH, messages - first)
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=QUEUE,
                    )
                    for _ in range(count)
                )
            )
        published = time.perf_counter() - started
        await channel.set_qos(prefetch_count=BATCH)
        received = 0
        started = time.perf_counter()
        async with queue.iterator() as incoming:
            async for message in incoming:
                await message.ack()
                received += 1
                if received == messages:
                    break
        consumed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return QuorumRates(nodes, messages, messages / published, messages / consumed)
