"""The Prometheus gauges of compliance, sampled every LOCKGATE_METRICS_SAMPLE_SECONDS."""

from __future__ import annotations

from datetime import datetime

from libs.db.pool import Connection
from libs.observability import metrics
from libs.service import TaskContext
from services.reporting import store
from services.reporting.domain.counts import COUNTED, gauged_states, state_totals
from services.reporting.domain.gauges import past_deadline


async def sample_gauges(task: TaskContext) -> None:
    """Per classification and severity, per group (bounded depth), per approved update
    (bounded count)."""
    async with task.pool.acquire() as conn:
        metrics.COMPLIANCE_COMPUTERS.clear()
        for row in await store.aggregates.by_classification(conn):
            metrics.COMPLIANCE_COMPUTERS.labels(row.classification, row.severity, row.state).set(
                row.n
            )
        metrics.GROUP_COMPUTERS.clear()
        for group_id, name in await store.groups.to_depth(conn, task.settings.report_group_depth):
            members = await store.groups.members(conn, group_id)
            totals = state_totals(await store.states.of_computers(conn, members))
            for state in COUNTED:
                metrics.GROUP_COMPUTERS.labels(name, state).set(totals.get(state, 0))
        await _update_gauges(conn, task.settings.report_update_limit, task.clock.now())


async def _update_gauges(conn: Connection, limit: int, now: datetime) -> None:
    """Per approved update (bounded): computers per state, past their deadline, and its
    earliest deadline; and the updates waiting for an approval."""
    active = await store.approvals.approved(conn, limit)
    found = {
        c.update_id: c
        for c in await store.aggregates.compliance(conn, [u.update_id for u in active])
    }
    late = await store.states.overdue(conn, past_deadline(active, now), now)
    metrics.UPDATE_COMPUTERS.clear()
    metrics.UPDATE_DEADLINE.clear()
    metrics.UPDATE_OVERDUE.clear()
    for update in active:
        compliance = found.get(update.update_id)
        if compliance is None:
            continue
        labels = (update.name, update.classification, update.severity)
        for state, n in gauged_states(compliance.counts).items():
            metrics.UPDATE_COMPUTERS.labels(*labels, state).set(n)
        metrics.UPDATE_OVERDUE.labels(*labels).set(late.get(update.update_id, 0))
        if update.deadline is not None:
            metrics.UPDATE_DEADLINE.labels(update.name).set(update.deadline.timestamp())
    metrics.UPDATES_AWAITING_APPROVAL.clear()
    for row in await store.approvals.awaiting(conn):
        metrics.UPDATES_AWAITING_APPROVAL.labels(row.classification, row.severity).set(row.n)
