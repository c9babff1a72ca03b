"""Where a message was first published, for messages replayed from a dead-letter store.

A replay goes out on `lockgate.replay` with the name of the queue it failed in as its
routing key, so it reaches that queue alone. It carries the exchange and routing key it was
first published with in two headers; the pipeline reads them back (`origin`) wherever the
routing key means something, above all the agent identity check. Only the console and the
services may publish on `lockgate.replay` (libs/bus/definitions.py); agents may not, so an
agent cannot claim another routing key through these headers.
"""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

from libs.contracts.names import Exchange

FIRST_EXCHANGE_HEADER = "x-lockgate-first-exchange"
FIRST_ROUTING_KEY_HEADER = "x-lockgate-first-routing-key"


def replay_headers(exchange: str, routing_key: str) -> dict[str, str]:
    """The headers a replay carries: where the message was first published."""
    return {FIRST_EXCHANGE_HEADER: exchange, FIRST_ROUTING_KEY_HEADER: routing_key}


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def origin(message: AbstractIncomingMessage) -> tuple[str, str]:
    """(exchange, routing key) the message was first published with: its own, or for a
    replay the ones it carries."""
    if message.exchange == Exchange.REPLAY.value:
        headers = message.headers or {}
        exchange = _text(headers.get(FIRST_EXCHANGE_HEADER))
        routing_key = _text(headers.get(FIRST_ROUTING_KEY_HEADER))
        if exchange is not None and routing_key is not None:
            return exchange, routing_key
    return message.exchange or "", message.routing_key or ""
