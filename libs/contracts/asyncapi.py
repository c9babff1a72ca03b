"""AsyncAPI 3.0 document generated from the registry and the services' handler tables."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from libs.contracts.envelope import CONTENT_TYPE, Envelope
from libs.contracts.names import EXCHANGE_TYPES, Exchange
from libs.contracts.registry import AnyCommandSpec, AnyEventSpec, Registry
from libs.contracts.spec import AgentEventSpec, InstructionSpec, major_version
from libs.contracts.system import RpcError

AMQP_BINDING_VERSION = "0.3.0"


@dataclass(frozen=True)
class Subscription:
    """A service receives `message_type` on `queue` (from its handler table)."""

    service: str
    queue: str
    message_type: str


def _ident(message_type: str) -> str:
    return message_type.replace(".", "_").replace("-", "_")


def _channel_binding(exchange: Exchange) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": exchange.value,
                "type": EXCHANGE_TYPES[exchange],
                "durable": True,
                "autoDelete": False,
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


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
) -> dict[str, Any]:
    earlier = _earlier_names(message_type, formerly)
    return {
        "name": name,
        "title": model.__name__,
        "summary": summary,
        **({"description": earlier} if earlier else {}),
        "contentType": CONTENT_TYPE,
        "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
        "correlationId": {"location": "$message.header#/correlation_id"},
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "bindings": {"amqp": {"messageType": message_type, "bindingVersion": AMQP_BINDING_VERSION}},
    }


def _headers_schema() -> dict[str, Any]:
    props = Envelope.model_json_schema()["properties"]
    return {
        "type": "object",
        "description": "CloudEvents attributes carried as AMQP headers (ce-*); message_id = ce-id.",
        "properties": {
            f"ce-{name}": {"type": "string", "description": props[name].get("description", "")}
            for name in ("id", "source", "type", "time", "subject", "specversion")
        },
        "required": ["ce-id", "ce-source", "ce-type", "ce-time", "ce-specversion"],
    }


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
    schemas = dict(sorted(schema.get("$defs", {}).items()))
    schemas["CloudEventsHeaders"] = _headers_schema()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Lockgate messages",
            "version": version,
            "description": (
                "Every message Lockgate services exchange over RabbitMQ. Generated from "
                "libs/contracts and the services' handler tables by `lockgate asyncapi`; "
                "do not edit by hand."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "A development broker (set LOCKGATE_AMQP_URL for others).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": dict(sorted(messages.items())), "schemas": schemas},
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
    messages[channel] = _message(channel, event.model, event.summary, event.type, event.formerly)
    if event.example is not None:
        messages[channel]["examples"] = [
            {"name": f"{channel}_example", "payload": event.example.model_dump(mode="json")}
        ]
    is_agent = isinstance(event, AgentEventSpec)
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
    if is_agent:
        entry["address"] = "agent.{computer_id}." + event.type.removeprefix("agent.")
        entry["parameters"] = {"computer_id": {"description": "Id of the sending computer."}}
    if isinstance(event, InstructionSpec):
        entry["address"] = "computer.{computer_id}." + event.type.removeprefix("computer.")
        entry["parameters"] = {"computer_id": {"description": "Id of the computer told."}}
    channels[channel] = entry
    operations[f"{event.producer}_sends_{channel}"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": f"{event.producer} publishes it.",
        "messages": [{"$ref": f"#/channels/{channel}/messages/{channel}"}],
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
        channel, command.request, command.summary, command.type, command.formerly
    )
    messages[reply_channel] = _message(
        reply_channel,
        command.reply,
        f"Reply to {command.type} (x-lockgate-status: ok).",
        command.type + ".reply",
    )
    error_name = channel + "_error"
    messages[error_name] = _message(
        error_name,
        RpcError,
        f"Error reply to {command.type} (x-lockgate-status: error).",
        command.type + ".error",
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
