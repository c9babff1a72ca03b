"""Durable timers: claimed with FOR UPDATE SKIP LOCKED, fired once, by any replica.

A timer's effect (its instruction in the outbox, its next due time) commits in the
transaction that claimed it, so a crash before commit leaves it due, and two replicas
never fire the same one: the second skips the locked row, then sees its new due time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import structlog

from libs.contracts.agents import (
    INSTALL,
    RESTART,
    RESTART_PROMPT,
    ComputerPlan,
    InstallInstruction,
    RestartInstruction,
    RestartPrompt,
)
from libs.db.outbox import Outbox
from libs.db.pool import Connection
from libs.observability import metrics
from libs.service import TaskContext
from services.scheduler import store
from services.scheduler.domain import restarts
from services.scheduler.domain.plans import Progress, due_items
from services.scheduler.domain.windows import next_window

log = structlog.get_logger(__name__)

KINDS = ("window", "deadline", "immediate", "catch_up", "restart")


async def fire_due_timers(task: TaskContext) -> int:
    """Fire every due timer, a batch per transaction; returns how many fired."""
    fired = 0
    while True:
        now = task.clock.now()
        async with task.pool.acquire() as conn, conn.transaction():
            claimed = await store.claim_due_timers(conn, now, task.settings.timer_batch_size)
            if not claimed:
                return fired
            outbox = task.outbox(conn)
            for computer_id, kind, due_at in claimed:
                await fire(conn, outbox, computer_id, kind, now)
                metrics.TIMERS_FIRED.labels(kind).inc()
                metrics.TIMER_LAG.labels(kind).observe(max((now - due_at).total_seconds(), 0.0))
        fired += len(claimed)


async def fire(
    conn: Connection, outbox: Outbox, computer_id: str, kind: str, now: datetime
) -> None:
    """One timer: publish its instruction and set (or drop) its next due time."""
    raw = await store.stored_plan(conn, computer_id)
    computers = await store.computers(conn, [computer_id])
    if raw is None or computer_id not in computers:
        await store.set_timer(conn, computer_id, kind, None)
        return
    plan = ComputerPlan.model_validate_json(raw)
    computer = computers[computer_id]
    if kind == "restart":
        await _fire_restart(conn, outbox, plan, computer, now)
        return
    if kind == "window":
        items = due_items(plan, forced_only=False, now=now)
        await store.set_last_window(conn, computer_id, now)
        following = next_window(plan.settings, plan.timezone, now)
        await store.set_timer(conn, computer_id, kind, following if items else None)
        reason = "window"
    elif kind == "deadline":
        items = due_items(plan, forced_only=True, now=now)
        await store.set_deadline_fired(conn, computer_id, now)
        later = [
            i.deadline
            for i in plan.items
            if i.deadline is not None and i.deadline > now and i.install_at is not None
        ]
        await store.set_timer(conn, computer_id, kind, min(later, default=None))
        reason = "deadline"
    elif kind == "immediate":
        immediate = [i.update_id for i in plan.items if i.restart == "never"]
        items = due_items(plan, forced_only=False, now=now, only=immediate)
        await store.mark_immediate_sent(conn, computer_id, [i.update_id for i in items], now)
        await store.set_timer(conn, computer_id, kind, None)
        reason = "immediate"
    else:  # catch_up
        items = due_items(plan, forced_only=False, now=now)
        await store.set_timer(conn, computer_id, kind, None)
        reason = "catch_up"
    if not items:
        return
    await outbox.add(
        INSTALL,
        InstallInstruction(
            computer_id=computer_id,
            reason=reason,
            updates=items,
            prompt_user=plan.settings.install_mode == "prompt_user"
            and not all(i.forced for i in items),
            issued_at=now,
        ),
        subject=computer_id,
    )


async def _fire_restart(
    conn: Connection,
    outbox: Outbox,
    plan: ComputerPlan,
    computer: store.ComputerRow,
    now: datetime,
) -> None:
    state, instruction = restarts.on_due(
        computer.restart, plan.settings, now, user_logged_on=computer.user_logged_on
    )
    await store.set_restart(conn, computer.computer_id, state)
    await store.set_timer(conn, computer.computer_id, "restart", state.due_at)
    if isinstance(instruction, restarts.Prompt):
        await outbox.add(
            RESTART_PROMPT,
            RestartPrompt(
                computer_id=computer.computer_id,
                may_postpone=instruction.may_postpone,
                restart_at=instruction.restart_at,
                prompt=instruction.number,
                issued_at=now,
            ),
            subject=computer.computer_id,
        )
    elif isinstance(instruction, restarts.Restart):
        await outbox.add(
            RESTART,
            RestartInstruction(
                computer_id=computer.computer_id, reason=instruction.reason, issued_at=now
            ),
            subject=computer.computer_id,
        )


def catch_up_at(
    plan: ComputerPlan,
    progress: Mapping[str, Progress],
    last_window_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """After a start or a restart: missed installs run after the missed-install delay.

    Missed means pending and either past its deadline, or planned before a window that
    fired (while the computer was away, or before it restarted).
    """
    missed = [
        item
        for item in plan.items
        if item.install_at is not None
        and (
            (item.deadline is not None and item.deadline <= now)
            or (
                last_window_at is not None
                and (planned := progress.get(item.update_id)) is not None
                and planned.planned_at is not None
                and planned.planned_at <= last_window_at
            )
        )
    ]
    if not missed:
        return None
    return now + timedelta(minutes=plan.settings.missed_install_delay_minutes)
