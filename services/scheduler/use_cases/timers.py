"""Durable timers: claimed with FOR UPDATE SKIP LOCKED, fired once, by any replica.

A timer's effect (its instruction in the outbox, its next due time) commits in the
transaction that claimed it, so a crash before commit leaves it due, and two replicas
never fire the same one: the second skips the locked row, then sees its new due time.

A batch is a handful of statements whatever its size: the claim (with each computer's
TimerPlan and restart state: store/timers.py), one statement moving the timers and keeping
the fired marks, one outbox write, and a few for rarer kinds (immediate installs, restarts,
computers whose TimerPlan is not kept for their current plan). Firing reads no whole plan
and rewrites no computer row, except a restart's state.

Once committed, the batch's instructions are published by this task itself, while it
claims the next batch (libs/db/direct_publish.py: leased outbox rows; the relay sends what
this task could not). Instructions go out in outbox order from one replica. Two replicas
firing at once may interleave their batches, and a batch may overtake an event another
transaction committed while it was in flight; timer instructions need no more order than
that: each goes to one computer's queue (`computer.<id>.*`) and says everything the agent
needs (the updates to install, the restart to prompt for), so none depends on an earlier
message having arrived. Two timers of one computer due together (a window and a deadline)
are claimed and committed together or by overlapping transactions, between which the
relay keeps no order either; and the restart cycle's prompt and restart are minutes apart,
each fired only after the previous one committed and was published or handed to the relay.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from prometheus_client import Histogram

from libs.bus.bus import Bus
from libs.contracts.agents import AGENT_UPDATE, INSTALL, RESTART, RESTART_PROMPT
from libs.contracts.envelope import source_of
from libs.db import direct_publish
from libs.db.pool import Connection
from libs.observability import metrics
from libs.service import TaskContext
from services.scheduler import store
from services.scheduler.domain.timers import (
    KINDS,
    Decision,
    DueTimer,
    Marks,
    Timer,
    TimerChange,
    TimerPlan,
    fire,
    timer_plan,
)

log = structlog.get_logger(__name__)

LEASE_PUBLISH_TIMEOUTS = 3
"""A batch's lease lasts this many publish timeouts: a replica that has not published its
committed batch by then is gone, and the relay sends it."""

_started: set[str] = set()
"""Instances whose timers task ran: the first run of a (re)started replica hands every lease
to the relay at once (a replica killed mid-batch leaves one; a live replica's batch in flight
is then sent twice, and consumers drop the second copy by its message id)."""


async def sample_gauges(task: TaskContext) -> None:
    """Timers due and stored per kind, and restarts pending, for Prometheus."""
    async with task.pool.acquire() as conn:
        counts = {count.kind: count for count in await store.timers.counts(conn, task.clock.now())}
        pending = await store.computers.restarts_pending(conn)
    for kind in KINDS:
        count = counts.get(kind)
        metrics.TIMERS_DUE.labels(kind).set(count.due if count else 0)
        metrics.TIMERS_SCHEDULED.labels(kind).set(count.scheduled if count else 0)
    metrics.RESTARTS_PENDING.set(pending)


async def fire_due_timers(task: TaskContext) -> int:
    """Fire every due timer, a batch per transaction; returns how many fired.

    Each committed batch is published while the next one is claimed and decided (at most
    one publish in flight, batches in order). The task holds one connection for its
    transactions and one for marking what it published, both taken before any lock.
    """
    schema = task.instance.service
    source = source_of(schema)
    lease = timedelta(seconds=LEASE_PUBLISH_TIMEOUTS * task.settings.publish_timeout_seconds)
    if task.instance.instance_id not in _started:
        lease = timedelta(0)
    fired = 0
    publishing: asyncio.Task[bool] | None = None
    async with contextlib.AsyncExitStack() as held:
        conn = await held.enter_async_context(task.pool.acquire())
        await direct_publish.release_expired(conn, lease, schema=schema)
        _started.add(task.instance.instance_id)
        publisher: Connection | None = None
        try:
            while True:
                now = task.clock.now()
                if publisher is None and task.bus is not None:
                    # Taken before the claim, never inside the transaction: the claim locks
                    # computer rows, and the handlers waiting for those rows hold pooled
                    # connections; waiting for the pool while holding the locks stalled
                    # both until the handlers' statement timeout.
                    publisher = await held.enter_async_context(task.pool.acquire())
                async with conn.transaction():
                    claimed = await store.timers.claim_due(
                        conn, now, task.settings.timer_batch_size
                    )
                    if not claimed:
                        return fired
                    decisions = await decide_all(conn, claimed, now)
                    written = await apply(
                        conn, decisions, now, source=source, lease=publisher is not None
                    )
                # Committed: nothing may suspend before the publish is handed to its task.
                direct_publish.committed(schema, written)
                previous = publishing
                if publisher is not None and task.bus is not None and written.leased:
                    publishing = _publish_after(
                        previous, publisher, task.bus, written, schema=schema
                    )
                observe(claimed, now)
                fired += len(claimed)
                if previous is not None:  # one batch published while the next one is prepared
                    await asyncio.wait({previous})
        finally:
            if publishing is not None:
                await _published(publishing)


async def _published(publishing: asyncio.Task[bool]) -> None:
    """Wait until the last committed batch went out, even when this task is cancelled (at
    shutdown the runner waits for its tasks before the relay's final flush); a cancellation
    is raised once it has."""
    cancelled = False
    while not publishing.done():
        try:
            await asyncio.wait({publishing})
        except asyncio.CancelledError:
            cancelled = True
    if not publishing.cancelled() and (error := publishing.exception()) is not None:
        log.warning("timers.publish_failed", error=repr(error))  # its rows wait for the relay
    if cancelled:
        raise asyncio.CancelledError


def _publish_after(
    previous: asyncio.Task[bool] | None,
    conn: Connection,
    bus: Bus,
    written: direct_publish.Written,
    *,
    schema: str,
) -> asyncio.Task[bool]:
    """A task publishing `written` once `previous` is done (marking on `conn`)."""

    async def run() -> bool:
        whole = True
        if previous is not None:
            try:
                whole = await previous
            except Exception as error:  # noqa: BLE001 - its rows wait for their lease to end
                log.warning("timers.publish_failed", error=repr(error))
                whole = False
        if not whole and await direct_publish.older_waiting(conn, written):
            # What the previous batch did not send goes first, through the relay.
            await direct_publish.release(conn, written, schema=schema)
            return False
        return await direct_publish.publish(conn, bus, written, schema=schema)

    return asyncio.create_task(run(), name="timers-publish")


async def decide_all(
    conn: Connection, claimed: Sequence[DueTimer], now: datetime
) -> list[tuple[Timer, Decision]]:
    """What each claimed timer does. A computer whose TimerPlan is not kept for its current
    plan (the plan changed without it) has it made from the plan now, and kept."""
    missing = sorted({d.timer.computer_id for d in claimed if d.plan is None and d.known})
    made: dict[str, TimerPlan] = {}
    if missing:
        found = await store.timers.plans_of(conn, missing)
        made = {computer_id: timer_plan(plan) for computer_id, (plan, _) in found.items()}
        await store.timers.keep_plans(
            conn,
            [
                (computer_id, digest, made[computer_id].model_dump_json())
                for computer_id, (_, digest) in found.items()
                if digest is not None
            ],
        )
    decisions = []
    for due in claimed:
        plan = due.plan or made.get(due.timer.computer_id)
        if plan is None:  # never planned (or gone): the timer is dropped
            decision = Decision()
        else:
            decision = fire(
                due.timer.kind,
                due.timer.computer_id,
                plan,
                now,
                restart=due.restart,
                user_logged_on=due.user_logged_on,
            )
        decisions.append((due.timer, decision))
    return decisions


async def apply(
    conn: Connection,
    decisions: Sequence[tuple[Timer, Decision]],
    now: datetime,
    *,
    source: str,
    lease: bool = True,
) -> direct_publish.Written:
    """Write a batch of decisions in a handful of statements; returns the outbox rows written
    (leased for this task to publish once committed, when `lease`)."""
    marks: dict[str, Marks] = {}
    for timer, decision in decisions:
        if decision.last_window_at or decision.deadline_fired:
            earlier = marks.get(timer.computer_id)
            marks[timer.computer_id] = Marks(
                timer.computer_id,
                decision.last_window_at or (earlier.last_window_at if earlier else None),
                decision.deadline_fired or (earlier.deadline_fired_through if earlier else None),
            )
    await store.timers.fired(
        conn,
        [TimerChange(t.computer_id, t.kind, d.next_due) for t, d in decisions],
        list(marks.values()),
    )
    sent = [(t.computer_id, u) for t, d in decisions for u in d.immediate_sent]
    if sent:
        await store.progress.mark_immediate_sent(conn, sent, now)
    for timer, decision in decisions:
        if decision.restart is not None:
            await store.computers.set_restart(conn, timer.computer_id, decision.restart)
    events: list[direct_publish.Event] = []
    for timer, d in decisions:
        subject = timer.computer_id
        if d.install:
            events.append((INSTALL, d.install, subject))
        if d.prompt:
            events.append((RESTART_PROMPT, d.prompt, subject))
        if d.restart_now:
            events.append((RESTART, d.restart_now, subject))
        if d.agent_update:
            events.append((AGENT_UPDATE, d.agent_update, subject))
    return await direct_publish.write(conn, events, source=source, now=now, lease=lease)


def observe(claimed: Sequence[DueTimer], now: datetime) -> None:
    """The fired counter and the lag histogram, once per kind of the batch."""
    lags: dict[str, list[float]] = defaultdict(list)
    for due in claimed:
        lags[due.timer.kind].append(max((now - due.timer.due_at).total_seconds(), 0.0))
    for kind, seconds in lags.items():
        metrics.TIMERS_FIRED.labels(kind).inc(len(seconds))
        observe_many(metrics.TIMER_LAG.labels(kind), seconds)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for each of `values`, with one update per bucket touched.

    prometheus_client has no bulk observe: this fills the same buckets and sum that many
    `observe` calls would (a value goes to the first bucket whose bound it does not exceed).
    """
    bounds = histogram._upper_bounds
    counts: dict[int, int] = defaultdict(int)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
    for index, count in counts.items():
        histogram._buckets[index].inc(count)
    histogram._sum.inc(sum(values))
