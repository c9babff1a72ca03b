"""The bulk path of a queue: many deliveries, one transaction, one ack after its commit.

Deliveries of a type whose route has `handle_many` are decoded as they arrive and gathered
into batches of `batch_size` messages. The queue's prefetch is three batches
(`batch_prefetch`, used by libs/service/runner.py), so the broker keeps delivering, and
this process keeps decoding, while a batch commits. One committer per queue commits one
batch at a time (so one process never locks the same counter rows from two transactions
at once): a full batch, else the filling one once its first message has waited
`batch_wait_seconds` (while the committer is busy it goes on filling). Each batch: inbox
claims for every message id in one statement, the handler once, the outbox, commit, then
one `multiple=True` ack that covers the batch (`Acks` decides what one ack may cover).
Anything else on the queue, and every message of a batch that failed for its own reasons,
goes through the ordinary one-message pipeline, which retries or dead-letters it on its
own. A batch that failed because a dependency did (libs/service/transient.py) is kept whole
and unacked: it waits for the process's gate to open and is committed together again."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from libs.bus.codec import InvalidMessage, from_amqp
from libs.bus.replay import origin
from libs.contracts.envelope import Envelope
from libs.db import inbox
from libs.db.outbox import Outbox, StepObserver, timed_step
from libs.db.pool import Pool
from libs.observability import metrics
from libs.service.clock import Clock
from libs.service.handlers import Answer, HandlerContext, Instance, On, run_after_commit
from libs.service.pipeline import PERSISTENT_CONFLICTS, PERSISTENT_OUTAGES, InFlight, Pipeline
from libs.service.transient import Failure, Gate, classify, conflict_pause
from libs.settings import Settings

log = structlog.get_logger(__name__)

STEP_BATCH_DECODE = "batch.decode"
"""One delivery read for a batch: envelope, body, sender."""
STEP_BATCH_TRANSACTION = "batch.transaction"
"""One batch's transaction: a pooled connection, BEGIN, the inbox claims, the handler, COMMIT."""
STEP_BATCH_ACK = "batch.ack"
"""One batch's acks after its commit."""

BATCHES_PER_PREFETCH = 3
"""A batched queue's prefetch holds this many batches: one committing, one read and
waiting, one filling. With batch = prefetch a batch could only fill once the previous one
was acked."""


def batch_prefetch(settings: Settings) -> int:
    """The prefetch of a queue with batched routes: `prefetch`, raised to three batches."""
    return max(settings.prefetch, BATCHES_PER_PREFETCH * settings.batch_size)


@dataclass
class _Channel:
    """Delivery tags of one channel: every tag up to `floor` is settled, and so are those
    in `settled` (above it)."""

    floor: int = 0
    settled: set[int] = field(default_factory=set)


class Acks:
    """Which deliveries one `multiple=True` ack may cover.

    A multiple ack settles every unsettled delivery of the channel up to its tag, so it may
    only be sent up to a tag below which every delivery is settled already or belongs to
    the committed batch. Another message still in the one-message pipeline, a batch waiting
    at the gate, or a delivery left unacked on stopping keeps its tag unsettled, and no
    multiple ack passes it: the batch's messages above it are acked one by one instead.
    Tags are per channel and count from 1 on each channel (a channel reopened after a
    connection loss starts again; its messages were given back by the broker).
    """

    def __init__(self) -> None:
        self._channels: dict[int, tuple[object, _Channel]] = {}

    def _of(self, channel: object) -> _Channel:
        found = self._channels.get(id(channel))
        if found is None or found[0] is not channel:
            # A channel not seen before: forget those that are closed (their tags are gone).
            for key, (kept, _) in list(self._channels.items()):
                if getattr(kept, "is_closed", False):
                    del self._channels[key]
            found = (channel, _Channel())
            self._channels[id(channel)] = found
        return found[1]

    def settled(self, channel: object, tag: int) -> None:
        """The delivery `tag` was acked, rejected or nacked (by anyone)."""
        state = self._of(channel)
        if tag <= state.floor:
            return
        state.settled.add(tag)
        while state.floor + 1 in state.settled:
            state.floor += 1
            state.settled.discard(state.floor)

    def plan(self, channel: object, tags: list[int]) -> tuple[int | None, list[int]]:
        """How to ack the committed deliveries `tags` of `channel`: (the tag of one
        multiple ack, or None; the tags to ack one by one). Marks them all settled."""
        state = self._of(channel)
        mine = set(tags)
        reach = state.floor
        multiple: int | None = None
        while reach + 1 in mine or reach + 1 in state.settled:
            reach += 1
            if reach in mine:
                multiple = reach
        singles = sorted(t for t in mine if multiple is None or t > multiple)
        for tag in tags:
            self.settled(channel, tag)
        return multiple, singles


@dataclass
class _Waiting:
    message: AbstractIncomingMessage
    envelope: Envelope
    payload: Any
    route: On[Any]
    done: asyncio.Future[None]
    admitted: float
    """time.perf_counter() when it was read (HANDLER_DURATION: from there to the commit)."""


