"""One robust RabbitMQ connection per process: topology, confirmed publishing, consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import cast

import aio_pika
import aiormq
import aiormq.abc
import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
    ExchangeType,
)
from aio_pika.exceptions import AMQPError, DeliveryError, PublishError
from pamqp.commands import Basic

from libs.contracts.names import EXCHANGE_TYPES, Exchange, dead_letter_queue_name

log = structlog.get_logger(__name__)

Callback = Callable[[AbstractIncomingMessage], Awaitable[None]]


class PublishFailed(Exception):
    """The broker did not confirm a publish in time, or refused it."""


PUBLISH_ERRORS = (
    TimeoutError,
    DeliveryError,
    PublishError,
    AMQPError,
    ConnectionError,
    RuntimeError,  # aiormq's ChannelInvalidStateError: channel closed, reconnecting
)
"""What a publish raises when the broker does not confirm it (PublishFailed's causes)."""


Prepared = tuple[bytes, Basic.Properties, str, str]
"""A message ready for the wire: body, AMQP properties, exchange, routing key."""


@dataclass(frozen=True)
class Binding:
    """Route messages with `routing_key` on `exchange` into a queue."""

    exchange: Exchange
    routing_key: str


class Bus:
    """A service's robust connection, named after it so operators see who is connected."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractRobustChannel,
        *,
        delivery_limit: int,
        publish_timeout: float,
    ) -> None:
        self.connection = connection
        self._channel = channel
        self._delivery_limit = delivery_limit
        self._publish_timeout = publish_timeout
        self._consumers: list[tuple[AbstractRobustQueue, str]] = []

    @classmethod
    async def connect(
        cls, url: str, *, name: str, delivery_limit: int = 5, publish_timeout: float = 10.0
    ) -> Bus:
        """Connect (retrying in the background after losses) and open a confirm channel."""
        connection = await aio_pika.connect_robust(
            url, client_properties={"connection_name": name}, timeout=publish_timeout
        )
        channel = await connection.channel(publisher_confirms=True)
        return cls(
            connection,
            channel,
            delivery_limit=delivery_limit,
            publish_timeout=publish_timeout,
        )

    async def declare_exchanges(self) -> None:
        """Declare every Lockgate exchange (idempotent)."""
        for exchange, kind in EXCHANGE_TYPES.items():
            await self._channel.declare_exchange(exchange.value, ExchangeType(kind), durable=True)

    async def declare_queue(
        self, queue: str, bindings: Iterable[Binding], retired: Iterable[Binding] = ()
    ) -> None:
        """A quorum queue with a delivery limit and its `<queue>.dlq`, bound as given; the
        `retired` bindings, which an earlier version made, are removed (removing one that
        does not exist is not an error).

        Dead lettering is at-least-once: the broker keeps a rejected message until the
        dead-letter queue confirms it (that needs `reject-publish` overflow).
        """
        dlq = dead_letter_queue_name(queue)
        dead_letters = await self._channel.declare_exchange(
            Exchange.DEAD_LETTERS.value, ExchangeType.DIRECT, durable=True
        )
        dlq_queue = await self._channel.declare_queue(
            dlq, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq_queue.bind(dead_letters, routing_key=dlq)
        declared = await self._channel.declare_queue(
            queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self._delivery_limit,
                "x-dead-letter-exchange": Exchange.DEAD_LETTERS.value,
                "x-dead-letter-routing-key": dlq,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        for binding in bindings:
            await declared.bind(binding.exchange.value, routing_key=binding.routing_key)
        for binding in retired:
            await declared.unbind(binding.exchange.value, routing_key=binding.routing_key)
        # A replayed dead letter comes back to this queue alone (services/console/dead_letters.py).
        await declared.bind(Exchange.REPLAY.value, routing_key=queue)

    async def _send(
        self,
        channel: aiormq.abc.AbstractChannel,
        body: bytes,
        properties: Basic.Properties,
        exchange: str,
        routing_key: str,
        *,
        mandatory: bool = False,
    ) -> object:
        """Publish on the channel and wait for the broker's confirm.

        What aio-pika's Exchange.publish does, but without waiting for each frame to be
        written before the next publish may start (aiormq's `wait=False`): a batch is queued
        for the socket in one go instead of one write-and-drain turn of the loop per message.
        The channel's lock still orders the publishes as they are called."""
        concrete = cast("aiormq.Channel", channel)  # the abstract one does not declare `wait`
        return await concrete.basic_publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            properties=properties,
            mandatory=mandatory,
            timeout=self._publish_timeout,
            wait=False,
        )

    async def publish(
        self,
        message: aio_pika.Message,
        *,
        exchange: str,
        routing_key: str,
        mandatory: bool = False,
    ) -> None:
        """Publish and wait for the broker's confirm; raise PublishFailed otherwise."""
        try:
            # Bound the whole call: while a robust channel reconnects, aio-pika waits for it
            # without applying its own timeout.
            async with asyncio.timeout(self._publish_timeout):
                channel = await self._channel.get_underlay_channel()
                confirm = await self._send(
                    channel,
                    message.body,
                    message.properties,
                    exchange,
                    routing_key,
                    mandatory=mandatory,
                )
        except PUBLISH_ERRORS as error:
            raise PublishFailed(
                f"publish to {exchange or '(default)'}/{routing_key} failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        if not isinstance(confirm, Basic.Ack):
            raise PublishFailed(f"broker did not ack publish to {exchange}/{routing_key}")

    async def publish_many(self, items: list[tuple[aio_pika.Message, str, str]]) -> list[bool]:
        """Publish a batch in order on one channel, awaiting all confirms together.

        Returns, per item, whether the broker confirmed it. One deadline (publish_timeout)
        covers the whole batch: what is not confirmed by then counts as failed.
        """
        return await self.publish_prepared(
            [(message.body, message.properties, exchange, key) for message, exchange, key in items]
        )

    async def publish_prepared(self, items: list[Prepared]) -> list[bool]:
        """`publish_many` of messages already made AMQP properties (the outbox relay)."""
        confirmed = [False] * len(items)
        errors: list[str] = []

        async def one(channel: aiormq.abc.AbstractChannel, index: int, item: Prepared) -> None:
            body, properties, exchange, key = item
            try:
                confirm = await self._send(channel, body, properties, exchange, key)
            except PUBLISH_ERRORS as error:
                errors.append(
                    f"publish to {exchange or '(default)'}/{key} failed: "
                    f"{type(error).__name__}: {error}"
                )
                return
            if isinstance(confirm, Basic.Ack):
                confirmed[index] = True
            else:
                errors.append(f"broker did not ack publish to {exchange}/{key}")

        try:
            async with asyncio.timeout(self._publish_timeout):
                # The channel first, so that nothing suspends a task before its publish is
                # queued: tasks start in list order, and one channel keeps that order.
                channel = await self._channel.get_underlay_channel()
                await asyncio.gather(*(one(channel, i, item) for i, item in enumerate(items)))
        except TimeoutError:
            errors.append(f"no confirm within {self._publish_timeout:g} s")
        except PUBLISH_ERRORS as error:  # no channel to publish on (closed, reconnecting)
            errors.append(f"publish failed: {type(error).__name__}: {error}")
        if errors:
            log.warning("bus.publish_failed", failed=len(errors), of=len(items), first=errors[0])
        return confirmed

    async def consume(self, queue: str, callback: Callback, *, prefetch: int) -> str:
        """Consume `queue` on a channel of its own with `prefetch` unacked messages at most."""
        channel = await self.connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        declared: AbstractRobustQueue = await channel.get_queue(queue)  # type: ignore[assignment]  # robust channel gives robust queues
        tag = await declared.consume(callback, no_ack=False)
        self._consumers.append((declared, tag))
        return tag

    async def stop_consuming(self) -> None:
        """Cancel every consumer; unacked messages stay with us until acked or closed."""
        consumers, self._consumers = self._consumers, []

        async def cancel(queue: AbstractRobustQueue, tag: str) -> None:
            try:
                # Bounded: a cancel on a channel restored after a connection loss (or with
                # the broker away) can wait forever; closing the connection afterwards
                # stops deliveries anyway.
                await asyncio.wait_for(queue.cancel(tag), self._publish_timeout)
            except (TimeoutError, AMQPError, ConnectionError, RuntimeError) as error:
                log.warning("bus.cancel_failed", queue=queue.name, error=repr(error))

        # All at once: one unanswered cancel must not hold up the others, nor shutdown.
        await asyncio.gather(*(cancel(queue, tag) for queue, tag in consumers))

    async def check(self, timeout: float = 2.0) -> bool:
        """Whether the broker answers now (a passive declare round trip)."""
        if self.connection.is_closed:
            return False
        try:
            channel = await asyncio.wait_for(self.connection.channel(), timeout)
            try:
                await asyncio.wait_for(
                    channel.get_exchange(Exchange.EVENTS.value, ensure=True), timeout
                )
            finally:
                await channel.close()
        except (TimeoutError, AMQPError, ConnectionError, RuntimeError):
            return False
        return True

    async def queue_state(self, queue: str, timeout: float = 2.0) -> tuple[int, int] | None:
        """(messages ready, consumers) of a queue, by passive declare; None if not answered."""
        try:
            channel = await asyncio.wait_for(self.connection.channel(), timeout)
            try:
                declared = await asyncio.wait_for(
                    channel.declare_queue(queue, passive=True), timeout
                )
            finally:
                if not channel.is_closed:
                    await channel.close()
        except (TimeoutError, AMQPError, ConnectionError, RuntimeError):
            return None
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.connection.close(), self._publish_timeout)
        except (TimeoutError, AMQPError, ConnectionError, RuntimeError) as error:
            log.warning("bus.close_failed", error=repr(error))
