"""The wire beyond payloads, for the AsyncAPI document: headers, AMQP properties, correlation,
the server and its users, and an agent's own queue (libs/contracts/asyncapi.py uses these)."""

from __future__ import annotations

from typing import Any

from libs.contracts.envelope import CONTENT_TYPE, SPECVERSION
from libs.contracts.names import (
    AGENT_QUEUE_ARGUMENTS,
    AGENT_QUEUE_PREFIX,
    DEFAULT_VHOST,
    Exchange,
    agent_binding_key,
)
from libs.contracts.spec import SUBJECT

AMQP_BINDING_VERSION = "0.3.0"
HEADERS = "CloudEventsHeaders"
PROPERTIES = "AmqpProperties"
CORRELATION = "amqpCorrelationId"
AGENT_SECURITY = "agentUser"
SERVICE_SECURITY = "serviceUser"
AGENT_QUEUE_CHANNEL = "agent_queue"
COMPUTER_ID = "{computer_id}"
AGENT_QUEUE = AGENT_QUEUE_PREFIX + COMPUTER_ID
COMPUTER_ID_PATTERN = SUBJECT.pattern
_ID = COMPUTER_ID_PATTERN.removeprefix("^").removesuffix("$")

CORRELATION_RULE = (
    "A service publishes what handling a message caused with `correlation_id` = that "
    "message's own `correlation_id` if it had one, else its `ce-id`: the plan answering a "
    "check-in carries the check-in's `ce-id`, the install instruction answering an install "
    "request the request's, a rejection the refused message's. What a timer or periodic work "
    "sends carries none: scheduled installs, restart prompts and restarts, agent updates, and "
    "plans recomputed later (after a report, an approval or a policy change). An RPC reply "
    "carries the request's `correlation_id` (else its `message_id`). Agents may set it on "
    "what they send; nothing requires it."
)

DESCRIPTION = f"""Every message Lockgate services exchange over RabbitMQ, and the whole agent \
protocol. Generated from libs/contracts and the services' handler tables by `lockgate \
asyncapi`; do not edit by hand. A walk-through for writing an agent: docs/agent-protocol.md.

**Envelope.** Every message is a CloudEvents {SPECVERSION} event in binary mode: the body is \
the payload as JSON (UTF-8), the context attributes are AMQP headers `ce-id`, `ce-source`, \
`ce-type`, `ce-time`, `ce-specversion` and, where a message has one, `ce-subject` (schema \
`{HEADERS}`; each message fixes its `ce-type`). Services also set AMQP properties \
(schema `{PROPERTIES}`). A header absent is read from its AMQP property: `ce-id` from \
`message_id`, `ce-source` from `app_id`, `ce-type` from `type`, `ce-time` from `timestamp` \
(seconds, read as UTC); `ce-specversion` defaults to `{SPECVERSION}`; `ce-subject` has no \
fallback. A header present wins over its property.

**Routing.** Messages are routed to queues by routing key (each channel's address) and, in a \
queue, to a handler by `ce-type`: the AMQP `type` property (the bindings' `messageType`) is \
read only when `ce-type` is absent. A message of a type its queue has no handler for is \
refused.

**Correlation.** The AMQP `correlation_id` property, never a header. {CORRELATION_RULE}

**Duplicates and refusals.** Every handler remembers the `ce-id`s it handled: a message whose \
id was handled before is acknowledged and skipped. A message that can never be handled \
(malformed JSON, a field that fails validation, an unknown type, an agent speaking for \
another computer, a rule of the service) goes at once to `<queue>.dlq` with its reason in \
the headers `x-lockgate-reason-class` and `x-lockgate-reason`; other failures are retried, \
then dead-lettered the same way. When the refused message is an agent's, the scheduler also \
tells the agent: `computer.<computer_id>.rejected.v1`, one per refused message (reporting, \
the other consumer of agent reports, only dead-letters)."""