def _channel_of(message: AbstractIncomingMessage) -> object | None:
    try:
        return message.channel
    except Exception:  # noqa: BLE001 - a closed channel: its deliveries are given back anyway
        return None


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
        on_step: StepObserver | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._on_step = on_step
        self._batched = {
            r.spec.type: r for r in routes if isinstance(r, On) and r.handle_many is not None
        }
        self._pool = pool
        self._instance = instance
        self._settings = settings
        self._clock = clock
        self._in_flight = in_flight
        self._gate = gate
        self._max = settings.batch_size
        self._filling: list[_Waiting] = []
        self._timer: asyncio.TimerHandle | None = None
        self._due = False
        """The filling batch has waited long enough: the committer takes it when free."""
        self._sealed: deque[list[_Waiting]] = deque()
        self._committer: asyncio.Task[None] | None = None
        self._acks = Acks()

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        with self._in_flight:
            if not await self._gate.wait_open():
                return  # stopping during an outage: left unacked, the broker gives it back
            with timed_step(self._on_step, STEP_BATCH_DECODE):
                waiting = self._admit(message)
            if waiting is None:
                try:
                    await self._pipeline.process(message)
                finally:
                    self._settled(message)
                return
            self._filling.append(waiting)
            if len(self._filling) >= self._max:
                self._seal()
            elif self._timer is None and not self._due:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._settings.batch_wait_seconds, self._waited)
            await waiting.done

    def _settled(self, message: AbstractIncomingMessage) -> None:
        """Note a delivery the one-message pipeline settled (a multiple ack may pass it)."""
        if message.processed and message.delivery_tag is not None:
            channel = _channel_of(message)
            if channel is not None:
                self._acks.settled(channel, message.delivery_tag)

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
        return _Waiting(message, envelope, payload, route, future, time.perf_counter())

    def _seal(self) -> None:
        """The filling batch is full: it waits for the committer, and the next one fills."""
        self._cancel_timer()
        batch, self._filling = self._filling, []
        self._due = False
        self._sealed.append(batch)
        self._start_committer()

    def _waited(self) -> None:
        """The filling batch's first message has waited `batch_wait_seconds`: the committer
        takes it as it is when free (until then it goes on filling)."""
        self._timer = None
        self._due = True
        self._start_committer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start_committer(self) -> None:
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_ready(), name="batch-committer")

    def _next_batch(self) -> list[_Waiting] | None:
        """The oldest full batch, else the filling one if it has waited long enough."""
        if self._sealed:
            return self._sealed.popleft()
        if self._due and self._filling:
            self._due = False
            batch, self._filling = self._filling, []
            return batch
        return None

    async def _commit_ready(self) -> None:
        """Commit the batches that are ready, in order, one at a time."""
        try:
            while (batch := self._next_batch()) is not None:
                await self._commit(batch)
        finally:
            self._committer = None

    async def _commit(self, batch: list[_Waiting]) -> None:
        try:
            await self._commit_until_done(batch)
        finally:
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)
        ended = time.perf_counter()
        for item in batch:
            metrics.HANDLER_DURATION.labels(item.route.name).observe(ended - item.admitted)

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
                        try:
                            await self._pipeline.process(item.message)
                        finally:
                            self._settled(item.message)
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
        with timed_step(self._on_step, STEP_BATCH_TRANSACTION):
            await self._transaction(by_route, committed)
        for ctx, name in committed:
            await run_after_commit(ctx, self._pool, name)
        # Committed: ack the batch (a lost ack means a redelivery the inbox skips).
        with timed_step(self._on_step, STEP_BATCH_ACK):
            await self._ack(batch)

    async def _transaction(
        self, by_route: dict[str, list[_Waiting]], committed: list[tuple[HandlerContext, str]]
    ) -> None:
        """Claim, handle and commit every route's messages; the committed contexts are
        added to `committed`."""
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

    async def _ack(self, batch: list[_Waiting]) -> None:
        """One `multiple=True` ack for as much of the batch as it may cover, per channel;
        the rest one by one."""
        by_channel: dict[int, tuple[object, dict[int, _Waiting]]] = {}
        for item in batch:
            channel = _channel_of(item.message)
            tag = item.message.delivery_tag
            if channel is None or tag is None:
                log.warning("message.ack_failed", error="channel closed before the ack")
                continue
            by_channel.setdefault(id(channel), (channel, {}))[1][tag] = item
        for channel, items in by_channel.values():
            multiple, singles = self._acks.plan(channel, list(items))
            acks = [] if multiple is None else [items[multiple].message.ack(multiple=True)]
            acks += [items[tag].message.ack() for tag in singles]
            for result in await asyncio.gather(*acks, return_exceptions=True):
                if isinstance(result, BaseException):
                    log.warning("message.ack_failed", error=repr(result))
        for item in batch:
            if not item.done.done():
                item.done.set_result(None)
