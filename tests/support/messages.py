"""Building and collecting real messages in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from libs.bus import Bus, to_amqp
from libs.contracts import Envelope
from libs.contracts.names import Exchange
from libs.contracts.scheduler import AGENT_CHECKIN, AgentCheckin


def checkin(computer_id: str, *, message_id: str | None = None) -> tuple[aio_pika.Message, str]:
    """An agent check-in as the agent would publish it, with its routing key."""
    body = AgentCheckin(
        computer_id=computer_id,
        hostname=f"{computer_id}.corp.example",
        os_version="10.0.26100",
        timezone="Europe/Paris",
        agent_version="1.0.0",
        checked_in_at=datetime.now(UTC),
    )
    envelope = Envelope.new(
        source=f"agent/{computer_id}", type=AGENT_CHECKIN.type, subject=computer_id
    )
    if message_id is not None:
        envelope = envelope.model_copy(update={"id": message_id})
    message = to_amqp(envelope, body.model_dump_json().encode())
    return message, AGENT_CHECKIN.routing_key(computer_id)


async def publish_checkins(bus: Bus, messages: list[tuple[aio_pika.Message, str]]) -> None:
    """Publish with confirms, in batches, refusing to go on if any is not confirmed."""
    for start in range(0, len(messages), 500):
        batch = [(m, Exchange.AGENTS.value, key) for m, key in messages[start : start + 500]]
        assert all(await bus.publish_many(batch))


class Collector:
    """Consumes a test queue and keeps the message ids (and count) it received."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.messages: list[AbstractIncomingMessage] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        self.ids.append(message.message_id or "")
        self.messages.append(message)
        self._changed.set()
        await message.ack()

    async def wait_for(self, count: int, timeout: float) -> None:
        """Until at least `count` distinct ids arrived; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(set(self.ids)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(set(self.ids))} of {count} messages in {timeout} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue


async def bind_test_queue(bus: Bus, name: str, exchange: Exchange, key: str) -> AbstractQueue:
    """A throwaway queue bound to `exchange` with `key`, deleted when the vhost is."""
    channel = await bus.connection.channel()
    queue = await channel.declare_queue(name, auto_delete=False, durable=False)
    await queue.bind(exchange.value, routing_key=key)
    return queue


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, every: float = 0.1
) -> None:
    """Poll a database condition until it holds; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


async def publish_as_agent(bus: Bus, sender: str, message_type: str, body: bytes) -> str:
    """Publish `body` as agent `sender` would, under `agent.<sender>.<kind>`, with a confirm;
    returns its message id (`ce-id`)."""
    envelope = Envelope.new(source=f"agent/{sender}", type=message_type, subject=sender)
    kind = message_type.removeprefix("agent.")
    await bus.publish(
        to_amqp(envelope, body),
        exchange=Exchange.AGENTS.value,
        routing_key=f"agent.{sender}.{kind}",
    )
    return envelope.id


async def dead_lettered(
    bus: Bus, dead_letter_queue: str, message_id: str, *, timeout: float = 15
) -> dict[str, object]:
    """Wait until `message_id` is in the dead-letter queue (taking it off); its headers.
    Other messages met there are taken off too."""
    channel = await bus.connection.channel()
    try:
        queue = await channel.declare_queue(dead_letter_queue, passive=True)
        deadline = time.monotonic() + timeout
        while True:
            message = await queue.get(fail=False)
            if message is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{message_id} not in {dead_letter_queue} in {timeout} s")
                await asyncio.sleep(0.1)
                continue
            await message.ack()
            if message.message_id == message_id:
                return dict(message.headers or {})
    finally:
        await channel.close()
