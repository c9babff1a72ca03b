"""Hand-written baselines the benchmarks compare Lockgate with: plain aio-pika and asyncpg.

Tables a baseline writes are made LIKE the service's own (mirror_table, mirror_outbox), so
their columns, types, keys and indexes follow the service's migrations and cannot drift.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage
from pamqp.commands import Basic


def mirror_table(source: str, target: str) -> str:
    """DDL of `target` shaped exactly like `source` (columns, keys, indexes, defaults)."""
    return f"CREATE TABLE {target} (LIKE {source} INCLUDING ALL);"


def mirror_outbox(source: str, target: str) -> str:
    """DDL of `target` shaped like the outbox `source`, with a sequence of its own (a plain
    LIKE would share, and advance, the service's outbox sequence)."""
    return (
        f"{mirror_table(source, target)}"
        f" CREATE SEQUENCE {target}_seq OWNED BY {target}.seq;"
        f" ALTER TABLE {target} ALTER seq SET DEFAULT nextval('{target}_seq');"
    )


async def raw_drain(
    amqp_url: str,
    queue: str,
    messages: int,
    prefetch: int,
    handle: Callable[[AbstractIncomingMessage], Awaitable[None]],
    *,
    timeout: float,
) -> float:
    """Consume `messages` from `queue` with manual acks, `handle` then ack each; the seconds
    from opening the channel to the last ack."""
    done = asyncio.Event()
    acked = 0

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal acked
        await handle(message)
        await message.ack()
        acked += 1
        if acked == messages:
            done.set()

    connection = await aio_pika.connect(amqp_url)
    try:
        started = time.perf_counter()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        declared = await channel.get_queue(queue)
        tag = await declared.consume(on_message, no_ack=False)
        await asyncio.wait_for(done.wait(), timeout)
        seconds = time.perf_counter() - started
        await declared.cancel(tag)
    finally:
        await connection.close()
    return seconds


RawMessage = tuple[bytes, dict[str, Any], str]
"""Body, aio_pika.Message properties besides the body (headers, message_id, ...), routing key."""


async def raw_publish(
    amqp_url: str, exchange: str, items: Sequence[RawMessage], batch: int
) -> float:
    """Publish persistent JSON messages on one confirm channel, `batch` at a time like
    Bus.publish_many, every batch's confirms awaited; the seconds it took (building the
    messages included, as the relay builds its own)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange, ensure=False)
        started = time.perf_counter()
        for first in range(0, len(items), batch):
            confirms = await asyncio.gather(
                *(
                    target.publish(
                        aio_pika.Message(
                            body,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            **properties,
                        ),
                        routing_key=key,
                    )
                    for body, properties, key in items[first : first + batch]
                )
            )
            if not all(isinstance(confirm, Basic.Ack) for confirm in confirms):
                raise RuntimeError("raw publish: a message was not acked")
        return time.perf_counter() - started
    finally:
        await connection.close()


async def timed_transaction(
    conn: asyncpg.Connection, statements: Sequence[tuple[str, Sequence[object]]]
) -> float:
    """Seconds to run `statements` (SQL, arguments) in one transaction."""
    started = time.perf_counter()
    async with conn.transaction():
        for sql, args in statements:
            await conn.execute(sql, *args)
    return time.perf_counter() - started
