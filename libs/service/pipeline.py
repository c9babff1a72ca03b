"""One queue's message pipeline: decode -> inbox -> handler -> outbox -> commit -> ack.

Delivery semantics: at least once in, exactly once in effect. The ack is sent only after
the transaction holding the handler's writes, its inbox row and its outbox events has
committed; a crash before the ack redelivers the message and the inbox skips it.
Messages that can never succeed go to `<queue>.dlq` at once with the reason in headers;
others that fail for their own reasons are retried (with backoff) until the delivery limit,
then dead-lettered likewise. A failure that is a dependency's (libs/service/transient.py:
the database or broker does not answer, a failover, a timeout) costs no delivery: the
message stays unacked, the process's gate closes, and once it opens the same message runs
again in process, as often as it takes. While the gate is closed no new delivery starts.

Agent messages are checked before any handler runs: the computer id in the body must be the
one of the routing key the broker let the agent publish under (`check_sender`). When a route
with `sends_rejected` refuses an agent's message at once, the agent is also told why
(`computer.<computer_id>.rejected.v1`, published directly with a confirm).

With an `on_step` observer (ServiceProcess(on_step=...), for benchmarks) each delivery also
reports how long its steps took (the STEP_* names); without one nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from libs.bus.bus import Bus, PublishFailed
from libs.bus.codec import (
    InvalidMessage,
    describe_validation_error,
    first_field,
    from_amqp,
    to_amqp,
)
from libs.bus.replay import origin
from libs.bus.rpc import STATUS_HEADER, reply_by
from libs.contracts.agents import REJECTED, Rejected
from libs.contracts.envelope import Envelope, source_of
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.contracts.spec import SUBJECT, AgentEventSpec, Contract
from libs.contracts.system import RpcError
from libs.db import inbox
from libs.db.outbox import Outbox, StepObserver, timed_step
from libs.db.pool import Connection, Pool
from libs.db.unit_of_work import Transaction, Unquotable
from libs.observability import metrics
from libs.service.clock import SYSTEM_CLOCK, Clock
from libs.service.errors import DomainError, Refused
from libs.service.handlers import Answer, HandlerContext, Instance, On, run_after_commit
from libs.service.transient import Failure, Gate, classify, conflict_pause
from libs.settings import Settings

log = structlog.get_logger(__name__)

REASON_CLASS_HEADER = "x-lockgate-reason-class"
REASON_HEADER = "x-lockgate-reason"
MAX_REASON = 2000

# Steps of one delivery told to `on_step`: decode (envelope, route, sender, payload); the
# transaction (pool acquire to commit) and, inside it, the inbox claim, the handler (with the
# reply's JSON for a command) and the stored reply; the reply's publish; the ack; and the
# whole of `process`. A refused or failed message reports only the steps it finished.
PERSISTENT_OUTAGES = 10
"""Outage failures of one message, each met while the dependencies answered at the gate's
first probe, after which it is the message's own failure (dead-lettered)."""
PERSISTENT_CONFLICTS = 50
"""Lost races (serialization failure, deadlock) of one message in a row before the same."""

STEP_DECODE = "decode"
STEP_TRANSACTION = "transaction"
STEP_CLAIM = "inbox.claim"
STEP_HANDLER = "handler"
STEP_STORE_REPLY = "inbox.store_reply"
STEP_REPLY = "reply"
STEP_ACK = "ack"
STEP_PROCESS = "process"


@dataclass(frozen=True)
class Outcome:
    """What the pipeline did with one delivery (returned for tests and logs)."""

    action: str
    """handled | duplicate | dead-lettered | requeued | answered-error | expired (a command
    whose caller stopped waiting) | abandoned (the
    process stopped while waiting out an outage: left unacked, the broker gives it back)."""


