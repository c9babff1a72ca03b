"""Least-privilege RabbitMQ definitions, derived from the handler tables and the contracts.

One broker user per service (`<prefix><service>`) and for the console, each allowed exactly
what its code does, no more:

- configure: its own queues and their `.dlq`, and the four Lockgate exchanges (every
  service runs `Bus.declare_exchanges()` at start, which needs configure on each of them);
- write: its own queues (binding a queue needs write on it), the exchanges it publishes
  to (its events, `lockgate.dead-letters`), `amq.default` when it answers commands
  (RPC replies go through the default exchange to the caller's direct reply-to) and
  `lockgate.commands` when it calls another service's commands (`ServiceDefinition.calls`:
  approval asks reporting for a rollout gate's counts);
- read: its own queues (consuming, and declaring with a dead-letter exchange) and the
  exchanges its queues bind from; no service reads a `.dlq` (the console's keeper does);
- topic permissions on the topic exchanges it uses: it publishes only under its own
  routing-key prefixes (`catalog.` on `lockgate.events`, `computer.` for the scheduler on
  `lockgate.agents`, and for any service whose routes answer refused agent messages with
  `computer.<id>.rejected.v1`) and binds only the prefixes its handlers subscribe to.

Consuming `amq.rabbitmq.reply-to` (RPC callers) needs no permission.

Broader than ideal, because of what the code does: configure on every exchange lets a
service delete one, and write on `amq.default` lets it publish straight into any queue of the
vhost, around topic permissions. The services are trusted code; these rules keep their
mistakes from spreading, while the agents' rules below hold against a hostile agent.

Each agent is a user named after its computer id. Enrolling it creates its queue
`agent.<computer id>`, bound to `computer.<id>.#` on `lockgate.agents`. It gets no
configure permission at all: it cannot declare exchanges or queues, so it cannot make an
exchange named like its queue and feed its own queue, nor declare a queue that dead-letters
into `lockgate.agents` under a routing key of its choosing. Topic permissions (with
`{username}`, which RabbitMQ expands to the user's name, unescaped: safe because computer
ids hold only letters, digits, `_` and `-`) let it publish only `agent.<its id>.*` and bind
only `computer.<its id>.*`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from libs.contracts import names
from libs.contracts.agents import REJECTED
from libs.contracts.names import (
    AGENT_QUEUE_PREFIX,
    EXCHANGE_TYPES,
    Exchange,
    agent_binding_key,
    dead_letter_queue_name,
)
from libs.contracts.registry import REGISTRY, Registry
from libs.contracts.scheduler import COMPUTER_ID_PATTERN
from libs.service.handlers import On, ServiceDefinition

DEFAULT_VHOST = names.DEFAULT_VHOST
AGENT_QUEUE_ARGUMENTS = names.AGENT_QUEUE_ARGUMENTS
"""The agent queue's arguments; the agent protocol (AsyncAPI document) states them too."""
DEFAULT_USER_PREFIX = "lockgate-"
CLIENTS = ("console",)
"""Processes that own no queue: they send commands (RPC); the console also keeps dead letters."""
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
DEFAULT_EXCHANGE = "amq.default"
"""How RabbitMQ names the default exchange ("") in permission checks."""
NOTHING = "^$"
"""A permission pattern no resource matches (`^$`; an empty pattern means the same)."""
RESERVED_USERS = frozenset({"guest"})

AGENT_WRITE_TOPICS = r"^agent\.{username}\."
AGENT_READ_TOPICS = r"^computer\.{username}\."

_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")
_COMPUTER_ID = re.compile(COMPUTER_ID_PATTERN)


def escape(name: str) -> str:
    """`name` as a literal in a RabbitMQ (PCRE) pattern; `-` and `_` stay readable."""
    return _SPECIAL.sub(r"\\\1", name)


def exactly(names: Iterable[str]) -> str:
    """A pattern matching exactly these names; `^$` (nothing) for none."""
    unique = sorted(set(names))
    if not unique:
        return NOTHING
    return "^" + _alternatives(unique) + "$"


def starting_with(segments: Iterable[str]) -> str:
    """A routing-key pattern: keys whose first word is one of `segments`; `^$` for none."""
    unique = sorted(set(segments))
    if not unique:
        return NOTHING
    return "^" + _alternatives(unique) + r"\."


def _alternatives(literals: list[str]) -> str:
    escaped = [escape(literal) for literal in literals]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def agent_queue_name(computer_id: str) -> str:
    """The queue an enrolled agent consumes: `agent.<computer id>`."""
    return AGENT_QUEUE_PREFIX + check_computer_id(computer_id)


def check_computer_id(computer_id: str) -> str:
    if not _COMPUTER_ID.fullmatch(computer_id):
        raise ValueError(
            f"computer id {computer_id!r} is not allowed: use 1-64 letters, digits, '_' or "
            "'-', starting with a letter or digit (the contracts' computer id)"
        )
    return computer_id


