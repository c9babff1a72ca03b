"""Hand-written baselines the benchmarks compare Lockgate with: plain aio-pika and asyncpg.

Each does the same work as the Lockgate path it is compared with, written the plain way: the
pipeline's (`raw_pipeline_drain`) consumes, runs one transaction, publishes the event it
caused with a confirm and acks; `raw_drain` is the bare consumer (no publish) some older
figures are kept against.

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


async def raw_pipeline_drain(  # noqa: PLR0917 - the consumer's and publisher's settings
    amqp_url: str,
    queue: str,
    messages: int,
    prefetch: int,
    exchange: str,
    handle: Callable[[AbstractIncomingMessage], Awaitable[tuple[aio_pika.Message, str]]],
    *,
    timeout: float,
) -> float:
    """The message pipeline by hand: consume `messages` from `queue` (manual acks, `prefetch`
    unacked at most); per message `handle` runs its transaction and returns the event it
    caused (message, routing key), which is then published to `exchange` on a confirm channel
    of the same connection and confirmed by the broker before the incoming message is acked.
    The seconds from opening the channels to the last ack."""
    done = asyncio.Event()
    acked = 0
    failures: list[BaseException] = []
    connection = await aio_pika.connect(amqp_url)
    try:
        started = time.perf_counter()
        publisher = await connection.channel(publisher_confirms=True)
        target = await publisher.get_exchange(exchange, ensure=False)

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal acked
            try:
                event, routing_key = await handle(message)
                confirm = await target.publish(event, routing_key=routing_key)
            except BaseException as error:
                failures.append(error)
                done.set()
                raise
            if not isinstance(confirm, Basic.Ack):
                failures.append(RuntimeError(f"raw pipeline: publish not acked: {confirm!r}"))
                done.set()
                return
            await message.ack()
            acked += 1
            if acked == messages:
                done.set()

        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        declared = await channel.get_queue(queue)
        tag = await declared.consume(on_message, no_ack=False)
        await asyncio.wait_for(done.wait(), timeout)
        seconds = time.perf_counter() - started
        await declared.cancel(tag)
        if failures:
            raise RuntimeError(f"raw pipeline: {failures[0]!r}") from failures[0]
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


BatchWork = Callable[[list[AbstractIncomingMessage]], Awaitable[float]]
"""A raw batch consumer's work on one batch (decode, one transaction); returns the seconds
its transaction took (the database time of the batch)."""


async def raw_batch_drain(
    amqp_url: str,
    queue: str,
    messages: int,
    *,
    prefetch: int,
    batch: int,
    wait: float,
    work: BatchWork,
    timeout: float,
) -> tuple[float, list[float]]:
    """Consume `messages` from `queue` as a hand-written batching consumer would: `prefetch`
    unacked deliveries, batches of `batch` (or what came within `wait` seconds of a batch's
    first message), `work` on one batch at a time while the next fills, then ONE ack with
    multiple=True per batch. Returns the seconds from opening the channel to the last ack,
    and each batch's transaction seconds (as `work` measured them)."""
    done = asyncio.Event()
    sealed: asyncio.Queue[list[AbstractIncomingMessage]] = asyncio.Queue()
    filling: list[AbstractIncomingMessage] = []
    timer: asyncio.TimerHandle | None = None
    transactions: list[float] = []
    acked = 0

    def seal() -> None:
        nonlocal filling, timer
        if timer is not None:
            timer.cancel()
            timer = None
        if filling:
            sealed.put_nowait(filling)
            filling = []

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal timer
        filling.append(message)
        if len(filling) >= batch:
            seal()
        elif timer is None:
            timer = asyncio.get_running_loop().call_later(wait, seal)

    async def commit() -> None:
        nonlocal acked
        while acked < messages:
            taken = await sealed.get()
            transactions.append(await work(taken))
            await taken[-1].ack(multiple=True)
            acked += len(taken)
        done.set()

    connection = await aio_pika.connect(amqp_url)
    committer = asyncio.create_task(commit())
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
        committer.cancel()
        await connection.close()
    return seconds, transactions


ClaimBatch = Callable[[asyncpg.Connection, int], Awaitable[int]]
"""Claims up to n rows inside the open transaction (`FOR UPDATE SKIP LOCKED`) and moves them
on (deletes or reschedules them); returns how many it claimed (0: nothing left)."""


async def raw_claim_outbox_publish(
    conn: asyncpg.Connection,
    amqp_url: str,
    exchange: str,
    items: Sequence[tuple[RawMessage, str]],
    *,
    claim: ClaimBatch,
    outbox: str,
    batch: int,
) -> float:
    """What a timer service does by hand, one batch after the other: in one transaction
    `claim` a batch of due rows and insert as many outbox rows (id, exchange, routing key,
    envelope, body: one `unnest` INSERT), commit, then publish the batch on one confirm
    channel and await every confirm. `items` are (message, its envelope JSON), already
    built; `outbox` is a table shaped like the service's (mirror_outbox). It does not mark
    the rows published afterwards (a real outbox must), so the baseline stays the faster
    side. Returns the seconds it took for all of `items`."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange, ensure=False)
        insert = (
            f"INSERT INTO {outbox} (id, exchange, routing_key, envelope, body)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])"
        )
        started = time.perf_counter()
        done = 0
        while done < len(items):
            async with conn.transaction():
                claimed = await claim(conn, min(batch, len(items) - done))
                if not claimed:
                    raise RuntimeError(f"raw claim: nothing left to claim after {done}")
                chunk = items[done : done + claimed]
                await conn.execute(
                    insert,
                    [properties["message_id"] for (_, properties, _), _ in chunk],
                    [exchange] * len(chunk),
                    [key for (_, _, key), _ in chunk],
                    [envelope for _, envelope in chunk],
                    [body for (body, _, _), _ in chunk],
                )
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
                    for (body, properties, key), _ in chunk
                )
            )
            if not all(isinstance(confirm, Basic.Ack) for confirm in confirms):
                raise RuntimeError("raw claim + outbox + publish: a message was not acked")
            done += claimed
        return time.perf_counter() - started
    finally:
        await connection.close()
