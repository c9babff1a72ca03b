"""The one place broker names are derived: exchanges, queues and dead-letter queues."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal, get_args

ServiceName = Literal["catalog", "approval", "scheduler", "reporting"]
"""The four services; each owns its schema, queue prefix and message-type prefix."""
SERVICE_NAMES: tuple[ServiceName, ...] = get_args(ServiceName)


class Exchange(StrEnum):
    """Lockgate's exchanges; all durable."""

    EVENTS = "lockgate.events"
    """Topic exchange of domain events, the public integration surface."""
    COMMANDS = "lockgate.commands"
    """Direct exchange of commands and queries; replies go to the caller's reply-to."""
    AGENTS = "lockgate.agents"
    """Topic exchange of agent traffic (`agent.<computer_id>.*`, `computer.<computer_id>.*`)."""
    DEAD_LETTERS = "lockgate.dead-letters"
    """Direct exchange routing dead letters to `<queue>.dlq`."""
    REPLAY = "lockgate.replay"
    """Direct exchange routing a replayed dead letter back to the one queue it failed in
    (every service queue binds its own name here), not to every subscriber again."""


EXCHANGE_TYPES: dict[Exchange, str] = {
    Exchange.EVENTS: "topic",
    Exchange.COMMANDS: "direct",
    Exchange.AGENTS: "topic",
    Exchange.DEAD_LETTERS: "direct",
    Exchange.REPLAY: "direct",
}

_SEGMENT = re.compile(r"^[a-z][a-z0-9-]*$")
DLQ_SUFFIX = ".dlq"

DEFAULT_VHOST = "lockgate"
"""The vhost the broker definitions create and the services and agents connect to."""

AGENT_QUEUE_PREFIX = "agent."
"""An enrolled agent's own queue is `agent.<computer id>`."""
AGENT_QUEUE_ARGUMENTS: dict[str, object] = {
    "x-queue-type": "classic",
    "x-max-length": 1000,
    "x-overflow": "drop-head",
    "x-message-ttl": 3_600_000,
}
"""An agent's queue keeps instructions through short disconnections only: they are hints,
and the plan sent at its next check-in covers whatever expired or was dropped."""


def agent_binding_key(computer_id: str) -> str:
    """What an agent's queue binds on `lockgate.agents`: every instruction to its computer."""
    return f"computer.{computer_id}.#"


def queue_name(service: str, purpose: str) -> str:
    """`<service>.<purpose>`, e.g. `reporting.agent-status`; both parts lower-case words."""
    for label, part in (("service", service), ("purpose", purpose)):
        if not _SEGMENT.fullmatch(part):
            raise ValueError(
                f"queue {label} {part!r} is not allowed: use lower-case letters, digits and '-'"
            )
    return f"{service}.{purpose}"


def dead_letter_queue_name(queue: str) -> str:
    """The dead-letter queue of `queue`: `<queue>.dlq`."""
    return queue + DLQ_SUFFIX
