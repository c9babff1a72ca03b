"""Agent reports in, in batches: states move forward only, counters move with them, attempts
are all kept (docs/product.md section 6). A batch is four statements: what it refers to,
the states (one upsert), everything else it moves, and the inbox claims before them."""

from __future__ import annotations

from collections import Counter

import structlog

from libs.contracts import agents as ag
from libs.contracts.envelope import Envelope
from libs.contracts.scheduler import AgentCheckin
from libs.domain import agent_reports
from libs.observability import metrics
from libs.service import HandlerContext
from services.reporting import store
from services.reporting.domain import batches, counts

log = structlog.get_logger(__name__)


async def ingest(ctx: HandlerContext, reports: list[tuple[Envelope, ag.AgentStatus]]) -> None:
    """A batch of status reports: states move forward only, attempts are all kept."""
    statuses = [status for _, status in reports]
    updates, computers = await store.updates.known(
        ctx.conn, batches.updates_named(statuses), batches.computers_named(statuses)
    )
    batch = batches.read_batch(statuses, batches.Known.of(computers, updates))
    newest = agent_reports.latest(batch.observations)
    changes = await store.states.upsert(ctx.conn, newest)
    ignored = Counter(batch.ignored)
    if len(changes) < len(newest):
        ignored["older_than_stored"] += len(newest) - len(changes)
    # Every report is a contact, even one whose states changed nothing.
    await store.reports.record(
        ctx.conn,
        counters=counts.counter_deltas(changes),
        computer_ids=sorted(computers),
        computer_moves=counts.computer_deltas(changes),
        attempts=batch.attempts,
        now=ctx.now,
    )
    for reason, count in ignored.items():
        metrics.REPORTS_IGNORED.labels(reason).inc(count)
    if ignored:
        log.info("reports.ignored", **dict(ignored))


async def ingest_one(ctx: HandlerContext, status: ag.AgentStatus) -> None:
    """The same, for one report (a batch that failed is retried message by message)."""
    await ingest(ctx, [(ctx.envelope, status)])


async def record_restart(ctx: HandlerContext, event: ag.AgentRestart) -> None:
    """A completed restart turns the computer's pending installs into installed ones."""
    if event.event == "restarted":
        completed = await store.states.complete_restart(ctx.conn, event.computer_id, event.at)
        await store.aggregates.apply_deltas(ctx.conn, counts.restart_deltas(completed))
        pending, done = agent_reports.RESTART_COMPLETES
        await store.computers.move_counters(
            ctx.conn,
            [
                counts.ComputerMove(event.computer_id, pending, -len(completed)),
                counts.ComputerMove(event.computer_id, done, len(completed)),
            ]
            if completed
            else [],
        )


async def check_in(ctx: HandlerContext, checkins: list[tuple[Envelope, AgentCheckin]]) -> None:
    """A batch of check-ins: each computer's inventory and last contact, one statement."""
    await store.computers.check_in(
        ctx.conn, batches.latest_checkins(c for _, c in checkins), ctx.now
    )


async def check_in_one(ctx: HandlerContext, checkin: AgentCheckin) -> None:
    """The same, for one check-in."""
    await check_in(ctx, [(ctx.envelope, checkin)])
