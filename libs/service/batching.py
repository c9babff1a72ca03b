"""The bulk path of a queue: many deliveries, one transaction, acks after its commit.

Deliveries of a type whose route has `handle_many` wait (up to the prefetch, or
`batch_wait_seconds`) and are committed together: inbox claims for every message id in
one statement, the handler once, the outbox, commit, then each message is acked. Anything
else on the queue, and every message of a batch that failed for its own reasons, goes
through the ordinary one-message pipeline, which retries or dead-letters it on its own.
A batch that failed because a dependency did (libs/service/transient.py) is kept whole and
unacked: it waits for the process's gate to open and is committed together again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from libs.bus.codec import InvalidMessage, from_amqp
from libs.bus.replay import origin
from libs.contracts.envelope import Envelope
from libs.db import inbox
from libs.db.outbox import Outbox
from libs.db.pool import Pool
from libs.observability import metrics
from libs.service.clock import Clock
from libs.service.handlers import Answer, HandlerContext, Instance, On, run_after_commit
from libs.service.pipeline import PERSISTENT_CONFLICTS, PERSISTENT_OUTAGES, InFlight, Pipeline
from libs.service.transient import Failure, Gate, classify, conflict_pause
from libs.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class _Waiting:
    message: AbstractIncomingMessage
    envelope: Envelope
    payload: Any
    route: On[Any]
    done: asyncio.Future[None]


class BatchingPipeline:
    """Sits in front of a queue's Pipeline and batches the routes that allow it."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        routes: list[On[Any] | Answer[Any, Any]],
        pool: Pool,
        instance: Instance,
        settings: Settings,
        clock: Clock,
        in_flight: InFlight,
        gate: Gate,
    ) -> None:
        self._pipeline = pipeline
        self._batched = {
            r.spec.type: r for r in routes if isinstance(r, On) and r.handle_many is not None
        }
        self._pool = pool
        self._instance = instance
        self._settings = settings
        self._clock = clock
        self._in_flight = in_flight
        self._gate = gate
        self._max = max(settings.prefetch, 1)
        self._waiting: list[_Waiting] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        with self._in_flight:
            if not await self._gate.wait_open():
                return  # stopping during an outage: left unacked, the broker gives it back
            waiting = self._admit(message)
            if waiting is None:
                await self._pipeline.process(message)
                return
            self._waiting.append(waiting)
            if len(self._waiting) >= self._max:
                self._flush_now()
            elif self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._settings.batch_wait_seconds, self._flush_now)
            await waiting.done

    def _admit(self, message: AbstractIncomingMessage) -> _Waiting | None:
        """A well-formed message of a batched type, or None (the ordinary path takes it)."""
        try:
            envelope = from_amqp(message)
        except InvalidMessage:
            return None
        route = self._batched.get(envelope.type)
        if route is None:
            return None
        try:
            payload = route.spec.model.model_validate_json(message.body)
            envelope = Pipeline.check_sender(route, envelope, origin(message)[1], payload)
        except (InvalidMessage, ValidationError):
            return None  # the ordinary path parks it with the reason (and tells the agent)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        return _Waiting(message, envelope, payload, route, future)

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.create_task(self._commit(batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _commit(self, batch: list[_Waiting]) -> None:
        started = time.perf_counter()
        try:
            await self._commit_until_done(batch)
        finally:
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)
        elapsed = time.perf_counter() - started
        for item in batch:
            metrics.HANDLER_DURATION.labels(item.route.name).observe(elapsed)

    async def _commit_until_done(self, batch: list[_Waiting]) -> None:
        """Commit the batch; after an outage or a conflict, again (the same batch, without
        limit); after its own failure, one by one. Returns early, leaving it unacked, when
        the process stops while waiting."""
        attempt = 0
        persistent = 0
        while True:
            try:
                await self._commit_together(batch)
            except Exception as error:  # noqa: BLE001 - sorted below: the batch's own or not
                kind = classify(error)
                text = f"{type(error).__name__}: {error}"[:300]
                if kind is Failure.OWN or persistent >= (
                    PERSISTENT_CONFLICTS if kind is Failure.CONFLICT else PERSISTENT_OUTAGES
                ):
                    # Its own failure, or one in disguise (it kept failing while the
                    # dependencies answered at once): one by one, each with its own limits.
                    log.warning("batch.failed", size=len(batch), error=text)
                    for item in batch:
                        await self._pipeline.process(item.message)
                    return
                attempt += 1
                if attempt == 1:
                    log.warning("batch.waiting", size=len(batch), failure=kind.value, error=text)
                if kind is Failure.OUTAGE:
                    self._gate.close(error)
                    waited = await self._gate.wait_open()
                else:
                    waited = await self._gate.pause(conflict_pause(attempt))
                if not waited:
                    log.info("batch.abandoned", size=len(batch), attempts=attempt)
                    return
                if kind is Failure.CONFLICT or self._gate.reopened_at_once:
                    persistent += 1
            else:
                return

    async def _commit_together(self, batch: list[_Waiting]) -> None:
        by_route: dict[str, list[_Waiting]] = {}
        for item in batch:
            by_route.setdefault(item.route.name, []).append(item)
        committed: list[tuple[HandlerContext, str]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for name, items in by_route.items():
                fresh = await inbox.claim_many(conn, [i.envelope.id for i in items], name)
                new = [i for i in items if i.envelope.id in fresh]
                if not new:
                    continue
                route = new[0].route
                ctx = HandlerContext(
                    conn=conn,
                    envelope=new[0].envelope,
                    outbox=Outbox(
                        conn,
                        schema=self._instance.service,
                        source=f"lockgate/{self._instance.service}",
                        correlation_id=new[0].envelope.correlation_id or new[0].envelope.id,
                    ),
                    now=self._clock.now(),
                    instance=self._instance,
                    settings=self._settings,
                )
                assert route.handle_many is not None  # noqa: S101 - only such routes batch
                await route.handle_many(ctx, [(i.envelope, i.payload) for i in new])
                committed.append((ctx, name))
                metrics.MESSAGES_HANDLED.labels(name).inc(len(new))
                metrics.MESSAGES_DUPLICATE.labels(name).inc(len(items) - len(new))
        for ctx, name in committed:
            await run_after_commit(ctx, self._pool, name)
        # Committed: ack the whole batch at once (a lost ack means a redelivery the inbox skips).
        results = await asyncio.gather(*(i.message.ack() for i in batch), return_exceptions=True)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("message.ack_failed", error=repr(result))
            item.done.set_result(None)
