"""The compliance history: the overview's headline counts kept every
LOCKGATE_COMPLIANCE_SAMPLE_SECONDS for LOCKGATE_COMPLIANCE_HISTORY_DAYS, and read back."""

from __future__ import annotations

import structlog

from libs.contracts import reporting as r
from libs.service import HandlerContext, TaskContext
from services.reporting import store
from services.reporting.domain.fleet import silent_since
from services.reporting.domain.history import interval_start, kept_from

log = structlog.get_logger(__name__)


async def sample_compliance(task: TaskContext) -> bool:
    """One point for the interval now falls in, unless another replica is sampling or has
    kept it; older points than the history keeps go. The totals are the overview's, read from
    the counters (store.aggregates.fleet_totals), never by a pass over every computer's
    reports. Whether it kept one."""
    now = task.clock.now()
    at = interval_start(now, task.settings.compliance_sample_seconds)
    async with task.pool.acquire() as conn, conn.transaction():
        if not await store.history.claim(conn, at):
            return False
        since = silent_since(now, task.settings.not_reporting_days)
        point = r.CompliancePoint(
            at=at,
            computers=await store.computers.count(conn),
            not_reporting=await store.computers.count_silent(conn, since),
            counts=await store.aggregates.fleet_totals(conn, since),
        )
        kept = await store.history.save(conn, point)
        pruned = await store.history.prune(
            conn, kept_from(now, task.settings.compliance_history_days)
        )
    if pruned:
        log.info("compliance_history.pruned", points=pruned)
    return kept


async def compliance_history(
    ctx: HandlerContext, query: r.ComplianceHistory
) -> r.ComplianceHistoryReport:
    """The first points after `since`, or the newest, oldest first."""
    return r.ComplianceHistoryReport(
        points=await store.history.points(ctx.conn, query.since, query.limit)
    )
