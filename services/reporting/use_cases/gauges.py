"""The Prometheus gauges of compliance, sampled every LOCKGATE_METRICS_SAMPLE_SECONDS."""

from __future__ import annotations

from datetime import datetime

from libs.db.pool import Connection
from libs.observability import metrics
from libs.service import TaskContext
from services.reporting import store
from services.reporting.domain.counts import (
    COUNTED,
    NO_STATUS,
    NOT_REPORTING,
    gauged_states,
    state_totals,
    sum_counts,
)
from services.reporting.domain.fleet import silent_since
from services.reporting.domain.gauges import past_deadline


async def sample_gauges(task: TaskContext) -> None:
    """Per classification and severity, per group (bounded depth), per approved update
    (bounded count)."""
    now = task.clock.now()
    since = silent_since(now, task.settings.not_reporting_days)
    async with task.pool.acquire() as conn:
        metrics.COMPUTERS_MANAGED.set(await store.computers.count(conn))
        metrics.COMPUTERS_NOT_REPORTING.set(await store.computers.count_silent(conn, since))
        metrics.COMPLIANCE_COMPUTERS.clear()
        for row in await store.aggregates.by_classification(conn):
            metrics.COMPLIANCE_COMPUTERS.labels(row.classification, row.severity, row.state).set(
                row.n
            )
        metrics.GROUP_COMPUTERS.clear()
        for group_id, name in await store.groups.to_depth(conn, task.settings.report_group_depth):
            members = await store.groups.members(conn, group_id)
            totals = state_totals(await store.states.classify(conn, members, since))
            for state in (*COUNTED, NO_STATUS, NOT_REPORTING):
                metrics.GROUP_COMPUTERS.labels(name, state).set(totals.get(state, 0))
        await _update_gauges(conn, task.settings.report_update_limit, now, since)


async def _update_gauges(conn: Connection, limit: int, now: datetime, since: datetime) -> None:
    """Per approved update (bounded): computers per state, past their deadline, and its
    earliest deadline; and the updates waiting for an approval."""
    active = await store.approvals.approved(conn, limit)
    found = {
        c.update_id: c
        for c in await store.aggregates.compliance(conn, [u.update_id for u in active], since)
    }
    metrics.FLEET_UPDATE_STATES.clear()
    for state, n in gauged_states(sum_counts([c.counts for c in found.values()])).items():
        metrics.FLEET_UPDATE_STATES.labels(state).set(n)
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
