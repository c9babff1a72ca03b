"""AsyncAPI 3.0 document generated from the registry and the services' handler tables.

Enough to write an agent from it alone: payloads field by field with an example each,
headers with their values (libs/contracts/asyncapi_wire.py), the agent's queue and what it
receives there, the server with its vhost and users.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from libs.contracts import asyncapi_wire as wire
from libs.contracts.envelope import CONTENT_TYPE, source_of
from libs.contracts.names import EXCHANGE_TYPES, Exchange
from libs.contracts.registry import AnyCommandSpec, AnyEventSpec, Registry
from libs.contracts.spec import AgentEventSpec, InstructionSpec, major_version
from libs.contracts.system import RpcError

AMQP_BINDING_VERSION = wire.AMQP_BINDING_VERSION
EXAMPLE_TIME = datetime(2026, 2, 11, 20, 6, 16, tzinfo=UTC)
"""`ce-time` of an example without a time of its own (the examples' evening)."""


@dataclass(frozen=True)
class Subscription:
    """A service receives `message_type` on `queue` (from its handler table)."""

    service: str
    queue: str
    message_type: str


def _ident(message_type: str) -> str:
    return message_type.replace(".", "_").replace("-", "_")


def _channel_binding(exchange: Exchange) -> dict[str, Any]:
    return wire.exchange_binding(exchange, EXCHANGE_TYPES[exchange])


def _earlier_names(message_type: str, formerly: tuple[str, ...]) -> str:
    """In words, the names a renamed message still answers to, and until when."""
    if not formerly:
        return ""
    names = ", ".join(f"`{name}`" for name in formerly)
    label = "Earlier name" if len(formerly) == 1 else "Earlier names"
    return f"{label}, still accepted until v{major_version(message_type) + 1}: {names}."


def _sentences(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _message(
    name: str,
    model: type[BaseModel],
    summary: str,
    message_type: str,
    formerly: tuple[str, ...] = (),
    *,
    headers: dict[str, Any],
) -> dict[str, Any]:
    earlier = _earlier_names(message_type, formerly)
    return {
        "name": name,
        "title": model.__name__,
        "summary": summary,
        **({"description": earlier} if earlier else {}),
        "contentType": CONTENT_TYPE,
        "headers": headers,
        "correlationId": {"$ref": f"#/components/correlationIds/{wire.CORRELATION}"},
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "bindings": {"amqp": {"messageType": message_type, "bindingVersion": AMQP_BINDING_VERSION}},
    }


def _event_headers(event: AnyEventSpec) -> dict[str, Any]:
    is_agent = isinstance(event, AgentEventSpec)
    return wire.message_headers(
        event.type,
        source=None if is_agent else source_of(event.producer),
        subject=event.subject,
        agent=is_agent,
        instruction=isinstance(event, InstructionSpec),
    )


def _example_headers(event: AnyEventSpec, example: BaseModel) -> dict[str, str]:
    """Headers as the example message would carry them: a fixed id, and as its time the
    example's last time of its own (when it was made: `reported_at`, `issued_at`, ...)."""
    computer_id = getattr(example, "computer_id", None)
    is_agent = isinstance(event, AgentEventSpec)
    times = [
        value
        for value in (getattr(example, name) for name in type(example).model_fields)
        if isinstance(value, datetime)
    ]
    headers = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lockgate:example:{event.type}")),
        "ce-type": event.type,
        "ce-time": (times[-1] if times else EXAMPLE_TIME).astimezone(UTC).isoformat(),
        "ce-source": f"agent/{computer_id}" if is_agent else source_of(event.producer),
    }
    if isinstance(event, AgentEventSpec | InstructionSpec) and computer_id is not None:
        headers["ce-subject"] = str(computer_id)
    return headers


def build(
    registry: Registry, subscriptions: Iterable[Subscription], version: str
) -> dict[str, Any]:
    """The AsyncAPI document as a plain mapping, in a stable order."""
    subs = sorted(subscriptions, key=lambda s: (s.message_type, s.service, s.queue))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    models: dict[str, type[BaseModel]] = {RpcError.__name__: RpcError}

    for event in sorted(registry.events.values(), key=lambda e: e.type):
        _add_event(event, channels, operations, messages, models)
        for sub in (s for s in subs if s.message_type == event.type):
            channel = _ident(event.type)
            operations[f"{sub.service}_receives_{channel}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{sub.service} handles it from queue {sub.queue}.",
                "messages": [{"$ref": f"#/channels/{channel}/messages/{channel}"}],
            }
    for command in sorted(registry.commands.values(), key=lambda c: c.type):
        _add_command(command, channels, operations, messages, models)

    _, schema = models_json_schema(
        [(model, "validation") for _, model in sorted(models.items())],
        ref_template="#/components/schemas/{model}",
    )
    _add_agent_queue(registry, channels, operations)
    schemas = dict(sorted(schema.get("$defs", {}).items()))
    schemas[wire.HEADERS] = wire.headers_schema()
    schemas[wire.PROPERTIES] = wire.properties_schema()
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Lockgate messages", "version": version, "description": wire.DESCRIPTION},
        "defaultContentType": CONTENT_TYPE,
        "servers": wire.servers(),
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": dict(sorted(messages.items())),
            "schemas": schemas,
            "securitySchemes": wire.security_schemes(),
            "correlationIds": {wire.CORRELATION: wire.correlation_id()},
        },
    }


