"""One robust RabbitMQ connection per process: topology, confirmed publishing, consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aio_pika
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

    async def declare_queue(self, queue: str, bindings: Iterable[Binding]) -> None:
        """A quorum queue with a delivery limit and its `<queue>.dlq`, bound as given.

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
        # A replayed dead letter comes back to this queue alone (services/console/dead_letters.py).
        await declared.bind(Exchange.REPLAY.value, routing_key=queue)

    async def publish(
        self,
        message: aio_pika.Message,
        *,
        exchange: str,
        routing_key: str,
        mandatory: bool = False,
    ) -> None:
        """Publish and wait for the broker's confirm; raise PublishFailed otherwise."""

        async def send() -> object:
            target = (
                self._channel.default_exchange
                if exchange == ""
                else await self._channel.get_exchange(exchange, ensure=False)
            )
            return await target.publish(
                message,
                routing_key=routing_key,
                mandatory=mandatory,
                timeout=self._publish_timeout,
            )

        try:
            # Bound the whole call: while a robust channel reconnects, aio-pika waits for it
            # without applying its own timeout.
            confirm = await asyncio.wait_for(send(), self._publish_timeout)
        except (
            TimeoutError,
            DeliveryError,
            PublishError,
            AMQPError,
            ConnectionError,
            RuntimeError,  # aiormq's ChannelInvalidStateError: channel closed, reconnecting
        ) as error:
            raise PublishFailed(
                f"publish to {exchange or '(default)'}/{routing_key} failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        if not isinstance(confirm, Basic.Ack):
            raise PublishFailed(f"broker did not ack publish to {exchange}/{routing_key}")

    async def publish_many(self, items: list[tuple[aio_pika.Message, str, str]]) -> list[bool]:
        """Publish a batch in order on one channel, awaiting all confirms together.

        Returns, per item, whether the broker confirmed it.
        """
        errors: list[str] = []

        async def one(message: aio_pika.Message, exchange: str, routing_key: str) -> bool:
            try:
                await self.publish(message, exchange=exchange, routing_key=routing_key)
            except PublishFailed as error:
                errors.append(str(error))
                return False
            return True

        # Tasks start in list order; a single channel keeps that order at the broker.
        confirmed = list(await asyncio.gather(*(one(m, e, k) for m, e, k in items)))
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
