"""Durable timers: claimed with FOR UPDATE SKIP LOCKED, fired once, by any replica.

A timer's effect (its instruction in the outbox, its next due time) commits in the
transaction that claimed it, so a crash before commit leaves it due, and two replicas
never fire the same one: the second skips the locked row, then sees its new due time.
"""

from __future__ import annotations

from datetime import datetime

from libs.contracts.agents import AGENT_UPDATE, INSTALL, RESTART, RESTART_PROMPT
from libs.db.outbox import Outbox
from libs.db.pool import Connection
from libs.observability import metrics
from libs.service import TaskContext
from services.scheduler import store
from services.scheduler.domain.timers import KINDS, Decision, Timer, TimerChange, decide


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
    """Fire every due timer, a batch per transaction; returns how many fired."""
    fired = 0
    while True:
        now = task.clock.now()
        async with task.pool.acquire() as conn, conn.transaction():
            claimed = await store.timers.claim_due(conn, now, task.settings.timer_batch_size)
            if not claimed:
                return fired
            found = await store.plans.load(conn, sorted({t.computer_id for t in claimed}))
            decisions = []
            for timer in claimed:
                planned = found.get(timer.computer_id)
                if planned is None:  # never planned (or gone): the timer is dropped
                    decision = Decision()
                else:
                    plan, computer = planned
                    decision = decide(timer.kind, plan, computer, now)
                decisions.append((timer, decision))
                metrics.TIMERS_FIRED.labels(timer.kind).inc()
                metrics.TIMER_LAG.labels(timer.kind).observe(
                    max((now - timer.due_at).total_seconds(), 0.0)
                )
            await apply(conn, task.outbox(conn), decisions, now)
        fired += len(claimed)


async def apply(
    conn: Connection, outbox: Outbox, decisions: list[tuple[Timer, Decision]], now: datetime
) -> None:
    """Write a batch of decisions in a handful of statements."""
    await store.timers.schedule(
        conn, [TimerChange(t.computer_id, t.kind, d.next_due) for t, d in decisions]
    )
    await store.computers.set_marks(
        conn,
        last_window=[t.computer_id for t, d in decisions if d.last_window_at],
        deadline_fired=[t.computer_id for t, d in decisions if d.deadline_fired],
        at=now,
    )
    sent = [(t.computer_id, u) for t, d in decisions for u in d.immediate_sent]
    if sent:
        await store.progress.mark_immediate_sent(conn, sent, now)
    for timer, decision in decisions:
        if decision.restart is not None:
            await store.computers.set_restart(conn, timer.computer_id, decision.restart)
    await outbox.add_many(INSTALL, [(d.install, t.computer_id) for t, d in decisions if d.install])
    await outbox.add_many(
        RESTART_PROMPT, [(d.prompt, t.computer_id) for t, d in decisions if d.prompt]
    )
    await outbox.add_many(
        RESTART, [(d.restart_now, t.computer_id) for t, d in decisions if d.restart_now]
    )
    await outbox.add_many(
        AGENT_UPDATE, [(d.agent_update, t.computer_id) for t, d in decisions if d.agent_update]
    )
