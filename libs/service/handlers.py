"""The handler table types: which message goes to which function, and what it receives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

from libs.bus.bus import Bus
from libs.contracts.envelope import Envelope, source_of
from libs.contracts.names import queue_name
from libs.contracts.spec import CommandSpec, Contract, EventSpec
from libs.db.outbox import Outbox
from libs.db.pool import Connection, Pool
from libs.service.clock import Clock
from libs.settings import Settings

M = TypeVar("M", bound=Contract)
Req = TypeVar("Req", bound=Contract)
Rep = TypeVar("Rep", bound=Contract)

COMMANDS_PURPOSE = "commands"

log = structlog.get_logger(__name__)

AfterCommit = Callable[[Pool], Awaitable[object]]
"""Work a handler leaves for after its commit; it gets the pool (its transaction is over)."""


@dataclass(frozen=True)
class Instance:
    """The running process: what pings and heartbeats report."""

    service: str
    instance_id: str
    version: str
    started_at: datetime


@dataclass
class HandlerContext:
    """What a handler gets besides the message: its transaction, outbox and clock."""

    conn: Connection
    """Connection inside the transaction that also records the inbox entry
    (`conn.transaction()` in it makes a savepoint)."""
    envelope: Envelope
    """Envelope of the message being handled."""
    outbox: Outbox
    """Events added here are published only if the transaction commits (the message
    pipeline writes them with its COMMIT: libs/db/unit_of_work.py)."""
    now: datetime
    """The instant handling started (UTC); domain code uses it instead of reading a clock."""
    instance: Instance
    settings: Settings
    """The process settings (quota, directories, ...)."""
    after_commit: list[AfterCommit] = field(default_factory=list)
    """Work for once the transaction has committed (`on_commit`)."""

    def on_commit(self, work: AfterCommit) -> None:
        """Run `work(pool)` once this transaction has committed, before the reply and the ack
        (never if it rolls back). A failure there is logged and the commit stands, so the work
        must be safe to repeat and something must finish it after a crash (a periodic task):
        e.g. moving a file into the place a committed row names."""
        self.after_commit.append(work)


async def run_after_commit(ctx: HandlerContext, pool: Pool, handler: str) -> None:
    """The committed transaction's `on_commit` work, in order; a failure is logged only.
    The outbox's relay is woken first (its events are committed too)."""
    ctx.outbox.committed()
    for work in ctx.after_commit:
        try:
            await work(pool)
        except Exception as error:  # noqa: BLE001 - the commit stands; a periodic task repairs
            log.warning("after_commit.failed", handler=handler, error=repr(error))


@dataclass
class TaskContext:
    """What a periodic task gets: the pool, the clock, and how to open an outbox."""

    pool: Pool
    clock: Clock
    instance: Instance
    settings: Settings
    bus: Bus | None = None
    """The process's broker connection, for a task that publishes what it has just
    committed itself (libs/db/direct_publish.py); None: leave everything to the relay."""

    def outbox(self, conn: Connection) -> Outbox:
        """An outbox on `conn`'s open transaction, sourced from this service."""
        return Outbox(
            conn,
            schema=self.instance.service,
            source=source_of(self.instance.service),
            now=self.clock.now(),
        )


EventHandler = Callable[[HandlerContext, M], Awaitable[None]]
BatchHandler = Callable[[HandlerContext, list[tuple[Envelope, M]]], Awaitable[None]]
CommandHandler = Callable[[HandlerContext, Req], Awaitable[Rep]]