class InFlight:
    """Counts deliveries being processed, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self._idle.clear()

    def __exit__(self, *_: object) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


class Pipeline:
    """Handles the deliveries of one queue with its routes."""

    def __init__(
        self,
        *,
        queue: str,
        routes: list[On[Any] | Answer[Any, Any]],
        pool: Pool,
        bus: Bus,
        instance: Instance,
        settings: Settings,
        delivery_limit: int,
        in_flight: InFlight,
        stopping: asyncio.Event,
        gate: Gate,
        clock: Clock = SYSTEM_CLOCK,
        on_step: StepObserver | None = None,
    ) -> None:
        self.queue = queue
        self._routes = {
            accepted: route for route in routes for accepted in route.spec.accepted_types
        }
        """By type, and by the earlier names a renamed type still accepts."""
        self._pool = pool
        self._bus = bus
        self._instance = instance
        self._settings = settings
        self._delivery_limit = delivery_limit
        self._in_flight = in_flight
        self._stopping = stopping
        self._gate = gate
        self._clock = clock
        self._on_step = on_step
        self._source = source_of(instance.service)
        self._labelled: dict[str, tuple[Histogram, Counter]] = {}
        self._sends_rejected = any(isinstance(r, On) and r.sends_rejected for r in routes)
        """Some route here tells agents of refusals: so are refusals before a route is known."""

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        with self._in_flight:
            if not await self._gate.wait_open():
                return  # stopping during an outage: left unacked, the broker gives it back
            await self.process(message)

    async def process(self, message: AbstractIncomingMessage) -> Outcome:
        started = time.perf_counter()
        envelope: Envelope | None = None
        route: On[Any] | Answer[Any, Any] | None = None
        try:
            with timed_step(self._on_step, STEP_DECODE):
                envelope = from_amqp(message)
                route = self._route(envelope)
                payload = self._decode(route, envelope, message.body)
                envelope = self.check_sender(route, envelope, origin(message)[1], payload)
        except InvalidMessage as error:
            return await self._refuse(message, route, error, envelope)
        # Bound and reset by token: structlog's bound_contextvars reads every bound variable
        # to restore them, twice the cost per message.
        tokens = structlog.contextvars.bind_contextvars(
            message_id=envelope.id,
            message_type=envelope.type,
            correlation_id=envelope.correlation_id,
            subject=envelope.subject,
        )
        try:
            if isinstance(route, Answer) and self._caller_gave_up(message):
                return await self._drop_expired(message, route)
            outcome = await self._run(message, envelope, route, payload)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
        elapsed = time.perf_counter() - started
        self._metrics(route.name)[0].observe(elapsed)
        if self._on_step is not None:
            self._on_step(STEP_PROCESS, elapsed)
        return outcome

    def _metrics(self, handler: str) -> tuple[Histogram, Counter]:
        """A handler's duration histogram and handled counter (their labelled children,
        looked up once)."""
        found = self._labelled.get(handler)
        if found is None:
            found = self._labelled[handler] = (
                metrics.HANDLER_DURATION.labels(handler),
                metrics.MESSAGES_HANDLED.labels(handler),
            )
        return found

    @staticmethod
    def _caller_gave_up(message: AbstractIncomingMessage) -> bool:
        """Whether the command's caller has stopped waiting (libs/bus/rpc.py REPLY_BY_HEADER).

        Real time, not the service's clock: the caller's deadline is on the wall clock."""
        deadline = reply_by(message)
        return deadline is not None and time.time() > deadline

    async def _drop_expired(
        self, message: AbstractIncomingMessage, route: On[Any] | Answer[Any, Any]
    ) -> Outcome:
        """A command nobody waits for: its caller was told it timed out, so it is not
        applied now (a retry, with an idempotency key, applies it once). Not a dead letter."""
        await message.ack()
        metrics.RPC_REQUESTS.labels(route.spec.type, "expired").inc()
        log.info("rpc.expired", command=route.spec.type)
        return Outcome("expired")

    async def _run(
        self,
        message: AbstractIncomingMessage,
        envelope: Envelope,
        route: On[Any] | Answer[Any, Any],
        payload: Contract,
    ) -> Outcome:
        """Handle the message; wait out outages and conflicts, running it again each time.

        Not for ever when the failure is the message's in disguise: a statement that times
        out, or a transaction that loses every race, while the dependencies answer at once
        each time is dead-lettered after PERSISTENT_OUTAGES / PERSISTENT_CONFLICTS tries."""
        attempt = 0
        persistent = 0
        while True:
            try:
                return await self._handle(message, envelope, route, payload)
            except DomainError as error:
                return await self._refuse(message, route, error, envelope)
            except Exception as error:  # noqa: BLE001 - sorted below: the message's own or not
                kind = classify(error)
                if kind is Failure.OWN:
                    return await self._retry_or_dead_letter(message, route, error)
                attempt += 1
                metrics.MESSAGES_FAILED.labels(route.name).inc()
                if attempt == 1:
                    log.warning(
                        "message.waiting",
                        handler=route.name,
                        failure=kind.value,
                        error=f"{type(error).__name__}: {error}"[:300],
                    )
                if not await self._wait_after(kind, error, attempt):
                    log.info("message.abandoned", handler=route.name, attempts=attempt)
                    return Outcome("abandoned")
                if kind is Failure.CONFLICT or self._gate.reopened_at_once:
                    persistent += 1
                    limit = PERSISTENT_CONFLICTS if kind is Failure.CONFLICT else PERSISTENT_OUTAGES
                    if persistent >= limit:
                        log.warning(
                            "message.persistent_failure",
                            handler=route.name,
                            attempts=attempt,
                            error=f"{type(error).__name__}: {error}"[:300],
                        )
                        return await self._retry_or_dead_letter(message, route, error, final=True)

    async def _wait_after(self, kind: Failure, error: Exception, attempt: int) -> bool:
        """Wait until it is worth running again: the gate open after an outage, a short
        pause after a conflict. False when the process stops meanwhile."""
        if kind is Failure.OUTAGE:
            self._gate.close(error)
            return await self._gate.wait_open()
        return await self._gate.pause(conflict_pause(attempt))

    @staticmethod
    def check_sender(
        route: On[Any] | Answer[Any, Any],
        envelope: Envelope,
        routing_key: str,
        payload: Contract,
    ) -> Envelope:
        """An agent's identity is the routing key it may publish under, not what it writes.

        Broker permissions limit each agent to `agent.<its id>.*`; the `ce-subject` (when
        sent) and the body's computer id (the spec's `computer_id_field`) must agree with it.
        The one check for every agent message type, per-message and batched paths alike.
        Returns the envelope with the sender as its subject.
        """
        if not (isinstance(route, On) and isinstance(route.spec, AgentEventSpec)):
            return envelope
        sender = sender_of(routing_key) or ""
        if envelope.subject not in (None, sender):
            raise InvalidMessage(
                f"subject {envelope.subject!r} does not match the sender {sender!r} of routing "
                f"key {routing_key!r}: an agent may only speak for itself"
            )
        spoken_for = route.spec.computer_id_of(payload)
        if spoken_for != sender:
            field = route.spec.computer_id_field
            raise InvalidMessage(
                f"{field} {spoken_for!r} in the body does not match {sender!r} in the routing "
                "key: an agent may only speak for itself",
                field=field,
            )
        return envelope.model_copy(update={"subject": sender})

    def _route(self, envelope: Envelope) -> On[Any] | Answer[Any, Any]:
        route = self._routes.get(envelope.type)
        if route is None:
            raise InvalidMessage(
                f"type {envelope.type!r} has no handler on {self.queue}; "
                f"allowed: {sorted(self._routes)}"
            )
        return route

    @staticmethod
    def _decode(route: On[Any] | Answer[Any, Any], envelope: Envelope, body: bytes) -> Contract:
        model = route.spec.model if isinstance(route, On) else route.spec.request
        try:
            payload: Contract = model.model_validate_json(body)
        except ValidationError as error:
            raise InvalidMessage(
                describe_validation_error(error, envelope.type), field=first_field(error)
            ) from None
        return payload

    async def _handle(
        self,
        message: AbstractIncomingMessage,
        envelope: Envelope,
        route: On[Any] | Answer[Any, Any],
        payload: Contract,
    ) -> Outcome:
        with timed_step(self._on_step, STEP_TRANSACTION):
            async with self._pool.acquire() as conn:
                reply, ctx = await self._transaction(conn, envelope, route, payload)
        duplicate = ctx is None
        # Committed. A failure from here on is not the handler's: the effect stands, and a
        # redelivery (if the ack is lost) is skipped by the inbox.
        if ctx is not None:
            if ctx.after_commit:
                await run_after_commit(ctx, self._pool, route.name)  # wakes the relay first
            else:
                ctx.outbox.committed()
        try:
            if reply is not None:
                with timed_step(self._on_step, STEP_REPLY):
                    await self._reply(message, route.spec.type, *reply)
            with timed_step(self._on_step, STEP_ACK):
                await message.ack()
        except Exception as error:  # noqa: BLE001 - never retry or dead-letter a committed message
            log.warning("message.ack_failed", handler=route.name, error=repr(error))
        if duplicate:
            metrics.MESSAGES_DUPLICATE.labels(route.name).inc()
            log.info("message.duplicate", handler=route.name)
            return Outcome("duplicate")
        self._metrics(route.name)[1].inc()
        if isinstance(route, Answer):
            metrics.RPC_REQUESTS.labels(route.spec.type, "ok").inc()
        return Outcome("handled")

    async def _transaction(
        self,
        conn: Connection,
        envelope: Envelope,
        route: On[Any] | Answer[Any, Any],
        payload: Contract,
    ) -> tuple[tuple[str, bytes] | None, HandlerContext | None]:
        """Claim, handle and commit; the reply (a command's, or a duplicate's stored one) and
        the handler's context (None: a duplicate, not handled again).

        BEGIN goes with the claim, and the outbox rows and reply with COMMIT and the session
        reset: two round trips around the handler's own (libs/db/unit_of_work.py)."""
        reply: tuple[str, bytes] | None = None
        ctx: HandlerContext | None = None
        transaction = Transaction(conn)
        try:
            with timed_step(self._on_step, STEP_CLAIM):
                claimed = await self._begin_claimed(transaction, conn, envelope, route)
            finishing: list[str] = []
            if not claimed:
                stored = await inbox.stored_reply(conn, envelope.id, route.name)
                reply = None if stored is None else (stored.status, stored.body)
            else:
                outbox = Outbox(
                    conn,
                    schema=self._instance.service,
                    source=self._source,
                    correlation_id=envelope.correlation_id or envelope.id,
                    managed=True,  # written with the commit, woken after it
                )
                ctx = HandlerContext(
                    conn=conn,
                    envelope=envelope,
                    outbox=outbox,
                    now=self._clock.now(),
                    instance=self._instance,
                    settings=self._settings,
                )
                with timed_step(self._on_step, STEP_HANDLER):
                    if isinstance(route, On):
                        await route.handle(ctx, payload)
                    else:
                        reply = await self._answer(ctx, route, payload)
                finishing = await outbox.commit_statements(literal=transaction.literal)
                if reply is not None:
                    with timed_step(self._on_step, STEP_STORE_REPLY):
                        finishing += await self._store_reply(
                            transaction, conn, envelope, route, reply
                        )
            await transaction.commit(finishing)
        except BaseException:
            await transaction.rollback()
            raise
        return reply, ctx

    @staticmethod
    async def _begin_claimed(
        transaction: Transaction,
        conn: Connection,
        envelope: Envelope,
        route: On[Any] | Answer[Any, Any],
    ) -> bool:
        """Open the transaction and claim the message for the route's handler; False when
        it handled the message before."""
        if transaction.literal:
            try:
                sql = inbox.claim_sql(envelope.id, route.name)
            except Unquotable:
                pass
            else:
                return inbox.claimed(await transaction.begin(sql))
        await transaction.begin()
        return await inbox.claim(conn, envelope.id, route.name)

    @staticmethod
    async def _store_reply(
        transaction: Transaction,
        conn: Connection,
        envelope: Envelope,
        route: On[Any] | Answer[Any, Any],
        reply: tuple[str, bytes],
    ) -> list[str]:
        """Keep the reply for a duplicate request: as SQL to send with COMMIT, or now."""
        if transaction.literal:
            try:
                return [inbox.store_reply_sql(envelope.id, route.name, *reply)]
            except Unquotable:
                pass
        await inbox.store_reply(conn, envelope.id, route.name, *reply)
        return []

    @staticmethod
    async def _answer(
        ctx: HandlerContext, route: Answer[Any, Any], payload: Contract
    ) -> tuple[str, bytes]:
        """The reply to a command; a Refused keeps the handler's writes and answers an error."""
        try:
            result = await route.handle(ctx, payload)
        except Refused as refusal:
            body = RpcError(
                error=type(refusal).__name__,
                message=_storable(str(refusal)),
                field=None if refusal.field is None else _storable(refusal.field),
            )
            return ("error", body.model_dump_json().encode())
        return ("ok", result.model_dump_json().encode())

    async def _reply(
        self, message: AbstractIncomingMessage, request_type: str, status: str, body: bytes
    ) -> None:
        if not message.reply_to:
            return
        envelope = Envelope.new(
            source=self._source,
            type=f"{request_type}.{'reply' if status == 'ok' else 'error'}",
            correlation_id=message.correlation_id or message.message_id,
        )
        reply = to_amqp(envelope, body)
        reply.headers[STATUS_HEADER] = status
        try:
            await self._bus.publish(reply, exchange="", routing_key=message.reply_to)
        except PublishFailed as error:  # the caller left; it already timed out
            log.warning("rpc.reply_lost", error=str(error))

    async def _reply_error(
        self, message: AbstractIncomingMessage, command: str, error: Exception, text: str
    ) -> None:
        field = getattr(error, "field", None)
        body = RpcError(
            error=type(error).__name__,
            message=_storable(text),
            field=None if field is None else _storable(str(field)),
        )
        await self._reply(message, command, "error", body.model_dump_json().encode())

    async def _refuse(
        self,
        message: AbstractIncomingMessage,
        route: On[Any] | Answer[Any, Any] | None,
        error: Exception,
        envelope: Envelope | None = None,
    ) -> Outcome:
        """A message that can never succeed: an RPC caller is told, anything else is parked
        (and an agent, on a route that `sends_rejected`, is told why)."""
        # Agents' messages are never commands: a reply_to on one is not followed (a service
        # may write to any queue through the default exchange; an agent must not steer it).
        if (
            message.reply_to
            and not isinstance(route, On)
            and origin(message)[0] != Exchange.AGENTS.value
        ):
            command = route.spec.type if route else (message.type or "unknown.command.v1")
            await self._reply_error(message, command, error, str(error))
            await message.ack()
            metrics.RPC_REQUESTS.labels(
                route.spec.type if route else "unknown", type(error).__name__
            ).inc()
            log.info(
                "rpc.refused", command=command, error=type(error).__name__, reason=str(error)[:300]
            )
            return Outcome("answered-error")
        await self._dead_letter(message, route, error)
        if route.sends_rejected if isinstance(route, On) else self._sends_rejected:
            await self._tell_agent(message, envelope, error)
        return Outcome("dead-lettered")

    async def _tell_agent(
        self, message: AbstractIncomingMessage, envelope: Envelope | None, error: Exception
    ) -> None:
        """Publish `computer.<id>.rejected.v1` for an agent's refused message, with a confirm.

        Called after the dead letter is safely parked: the handler's transaction did not
        commit (no outbox), and a lost rejection must never cost the dead letter. The
        computer id is read from the routing key, since the body may be unreadable.
        """
        exchange, routing_key = origin(message)
        computer_id = sender_of(routing_key)
        if exchange != Exchange.AGENTS.value or computer_id is None:
            return
        headers = message.headers or {}
        message_id = envelope.id if envelope else _text(headers.get("ce-id")) or message.message_id
        caused_by = envelope.correlation_id if envelope else message.correlation_id
        now = self._clock.now()
        try:
            body = Rejected(
                computer_id=computer_id,
                message_id=message_id or "",
                message_type=(
                    envelope.type if envelope else _text(headers.get("ce-type")) or message.type
                )
                or "",
                reason_class=type(error).__name__,
                reason=str(error)[:MAX_REASON],
                field=getattr(error, "field", None),
                rejected_at=now,
            )
            reply = Envelope.new(
                source=self._source,
                type=REJECTED.type,
                subject=computer_id,
                correlation_id=caused_by or message_id or None,
                now=now,
            )
            await self._bus.publish(
                to_amqp(reply, body.model_dump_json().encode()),
                exchange=REJECTED.exchange.value,
                routing_key=REJECTED.routing_key(computer_id),
            )
        except Exception as failure:  # noqa: BLE001 - the dead letter stands; only the hint is lost
            log.warning(
                "agent.rejection_lost",
                computer_id=computer_id,
                message_id=message_id,
                error=f"{type(failure).__name__}: {failure}",
            )
            return
        log.info("agent.rejected", computer_id=computer_id, message_id=message_id)

    async def _retry_or_dead_letter(
        self,
        message: AbstractIncomingMessage,
        route: On[Any] | Answer[Any, Any],
        error: Exception,
        *,
        final: bool = False,
    ) -> Outcome:
        metrics.MESSAGES_FAILED.labels(route.name).inc()
        count = (message.headers or {}).get("x-delivery-count")
        previous = count if isinstance(count, int) else 0
        if final or previous + 1 >= self._delivery_limit:
            log.error(
                "message.failed_final",
                handler=route.name,
                attempts=previous + 1,
                error=f"{type(error).__name__}: {error}",
            )
            if isinstance(route, Answer) and message.reply_to:
                # The caller is told now rather than left to time out; the request is
                # still parked in the DLQ for whoever investigates.
                await self._reply_error(
                    message,
                    route.spec.type,
                    error,
                    f"{route.spec.type} failed after {previous + 1} attempts: {error}",
                )
            await self._dead_letter(message, route, error)
            return Outcome("dead-lettered")
        log.warning(
            "message.failed",
            handler=route.name,
            attempt=previous + 1,
            error=f"{type(error).__name__}: {error}",
            exc_info=error,
        )
        # Back off before requeueing so a failing dependency is not hammered; cut short on stop.
        delay = min(0.2 * 2**previous, 5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        await message.nack(requeue=True)
        return Outcome("requeued")

    async def _dead_letter(
        self,
        message: AbstractIncomingMessage,
        route: On[Any] | Answer[Any, Any] | None,
        error: Exception,
    ) -> None:
        """Copy the message to `<queue>.dlq` with the reason, then ack the original.

        Publishing with a confirm before acking keeps the message somewhere at every moment
        (at worst a crash in between leaves a copy in both queues, never in neither).
        """
        headers = dict(message.headers or {})
        headers.update(
            {
                REASON_CLASS_HEADER: type(error).__name__,
                REASON_HEADER: str(error)[:MAX_REASON],
                "x-lockgate-queue": self.queue,
                "x-lockgate-handler": route.name if route else "",
                "x-original-exchange": origin(message)[0],
                "x-original-routing-key": origin(message)[1],
                "x-dead-lettered-at": datetime.now(UTC).isoformat(),
            }
        )
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            timestamp=message.timestamp,
            app_id=message.app_id,
            correlation_id=message.correlation_id,
        )
        dlq = dead_letter_queue_name(self.queue)
        while True:
            try:
                await self._bus.publish(copy, exchange=Exchange.DEAD_LETTERS.value, routing_key=dlq)
                break
            except PublishFailed as failure:
                # Not parked: the broker is away. Keep the original (unacked, so it costs no
                # delivery) until the broker answers, then park it.
                self._gate.close(failure)
                if not await self._gate.wait_open():
                    log.warning("message.dead_letter_deferred", queue=self.queue, dlq=dlq)
                    return
        await message.ack()
        metrics.MESSAGES_DEAD_LETTERED.labels(self.queue, type(error).__name__).inc()
        log.warning(
            "message.dead_lettered",
            queue=self.queue,
            dlq=dlq,
            reason_class=type(error).__name__,
            reason=str(error)[:300],
        )


def sender_of(routing_key: str) -> str | None:
    """The computer id of an agent's routing key `agent.<computer_id>.<kind>.v<major>`."""
    parts = routing_key.split(".")
    if len(parts) > 2 and parts[0] == "agent" and SUBJECT.fullmatch(parts[1]):
        return parts[1]
    return None


def _text(value: object) -> str | None:
    """A header's value as text (AMQP clients send strings as bytes or str)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def _storable(text: str) -> str:
    """Text any contract accepts: a refusal may quote input holding a NUL or a lone
    surrogate, and an error reply that fails its own validation would never be sent."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
