"""The broker as the benchmarks use it: publishing with confirms, queue depths and purges."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel

from libs.bus import Bus

PUBLISH_BATCH = 1000


async def publish_confirmed(
    bus: Bus, items: Sequence[tuple[aio_pika.Message, str, str]], batch: int = PUBLISH_BATCH
) -> float:
    """Publish (message, exchange, routing key) items in batches, every one confirmed; seconds."""
    started = time.perf_counter()
    for first in range(0, len(items), batch):
        confirmed = await bus.publish_many(list(items[first : first + batch]))
        if not all(confirmed):
            raise RuntimeError(f"{confirmed.count(False)} publishes not confirmed")
    return time.perf_counter() - started


class QueueProbe:
    """Depths and purges on a plain (not robust) channel: a robust one answers passive
    declares from its cache, so a depth read through it can be stale."""

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel

    async def depth(self, queue: str) -> int:
        declared = await self._channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)

    async def purge(self, queue: str) -> None:
        declared = await self._channel.declare_queue(queue, passive=True)
        await declared.purge()


@asynccontextmanager
async def queue_probe(amqp_url: str) -> AsyncIterator[QueueProbe]:
    connection = await aio_pika.connect(amqp_url)
    try:
        yield QueueProbe(await connection.channel(publisher_confirms=False))
    finally:
        await connection.close()