@dataclass(frozen=True)
class On(Generic[M]):
    """Handle events of `spec` from the service's queue `<service>.<queue>`."""

    spec: EventSpec[M]
    queue: str
    handle: EventHandler[M]
    handle_many: BatchHandler[M] | None = None
    """Bulk path: deliveries of this type are taken in batches (up to the prefetch, within
    `batch_wait_seconds`) and handed over together in one transaction, acked after its
    commit. If a batch fails, each of its messages goes through `handle` alone, so one bad
    message is retried or dead-lettered on its own."""
    sends_rejected: bool = False
    """Agent messages only: when this route refuses a message for what it says (malformed,
    invalid, not its sender's, a DomainError from the handler), the pipeline, besides
    dead-lettering it, tells the agent with `computer.<computer_id>.rejected.v1`. Set on one
    service's routes only (the scheduler's), so that an agent gets one rejection, not one
    per consuming service. A queue with such a route also answers, for its agent messages,
    refusals that come before a route is known (a bad envelope, a type it has no route for)."""
    bound: bool = True
    """False: the queue no longer binds this type. Its binding, made by an earlier version,
    is removed when the service starts (libs/service/runner.py), and what that version
    left queued is still handled here instead of being dead-lettered."""

    @property
    def name(self) -> str:
        """Inbox key and metric label: `<queue>/<function>`."""
        return f"{self.queue}/{self.handle.__name__}"


@dataclass(frozen=True)
class Answer(Generic[Req, Rep]):
    """Answer commands of `spec` from `<service>.commands`, replying with `spec.reply`."""

    spec: CommandSpec[Req, Rep]
    handle: CommandHandler[Req, Rep]

    @property
    def name(self) -> str:
        return f"{COMMANDS_PURPOSE}/{self.handle.__name__}"


@dataclass(frozen=True)
class Every:
    """A periodic task: `work` runs every `seconds` (read from settings) on every replica.

    Tasks that must not run twice at once across replicas claim their rows with
    `FOR UPDATE SKIP LOCKED` inside `work`.
    """

    name: str
    seconds: Callable[[Settings], float]
    work: Callable[[TaskContext], Awaitable[object]]


@dataclass(frozen=True)
class ReadCopy:
    """Another service's data kept in this service's schema: its tables and the events that
    fill them, defined once in libs/ and mounted by every service that needs it."""

    name: str
    """Names its migrations (`<name>/NNNN_....sql` in `schema_migrations`)."""
    migrations: Path
    """Its tables, applied before the service's own migrations."""
    routes: Sequence[On[Any]]
    """The events that keep it, on a queue of the service that mounts it."""


@dataclass(frozen=True)
class ServiceDefinition:
    """Everything the runtime needs to run one service."""

    name: str
    """Service name: its schema, queue prefix and CloudEvents source."""
    migrations: Path
    events: Sequence[On[Any]] = field(default_factory=tuple)
    commands: Sequence[Answer[Any, Any]] = field(default_factory=tuple)
    tasks: Sequence[Every] = field(default_factory=tuple)
    """Periodic work (timers, batch planning) besides handling messages."""
    heartbeat: bool = True
    """Publish `<name>.service.heartbeat.v1` periodically (the four services do)."""
    read_copies: Sequence[ReadCopy] = field(default_factory=tuple)
    """Shared read copies mounted here: their tables and their routes join the service's."""
    calls: Sequence[CommandSpec[Any, Any]] = field(default_factory=tuple)
    """Other services' commands this one sends over RPC (approval asks reporting for a
    rollout gate's counts): its broker user may then publish on `lockgate.commands`."""

    @property
    def handled_events(self) -> tuple[On[Any], ...]:
        """The service's own event routes, then those of its read copies."""
        return (*self.events, *(route for copy in self.read_copies for route in copy.routes))

    @property
    def mounted_migrations(self) -> tuple[tuple[str, Path], ...]:
        """(name, directory) of each read copy's migrations."""
        return tuple((copy.name, copy.migrations) for copy in self.read_copies)

    def queues(self) -> dict[str, list[On[Any] | Answer[Any, Any]]]:
        """Routes per full queue name; commands share `<service>.commands`."""
        table: dict[str, list[On[Any] | Answer[Any, Any]]] = {}
        for route in self.handled_events:
            table.setdefault(queue_name(self.name, route.queue), []).append(route)
        for answer in self.commands:
            if answer.spec.handler != self.name:
                raise ValueError(f"{self.name} cannot answer {answer.spec.type}")
            table.setdefault(queue_name(self.name, COMMANDS_PURPOSE), []).append(answer)
        for queue, routes in table.items():
            types = [route.spec.type for route in routes]
            if len(types) != len(set(types)):
                raise ValueError(f"queue {queue} has two handlers for one type: {types}")
        return table