@dataclass(frozen=True)
class TopicAccess:
    """Routing keys a user may publish (write) and bind (read) on one topic exchange."""

    exchange: Exchange
    write: str
    read: str


@dataclass(frozen=True)
class Access:
    """What one broker user may do in the vhost: resource names, turned into patterns."""

    user: str
    configure: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()
    read: frozenset[str] = frozenset()
    topics: tuple[TopicAccess, ...] = ()
    queues: tuple[str, ...] = ()
    """Queues created with the user (an agent's own queue, with AGENT_QUEUE_ARGUMENTS)."""
    bindings: tuple[tuple[Exchange, str, str], ...] = ()
    """(exchange, queue, binding key) created with the user."""

    def permission(self, vhost: str) -> dict[str, str]:
        return {
            "user": self.user,
            "vhost": vhost,
            "configure": exactly(self.configure),
            "write": exactly(self.write),
            "read": exactly(self.read),
        }

    def topic_permissions(self, vhost: str) -> list[dict[str, str]]:
        return [
            {
                "user": self.user,
                "vhost": vhost,
                "exchange": topic.exchange.value,
                "write": topic.write,
                "read": topic.read,
            }
            for topic in self.topics
        ]


def _first_word(key: str) -> str:
    return key.split(".", 1)[0]


def service_access(
    definition: ServiceDefinition, *, user: str, registry: Registry = REGISTRY
) -> Access:
    """What `definition`'s code does on the broker (runner, pipeline, outbox relay)."""
    queues = definition.queues()
    own_queues = set(queues)
    dead_letter_queues = {dead_letter_queue_name(queue) for queue in queues}
    bound_from: set[Exchange] = {Exchange.DEAD_LETTERS} if queues else set()
    binding_words: dict[Exchange, set[str]] = {}
    for routes in queues.values():
        for route in routes:
            if isinstance(route, On):
                bound_from.add(route.spec.exchange)
                binding_words.setdefault(route.spec.exchange, set()).add(
                    _first_word(route.spec.binding_key)
                )
            else:
                bound_from.add(Exchange.COMMANDS)
    published: set[str] = set()
    publish_words: dict[Exchange, set[str]] = {}
    for event in registry.events.values():
        if event.producer == definition.name:
            published.add(event.exchange.value)
            publish_words.setdefault(event.exchange, set()).add(_first_word(event.type))
    if any(isinstance(r, On) and r.sends_rejected for routes in queues.values() for r in routes):
        # An agent's refused message is answered with computer.<id>.rejected.v1.
        published.add(REJECTED.exchange.value)
        publish_words.setdefault(REJECTED.exchange, set()).add(_first_word(REJECTED.type))
    if queues:
        published.add(Exchange.DEAD_LETTERS.value)  # messages that can never succeed
    if definition.commands:
        published.add(DEFAULT_EXCHANGE)  # RPC replies to the caller's direct reply-to
    if definition.calls:
        published.add(Exchange.COMMANDS.value)  # its own RPC calls to other services
    topics = tuple(
        TopicAccess(
            exchange,
            write=starting_with(publish_words.get(exchange, ())),
            read=starting_with(binding_words.get(exchange, ())),
        )
        for exchange, kind in EXCHANGE_TYPES.items()
        if kind == "topic" and (exchange in bound_from or exchange.value in published)
    )
    return Access(
        user=user,
        configure=frozenset(
            own_queues | dead_letter_queues | {exchange.value for exchange in EXCHANGE_TYPES}
        ),
        write=frozenset(own_queues | dead_letter_queues | published),
        read=frozenset(
            own_queues
            | {exchange.value for exchange in bound_from}
            | ({Exchange.REPLAY.value} if queues else set())  # bound by each queue's name
        ),
        topics=topics,
    )


def client_access(*, user: str, services: Sequence[ServiceDefinition] = ()) -> Access:
    """An RPC caller (the console): publishes commands, reads replies via direct reply-to.

    With `services`, it also keeps their dead letters (services/console/dead_letters.py):
    it consumes each `<queue>.dlq` (read) and replays a message on `lockgate.replay`, which
    routes it to the one queue it failed in. It publishes no event and no agent message:
    a replay keeps its first exchange and routing key in headers the pipeline reads."""
    dead_letter_queues = {
        dead_letter_queue_name(queue) for service in services for queue in service.queues()
    }
    write = {Exchange.COMMANDS.value}
    if dead_letter_queues:
        write.add(Exchange.REPLAY.value)
    return Access(user=user, write=frozenset(write), read=frozenset(dead_letter_queues))