def headers_schema() -> dict[str, Any]:
    """The `ce-*` headers every message carries, with their format and value."""
    return {
        "type": "object",
        "description": (
            f"CloudEvents {SPECVERSION} context attributes in binary mode: AMQP application "
            "headers (the headers table), string values. Each message's headers fix "
            f"`ce-type`, and `ce-source` and `ce-subject` where they are fixed. A header absent "
            f"is read from its AMQP property (schema `{PROPERTIES}`); a header present wins."
        ),
        "properties": {
            "ce-specversion": {
                "type": "string",
                "const": SPECVERSION,
                "description": (
                    f"CloudEvents version: always `{SPECVERSION}`. Absent: read as "
                    f"`{SPECVERSION}`; any other value is refused."
                ),
            },
            "ce-id": {
                "type": "string",
                "format": "uuid",
                "minLength": 1,
                "description": (
                    "Unique id of this message: services send a random UUID and agents should "
                    "too (any unique non-empty text is accepted). Handlers remember it: a "
                    "message whose id was handled before is acknowledged and skipped, so "
                    "re-send a message with its id and give every new message a new one. "
                    "Absent: read from the AMQP `message_id`."
                ),
            },
            "ce-type": {
                "type": "string",
                "pattern": r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+\.v[1-9][0-9]*$",
                "description": (
                    "The message type with its major version, fixed per message (each "
                    "message's headers give its value, e.g. `agent.status.v1`). Receivers "
                    "route on it: it picks the handler and the payload schema. Absent: read "
                    "from the AMQP `type` property, which is otherwise ignored."
                ),
            },
            "ce-time": {
                "type": "string",
                "format": "date-time",
                "description": (
                    "When the message was created: an RFC 3339 date-time with an offset "
                    "(`2026-02-11T20:06:15+00:00` or `...Z`); services write UTC as `+00:00`. "
                    "A time without an offset is refused. Absent: read from the AMQP "
                    "`timestamp` (seconds since the epoch, UTC)."
                ),
            },
            "ce-source": {
                "type": "string",
                "minLength": 1,
                "description": (
                    "Who sent it: `lockgate/<service>` from a service, `agent/<computer_id>` "
                    "from an agent. Required but not interpreted: an agent's identity is the "
                    "routing key the broker lets it publish under. Absent: read from the AMQP "
                    "`app_id`."
                ),
            },
            "ce-subject": {
                "type": "string",
                "description": (
                    "What the message is about, where the message has a subject (each says "
                    "what): the computer id for agent messages and instructions. On an agent "
                    "message it may be left out; sent, it must be the routing key's computer "
                    "id, else the message is refused. No AMQP fallback."
                ),
            },
        },
        "required": ["ce-id", "ce-source", "ce-type", "ce-time", "ce-specversion"],
    }


def properties_schema() -> dict[str, Any]:
    """The AMQP basic properties services set, and read as fallbacks (documentation only)."""
    return {
        "type": "object",
        "description": (
            "AMQP 0-9-1 basic properties (message properties, not headers) of every message "
            "a service publishes. Receivers read `message_id`, `app_id`, `type` and "
            "`timestamp` only when the matching `ce-*` header is absent, and "
            "`correlation_id` always."
        ),
        "properties": {
            "content_type": {
                "type": "string",
                "const": CONTENT_TYPE,
                "description": f"`{CONTENT_TYPE}`: the body is the payload's JSON, UTF-8.",
            },
            "delivery_mode": {
                "type": "integer",
                "const": 2,
                "description": "2, persistent; agents should publish persistently too.",
            },
            "message_id": {"type": "string", "description": "The `ce-id`."},
            "type": {
                "type": "string",
                "description": "The `ce-type`; read only when `ce-type` is absent.",
            },
            "app_id": {"type": "string", "description": "The `ce-source`."},
            "timestamp": {
                "type": "integer",
                "description": "The `ce-time` in whole seconds since the epoch.",
            },
            "correlation_id": {
                "type": "string",
                "description": f"The message that caused this one. {CORRELATION_RULE}",
            },
            "reply_to": {
                "type": "string",
                "description": "Commands only: the caller's reply queue (direct reply-to).",
            },
        },
    }


def correlation_id() -> dict[str, Any]:
    """Where a message's correlation id is: the AMQP `correlation_id` property."""
    return {
        "description": (
            "The AMQP basic property `correlation_id`: a protocol header in AsyncAPI's terms "
            "(set it with your client's message properties, not in the headers table; "
            "`x-amqp-property` names it, as AsyncAPI expressions cannot name AMQP "
            f"properties otherwise). {CORRELATION_RULE}"
        ),
        "location": "$message.header#/correlation_id",
        "x-amqp-property": "correlation_id",
    }