def _add_agent_queue(
    registry: Registry, channels: dict[str, Any], operations: dict[str, Any]
) -> None:
    """The agent's own queue, and one receive operation per instruction it gets there."""
    instructions = sorted(
        _ident(event.type)
        for event in registry.events.values()
        if isinstance(event, InstructionSpec)
    )
    channels[wire.AGENT_QUEUE_CHANNEL] = wire.agent_queue_channel(instructions)
    for channel in instructions:
        operations[f"agent_receives_{channel}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{wire.AGENT_QUEUE_CHANNEL}"},
            "summary": f"An agent receives it from its own queue {wire.AGENT_QUEUE}.",
            "messages": [{"$ref": f"#/channels/{wire.AGENT_QUEUE_CHANNEL}/messages/{channel}"}],
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        }


def _add_event(
    event: AnyEventSpec,
    channels: dict[str, Any],
    operations: dict[str, Any],
    messages: dict[str, Any],
    models: dict[str, type[BaseModel]],
) -> None:
    channel = _ident(event.type)
    models[event.model.__name__] = event.model
    messages[channel] = _message(
        channel,
        event.model,
        event.summary,
        event.type,
        event.formerly,
        headers=_event_headers(event),
    )
    if event.example is not None:
        messages[channel]["examples"] = [
            {
                "name": f"{channel}_example",
                "headers": _example_headers(event, event.example),
                "payload": event.example.model_dump(mode="json"),
            }
        ]
    entry: dict[str, Any] = {
        "address": event.type,
        "description": _sentences(
            event.summary,
            f"Subject: {event.subject}." if event.subject else "",
            _earlier_names(event.type, event.formerly),
        ),
        "messages": {channel: {"$ref": f"#/components/messages/{channel}"}},
        "bindings": _channel_binding(event.exchange),
    }
    sends: dict[str, Any] = {}
    if isinstance(event, AgentEventSpec):
        kind = event.type.removeprefix("agent.")
        entry["address"] = "agent.{computer_id}." + kind
        entry["description"] = _sentences(
            entry["description"],
            f"An agent publishes it on `{event.exchange.value}` with routing key "
            f"`agent.<computer_id>.{kind}` and its own computer id (the broker refuses any "
            f"other); the body's `{event.computer_id_field}` must be that id too, else the "
            "message is refused: dead-lettered, and the agent told why by "
            "`computer.<computer_id>.rejected.v1`.",
        )
        entry["parameters"] = wire.computer_id_parameter("Id of the sending computer.")
        sends = {"bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION}}}
    if isinstance(event, InstructionSpec):
        entry["address"] = "computer.{computer_id}." + event.type.removeprefix("computer.")
        entry["description"] = _sentences(
            entry["description"],
            f"It reaches the computer's own queue `{wire.AGENT_QUEUE}` (channel "
            f"`{wire.AGENT_QUEUE_CHANNEL}`).",
        )
        entry["parameters"] = wire.computer_id_parameter("Id of the computer told.")
    channels[channel] = entry
    operations[f"{event.producer}_sends_{channel}"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": "An agent publishes it, as itself."
        if isinstance(event, AgentEventSpec)
        else f"{event.producer} publishes it.",
        "messages": [{"$ref": f"#/channels/{channel}/messages/{channel}"}],
        **sends,
    }


def _add_command(
    command: AnyCommandSpec,
    channels: dict[str, Any],
    operations: dict[str, Any],
    messages: dict[str, Any],
    models: dict[str, type[BaseModel]],
) -> None:
    channel = _ident(command.type)
    reply_channel = channel + "_reply"
    models[command.request.__name__] = command.request
    models[command.reply.__name__] = command.reply
    messages[channel] = _message(
        channel,
        command.request,
        command.summary,
        command.type,
        command.formerly,
        headers=wire.message_headers(command.type, source=None, subject=""),
    )
    answerer = source_of(command.handler)
    messages[reply_channel] = _message(
        reply_channel,
        command.reply,
        f"Reply to {command.type} (x-lockgate-status: ok).",
        command.type + ".reply",
        headers=wire.message_headers(command.type + ".reply", source=answerer, subject=""),
    )
    error_name = channel + "_error"
    messages[error_name] = _message(
        error_name,
        RpcError,
        f"Error reply to {command.type} (x-lockgate-status: error).",
        command.type + ".error",
        headers=wire.message_headers(command.type + ".error", source=answerer, subject=""),
    )
    channels[channel] = {
        "address": command.routing_key,
        "description": _sentences(command.summary, _earlier_names(command.type, command.formerly)),
        "messages": {channel: {"$ref": f"#/components/messages/{channel}"}},
        "bindings": _channel_binding(Exchange.COMMANDS),
    }
    channels[reply_channel] = {
        "address": None,
        "description": f"Caller's reply-to (direct reply-to) for {command.type}.",
        "messages": {
            reply_channel: {"$ref": f"#/components/messages/{reply_channel}"},
            error_name: {"$ref": f"#/components/messages/{error_name}"},
        },
    }
    operations[f"{command.handler}_answers_{channel}"] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": f"{command.handler} answers it from queue {command.handler}.commands.",
        "messages": [{"$ref": f"#/channels/{channel}/messages/{channel}"}],
        "reply": {
            "address": {"location": "$message.header#/reply_to"},
            "channel": {"$ref": f"#/channels/{reply_channel}"},
            "messages": [
                {"$ref": f"#/channels/{reply_channel}/messages/{reply_channel}"},
                {"$ref": f"#/channels/{reply_channel}/messages/{error_name}"},
            ],
        },
    }


def render(document: dict[str, Any]) -> str:
    """YAML text of the document, stable from run to run."""
    header = "# Generated by `lockgate asyncapi` from libs/contracts; do not edit by hand.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
