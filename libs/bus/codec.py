"""Envelope <-> AMQP message: CloudEvents attributes as `ce-*` headers and AMQP properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractIncomingMessage
from pamqp.commands import Basic
from pydantic import ValidationError

from libs.contracts.envelope import CONTENT_TYPE, Envelope


class InvalidMessage(Exception):
    """A message that can never be handled as sent (bad envelope, JSON, type or field)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        """The body field at fault (`installs[0].return_code`), when one is."""


def to_amqp(
    envelope: Envelope,
    body: bytes,
    *,
    reply_to: str | None = None,
    expiration_seconds: float | None = None,
) -> Message:
    """An AMQP message carrying `body` with the envelope as properties and headers."""
    return Message(
        body,
        headers=dict(envelope.headers()),
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=envelope.id,
        type=envelope.type,
        timestamp=envelope.time,
        app_id=envelope.source,
        correlation_id=envelope.correlation_id,
        reply_to=reply_to,
        expiration=expiration_seconds,
    )


def stored_properties(envelope_json: str) -> Basic.Properties:
    """The AMQP properties `to_amqp` gives an envelope the outbox stored itself, without
    validating it again or building an aio-pika Message: `envelope_json` is
    `Envelope.model_dump_json()` as written in the same service's transaction
    (libs/db/outbox.py), read back from its jsonb column.
    """
    envelope = json.loads(envelope_json)
    message_id: str = envelope["id"]
    source: str = envelope["source"]
    message_type: str = envelope["type"]
    time = datetime.fromisoformat(envelope["time"])
    headers = {
        "ce-id": message_id,
        "ce-source": source,
        "ce-type": message_type,
        "ce-time": time.astimezone(UTC).isoformat(),
        "ce-specversion": envelope.get("specversion") or "1.0",
    }
    subject = envelope.get("subject")
    if subject is not None:
        headers["ce-subject"] = subject
    return Basic.Properties(
        content_type=CONTENT_TYPE,
        headers=headers,
        delivery_mode=DeliveryMode.PERSISTENT,
        priority=0,
        correlation_id=envelope.get("correlation_id"),
        message_id=message_id,
        timestamp=time,
        message_type=message_type,
        app_id=source,
    )


def _header(message: AbstractIncomingMessage, name: str) -> str | None:
    value = (message.headers or {}).get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def from_amqp(message: AbstractIncomingMessage) -> Envelope:
    """The envelope of an incoming message; `ce-*` headers first, AMQP properties as fallback.

    Raises InvalidMessage naming the attribute that is missing or wrong.
    """
    timestamp = message.timestamp
    if timestamp is not None and timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    fields: dict[str, object] = {
        "id": _header(message, "ce-id") or message.message_id,
        "source": _header(message, "ce-source") or message.app_id,
        "type": _header(message, "ce-type") or message.type,
        "time": _header(message, "ce-time") or timestamp,
        "subject": _header(message, "ce-subject"),
        "specversion": _header(message, "ce-specversion") or "1.0",
        "correlation_id": message.correlation_id,
    }
    missing = [name for name in ("id", "source", "type", "time") if not fields[name]]
    if missing:
        raise InvalidMessage(
            f"envelope attribute(s) {missing} missing: set the ce-{missing[0]} header "
            "(or the matching AMQP property: message_id, app_id, type, timestamp)"
        )
    try:
        return Envelope.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        raise InvalidMessage(
            f"envelope attribute {'.'.join(map(str, first['loc']))}="
            f"{first.get('input')!r} is not allowed: {first['msg']}"
        ) from None


def field_path(location: tuple[int | str, ...]) -> str:
    """A validation error's location as agents write it: `installs[0].return_code`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def first_field(error: ValidationError) -> str | None:
    """The first field a validation error names; None when the body as a whole is wrong."""
    errors = error.errors()
    return (field_path(tuple(errors[0]["loc"])) or None) if errors else None


def describe_validation_error(error: ValidationError, message_type: str) -> str:
    """One line naming each bad field, the value sent and what is allowed."""
    parts = []
    for item in error.errors()[:5]:
        field = field_path(tuple(item["loc"])) or "(body)"
        value = item.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        parts.append(f"field {field!r} = {shown[:80]}: {item['msg']}")
    more = "" if error.error_count() <= 5 else f" (+{error.error_count() - 5} more)"
    return f"{message_type}: " + "; ".join(parts) + more


def now_utc() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)