def agent_access(computer_id: str) -> Access:
    """An agent: user = computer id; its own queue, `agent.<id>.*` out, `computer.<id>.*` in."""
    queue = agent_queue_name(computer_id)
    exchange = Exchange.AGENTS
    return Access(
        user=computer_id,
        write=frozenset({exchange.value, queue}),  # publish; (re)bind its own queue
        read=frozenset({exchange.value, queue}),  # bind from the exchange; consume
        topics=(TopicAccess(exchange, write=AGENT_WRITE_TOPICS, read=AGENT_READ_TOPICS),),
        queues=(queue,),
        bindings=((exchange, queue, agent_binding_key(computer_id)),),
    )


def _user_entry(name: str) -> dict[str, Any]:
    """A user without a usable password: an empty hash refuses every password login."""
    return {
        "name": name,
        "password_hash": "",
        "hashing_algorithm": HASHING_ALGORITHM,
        "tags": [],
    }


def _document(vhost: str, accesses: Sequence[Access], *, topology: bool) -> dict[str, Any]:
    users = [access.user for access in accesses]
    duplicates = sorted({user for user in users if users.count(user) > 1})
    if duplicates:
        raise ValueError(f"broker users named twice: {duplicates}")
    return {
        "users": [_user_entry(access.user) for access in accesses],
        "vhosts": [{"name": vhost}] if topology else [],
        "permissions": [access.permission(vhost) for access in accesses],
        "topic_permissions": [
            entry for access in accesses for entry in access.topic_permissions(vhost)
        ],
        "exchanges": [
            {
                "name": exchange.value,
                "vhost": vhost,
                "type": kind,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for exchange, kind in EXCHANGE_TYPES.items()
        ]
        if topology
        else [],
        "queues": [
            {
                "name": queue,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": dict(AGENT_QUEUE_ARGUMENTS),
            }
            for access in accesses
            for queue in access.queues
        ],
        "bindings": [
            {
                "source": exchange.value,
                "vhost": vhost,
                "destination": queue,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
            for access in accesses
            for exchange, queue, key in access.bindings
        ],
    }


def service_users(
    services: Iterable[str], *, user_prefix: str = DEFAULT_USER_PREFIX
) -> dict[str, str]:
    """Broker user name per service and client: `<prefix><name>`."""
    return {name: user_prefix + name for name in [*services, *CLIENTS]}


def definitions(
    services: Sequence[ServiceDefinition],
    *,
    vhost: str = DEFAULT_VHOST,
    user_prefix: str = DEFAULT_USER_PREFIX,
    registry: Registry = REGISTRY,
) -> dict[str, Any]:
    """The vhost, its exchanges, and one passwordless user per service and client."""
    users = service_users((s.name for s in services), user_prefix=user_prefix)
    accesses = [
        *(service_access(s, user=users[s.name], registry=registry) for s in services),
        *(client_access(user=users[client], services=services) for client in CLIENTS),
    ]
    return _document(vhost, accesses, topology=True)


def agent_definitions(
    computer_ids: Iterable[str],
    *,
    vhost: str = DEFAULT_VHOST,
    reserved: Collection[str] = (),
) -> dict[str, Any]:
    """Enrol agents: a passwordless user per computer id, its permissions and its queue.

    Import it after the main definitions (the vhost and `lockgate.agents` must exist).
    `reserved` names users that must never be overwritten (the services' own users).
    """
    ids = [check_computer_id(computer_id) for computer_id in computer_ids]
    if not ids:
        raise ValueError("no computer id given")
    taken = sorted(set(ids) & (set(reserved) | RESERVED_USERS))
    if taken:
        raise ValueError(
            f"computer ids {taken} are the names of other broker users; importing them "
            "would overwrite those users"
        )
    return _document(vhost, [agent_access(computer_id) for computer_id in ids], topology=False)


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's SHA-256 password hash: base64(salt + sha256(salt + password)), 4-byte salt."""
    if not password:
        raise ValueError("a blank password is refused by RabbitMQ's internal backend")
    salt = secrets.token_bytes(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError("the salt is 4 bytes")
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def with_passwords(document: Mapping[str, Any], passwords: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `document` where the named users get these passwords (as salted hashes).

    For files made at deploy time from secrets, never for the committed file.
    """
    found = copy.deepcopy(dict(document))
    users = {user["name"]: user for user in found.get("users", [])}
    unknown = sorted(set(passwords) - set(users))
    if unknown:
        raise ValueError(f"no such users in the definitions: {unknown}")
    for name, password in passwords.items():
        users[name]["password_hash"] = password_hash(password)
        users[name]["hashing_algorithm"] = HASHING_ALGORITHM
    return found


def render(document: Mapping[str, Any]) -> str:
    """The JSON text `rabbitmqctl import_definitions` reads (stable, for the drift test)."""
    return json.dumps(document, indent=2) + "\n"