def message_headers(
    message_type: str,
    *,
    source: str | None,
    subject: str,
    agent: bool = False,
    instruction: bool = False,
) -> dict[str, Any]:
    """One message's headers: the shared `ce-*` schema with what is fixed for this message
    (an instruction always names its computer in `ce-subject`)."""
    fixed: dict[str, Any] = {
        "ce-type": {
            "type": "string",
            "const": message_type,
            "description": f"Always `{message_type}`.",
        }
    }
    required = []
    if agent:
        fixed["ce-source"] = {
            "type": "string",
            "pattern": f"^agent/{_ID}$",
            "description": "`agent/<computer_id>`, the sending computer's id.",
        }
        fixed["ce-subject"] = {
            "type": "string",
            "pattern": COMPUTER_ID_PATTERN,
            "description": "The sending computer's id (the routing key's), or left out.",
        }
    elif source is not None:
        fixed["ce-source"] = {
            "type": "string",
            "const": source,
            "description": f"Always `{source}`.",
        }
    if subject and not agent:
        fixed["ce-subject"] = {
            "type": "string",
            "description": f"{subject[0].upper()}{subject[1:]}.",
        }
        if instruction:
            required.append("ce-subject")
    own: dict[str, Any] = {"type": "object", "properties": fixed}
    if required:
        own["required"] = required
    return {"allOf": [{"$ref": f"#/components/schemas/{HEADERS}"}, own]}


def exchange_binding(exchange: Exchange, kind: str) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": exchange.value,
                "type": kind,
                "durable": True,
                "autoDelete": False,
                "vhost": DEFAULT_VHOST,
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


def computer_id_parameter(description: str) -> dict[str, Any]:
    return {
        "computer_id": {
            "description": f"{description} 1-64 letters, digits, `_` or `-`, starting with a "
            "letter or digit; it is also the agent's broker user name.",
            "examples": ["pc-0042"],
        }
    }


def agent_queue_channel(instructions: list[str]) -> dict[str, Any]:
    """The queue an enrolled agent consumes, with every instruction it can receive there."""
    ttl_minutes = int(str(AGENT_QUEUE_ARGUMENTS["x-message-ttl"])) // 60_000
    return {
        "address": AGENT_QUEUE,
        "title": "An agent's own queue",
        "description": (
            f"The queue `{AGENT_QUEUE}` an agent consumes (manual acks). It is created when "
            "the computer is enrolled (`lockgate broker agents <computer_id>`, imported "
            "with `rabbitmqctl import_definitions`), bound to `lockgate.agents` with "
            f"`{agent_binding_key(COMPUTER_ID)}`, so it receives every instruction to its "
            "computer and nothing else. The agent cannot declare it (it has no configure "
            "permission): consume it as it is, or declare it passively. A classic durable "
            f"queue whose messages expire after {ttl_minutes} minutes and which keeps the "
            f"newest {AGENT_QUEUE_ARGUMENTS['x-max-length']} (older ones are dropped): "
            "instructions are hints, and the plan sent after the next check-in covers "
            "whatever expired while the agent was away."
        ),
        "parameters": computer_id_parameter("Id of the computer whose queue it is."),
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in instructions},
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": AGENT_QUEUE,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": DEFAULT_VHOST,
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "x-queue-arguments": dict(AGENT_QUEUE_ARGUMENTS),
        "x-binding": {"exchange": Exchange.AGENTS.value, "key": agent_binding_key(COMPUTER_ID)},
    }


def servers() -> dict[str, Any]:
    return {
        "local": {
            "host": "127.0.0.1:5672",
            "pathname": f"/{DEFAULT_VHOST}",
            "protocol": "amqp",
            "protocolVersion": "0.9.1",
            "description": (
                "A development broker; in production, your RabbitMQ's host (amqps on 5671 "
                f"where it offers TLS). The path is the vhost, `{DEFAULT_VHOST}`, created by "
                "deploy/rabbitmq/definitions.json: connect with "
                f"`amqp://<user>:<password>@<host>:5672/{DEFAULT_VHOST}` (set "
                "LOCKGATE_AMQP_URL for the services)."
            ),
            "security": [
                {"$ref": f"#/components/securitySchemes/{AGENT_SECURITY}"},
                {"$ref": f"#/components/securitySchemes/{SERVICE_SECURITY}"},
            ],
        }
    }


def security_schemes() -> dict[str, Any]:
    return {
        AGENT_SECURITY: {
            "type": "userPassword",
            "description": (
                "An agent logs in as the broker user named exactly its computer id, with the "
                "password the operator set for it (enrolment: `lockgate broker agents "
                "<computer_id>` then `rabbitmqctl import_definitions FILE`, then "
                "`rabbitmqctl change_password <computer_id> <password>`). It may publish on "
                "`lockgate.agents` only under `agent.<its id>.` and bind only "
                f"`computer.<its id>.`, consume only its own queue `{AGENT_QUEUE}`, and "
                "declare nothing."
            ),
        },
        SERVICE_SECURITY: {
            "type": "userPassword",
            "description": (
                "The services and the console log in as `lockgate-<name>` "
                "(deploy/rabbitmq/definitions.json), each allowed what its code does."
            ),
        },
    }
