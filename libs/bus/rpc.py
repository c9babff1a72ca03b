"""Request/reply over `lockgate.commands` with RabbitMQ direct reply-to."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any, TypeVar

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel
from aio_pika.exceptions import AMQPError, PublishError
from pydantic import ValidationError

from libs.bus.bus import Bus
from libs.bus.codec import to_amqp
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from libs.contracts.spec import CommandSpec, Contract
from libs.contracts.system import RpcError as RpcErrorBody

log = structlog.get_logger(__name__)

REPLY_TO = "amq.rabbitmq.reply-to"
STATUS_HEADER = "x-lockgate-status"
"""Header on every reply: `ok` (body is the reply model) or `error` (body is RpcError)."""
REPLY_BY_HEADER = "x-lockgate-reply-by"
"""Header on every command: when its caller stops waiting (Unix time in milliseconds).

A command that reaches its service later is acknowledged and dropped, never handled: the
caller was told it timed out. This replaces a message TTL, because an expired message in a
queue with a dead-letter exchange is dead-lettered, and a service down for longer than a
caller's timeout would fill its `.dlq` with commands nobody waits for.
"""
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d8a1c-3c1e-4f51-9a43-2f1b7e0c5d27")


def command_id(command_type: str, idempotency_key: str) -> str:
    """The message id of a command sent with an idempotency key: the same key, the same id,
    so the service's inbox answers a retry with the reply it stored for the first call."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{command_type}\n{idempotency_key}"))


def reply_by(message: AbstractIncomingMessage) -> float | None:
    """When the caller of a command stops waiting (Unix seconds), if it said so."""
    value = (message.headers or {}).get(REPLY_BY_HEADER)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) / 1000.0


Req = TypeVar("Req", bound=Contract)
Rep = TypeVar("Rep", bound=Contract)


class RpcError(Exception):
    """The service answered with an error; carries its class, message and field."""

    def __init__(self, command: str, body: RpcErrorBody) -> None:
        self.command = command
        self.body = body
        super().__init__(f"{command} failed: {body.error}: {body.message}")


class RpcTimeout(TimeoutError):
    """No reply within the timeout."""


class ServiceUnavailable(Exception):
    """No queue is bound for the command: the service that answers it was never started."""


class BrokerUnavailable(ConnectionError):
    """The connection to the broker is down (it reconnects by itself); try again shortly."""


class RpcClient:
    """Sends commands and awaits replies; one per process, safe for concurrent calls.

    Direct reply-to needs a live consumer on the channel that publishes; aio-pika does not
    restore that consumer after a reconnect, so the client opens a fresh channel after
    each reconnect and fails the calls that were waiting on the lost one.
    """

    def __init__(self, bus: Bus, *, source: str, timeout: float) -> None:
        self._bus = bus
        self._source = source
        self._timeout = timeout
        self._pending: dict[str, asyncio.Future[AbstractIncomingMessage]] = {}
        self._channel: AbstractRobustChannel | None = None
        self._opening = asyncio.Lock()
        self._watching = False
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> AbstractRobustChannel:
        """Open the channel and consume the direct reply-to pseudo-queue (no-ack, as required);
        the channel, for this call only (a concurrent reconnect may drop `self._channel`)."""
        if not self._watching:
            self._bus.connection.reconnect_callbacks.add(self._on_reconnect)
            self._watching = True
        async with self._opening:
            if self._channel is not None and not self._channel.is_closed:
                return self._channel
            channel = await self._bus.connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            replies = await channel.get_queue(REPLY_TO, ensure=False)
            await replies.consume(self._on_reply, no_ack=True)
            self._channel = channel
            return channel

    def _on_reconnect(self, *_: object) -> None:
        lost, self._channel = self._channel, None
        if lost is not None:
            task = asyncio.get_running_loop().create_task(_close_quietly(lost))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    BrokerUnavailable("the broker connection was lost while waiting for a reply")
                )

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is None or future.done():
            log.warning("rpc.late_reply", correlation_id=message.correlation_id)
            return
        future.set_result(message)

    async def call(
        self,
        spec: CommandSpec[Req, Rep],
        request: Req,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Rep:
        """Send `request` and return the reply.

        With an `idempotency_key` (unique per intended change, chosen by the caller) a retry
        of the same call is answered from the service's inbox instead of applied again.
        Raises RpcError (the service refused or failed), RpcTimeout, ServiceUnavailable (no
        queue takes the command) or BrokerUnavailable (connection down, reconnecting).
        """
        limit = self._timeout if timeout is None else timeout
        # Replies are matched on a key unique to this call, never on a caller's value.
        key = str(uuid.uuid4())
        envelope = Envelope.new(source=self._source, type=spec.type, correlation_id=key)
        if idempotency_key is not None:
            envelope = envelope.model_copy(update={"id": command_id(spec.type, idempotency_key)})
        future: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()
        message = to_amqp(envelope, request.model_dump_json().encode(), reply_to=REPLY_TO)
        message.headers[REPLY_BY_HEADER] = int((time.time() + limit) * 1000)
        try:
            channel = await asyncio.wait_for(self.start(), limit)
            self._pending[key] = future
            exchange = await channel.get_exchange(Exchange.COMMANDS.value, ensure=False)
            await exchange.publish(
                message, routing_key=spec.routing_key, mandatory=True, timeout=limit
            )
            reply = await asyncio.wait_for(future, limit)
        except PublishError as error:
            raise ServiceUnavailable(
                f"no queue takes {spec.type}: is the {spec.handler} service running?"
            ) from error
        except TimeoutError:
            raise RpcTimeout(
                f"{spec.type}: no reply within {limit:g} s; "
                f"is the {spec.handler} service running and healthy?"
            ) from None
        except (AMQPError, RuntimeError) as error:  # channel closed while reconnecting
            self._channel = None
            raise BrokerUnavailable(
                f"{spec.type}: broker connection unavailable ({type(error).__name__}); "
                "it reconnects by itself, try again shortly"
            ) from error
        finally:
            self._pending.pop(key, None)
        return _decode_reply(spec, reply)


async def _close_quietly(channel: AbstractRobustChannel) -> None:
    with contextlib.suppress(AMQPError, RuntimeError, ConnectionError, TimeoutError):
        await asyncio.wait_for(channel.close(), 5)


def _decode_reply(spec: CommandSpec[Any, Rep], reply: AbstractIncomingMessage) -> Rep:
    status = (reply.headers or {}).get(STATUS_HEADER)
    try:
        if status == "error":
            raise RpcError(spec.type, RpcErrorBody.model_validate_json(reply.body))
        return spec.reply.model_validate_json(reply.body)
    except ValidationError as error:
        raise RpcError(
            spec.type,
            RpcErrorBody(error="InvalidReply", message=f"reply does not match its model: {error}"),
        ) from None
