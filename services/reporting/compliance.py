"""Compliance: agent reports in (in batches), counts per update, group and computer out."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import structlog

from libs.contracts import agents as ag
from libs.contracts import reporting as r
from libs.contracts.envelope import Envelope
from libs.db.pool import Connection
from libs.domain import agent_reports
from libs.observability import metrics
from libs.read_copies import groups as group_copy
from libs.service import HandlerContext, NotFound, TaskContext
from services.reporting import compliance_store as store

log = structlog.get_logger(__name__)

PUBLISH_BATCH = 500


async def ingest(ctx: HandlerContext, reports: list[tuple[Envelope, ag.AgentStatus]]) -> None:
    """A batch of status reports: states move forward only, attempts are all kept."""
    observations: list[agent_reports.Observation] = []
    attempts: list[tuple[str, str, datetime, datetime, int, str, str]] = []
    ignored: Counter[str] = Counter()
    computers = sorted({status.computer_id for _, status in reports})
    update_ids = sorted(
        {d.update_id for _, s in reports for d in s.detections}
        | {i.update_id for _, s in reports for i in s.installs}
    )
    known = await store.known(ctx.conn, computers, update_ids)
    for _, status in reports:
        if status.computer_id not in known.computers:
            ignored["unknown_computer"] += 1
            continue
        for seen in agent_reports.read_report(status, known.return_codes):
            reason = _unusable(seen.update_id, known)
            if reason:
                ignored[reason] += 1
                continue
            observations.append(seen)
        attempts.extend(
            (
                status.computer_id,
                result.update_id,
                result.started_at,
                result.finished_at,
                result.return_code,
                agent_reports.outcome_of(result.return_code, known.return_codes[result.update_id]),
                result.operation,
            )
            for result in status.installs
            if _unusable(result.update_id, known) is None
        )
    newest = agent_reports.latest(observations)
    held = await store.lock_rows(ctx.conn, list(newest))
    changes = agent_reports.changes(newest, held)
    if len(changes) < len(newest):
        ignored["older_than_stored"] += len(newest) - len(changes)
    await store.save_states(ctx.conn, changes)
    await store.save_attempts(ctx.conn, attempts)
    for reason, count in ignored.items():
        metrics.REPORTS_IGNORED.labels(reason).inc(count)
    if ignored:
        log.info("reports.ignored", **dict(ignored))


def _unusable(update_id: str, known: store.Known) -> str | None:
    if update_id not in known.return_codes:
        return "unknown_update"
    if update_id in known.declined:
        return "declined_update"
    return None


async def ingest_one(ctx: HandlerContext, status: ag.AgentStatus) -> None:
    """The same, for one report (a batch that failed is retried message by message)."""
    await ingest(ctx, [(ctx.envelope, status)])


async def record_restart(ctx: HandlerContext, event: ag.AgentRestart) -> None:
    if event.event == "restarted":
        await store.complete_restart(ctx.conn, event.computer_id, event.at)


async def summary(ctx: HandlerContext, query: r.Summary) -> r.SummaryReport:
    """Per-update counts over the whole fleet, most needed first; and the notification."""
    ids, total = await store.reported_updates(ctx.conn, query.page)
    found = {c.update_id: c for c in await store.compliance(ctx.conn, ids)}
    return r.SummaryReport(
        new_updates_to_approve=await store.new_updates_to_approve(ctx.conn),
        computers=await store.computer_count(ctx.conn),
        updates=[found[i] for i in ids if i in found],
        total=total,
    )


async def update_report(ctx: HandlerContext, query: r.UpdateReportQuery) -> r.UpdateReport:
    update_id = await store.find_update(ctx.conn, query.update)
    if update_id is None:
        raise NotFound(f"update: {query.update!r} is unknown to reporting", field="update")
    (found,) = await store.compliance(ctx.conn, [update_id])
    ok, failed, views = await store.attempts(ctx.conn, update_id, query.page)
    return r.UpdateReport(update=found, successes=ok, failures=failed, failed_attempts=views)


def _sum(counts: list[r.StateCounts]) -> r.StateCounts:
    fields = r.StateCounts.model_fields
    return r.StateCounts(**{f: sum(getattr(c, f) for c in counts) for f in fields})


async def group_report(ctx: HandlerContext, query: r.GroupReportQuery) -> r.GroupReport:
    """Counts among the group's computers and its subgroups', per update."""
    group = await group_copy.find_group(ctx.conn, query.group)
    if group is None:
        raise NotFound(f"group: {query.group!r} is unknown to reporting", field="group")
    computers = await store.group_computers(ctx.conn, group[0])
    per_update = await store.states_of(ctx.conn, computers)
    ids = sorted(
        per_update,
        key=lambda u: -(per_update[u].get("needed", 0) + per_update[u].get("failed", 0)),
    )
    page = ids[query.page.offset : query.page.offset + query.page.limit]
    described = {c.update_id: c for c in await store.compliance(ctx.conn, page)}
    updates = [
        described[u].model_copy(update={"counts": store.counts_of(per_update[u], 0)})
        for u in page
        if u in described
    ]
    return r.GroupReport(
        group_id=group[0],
        name=group[1],
        computers=len(computers),
        totals=_sum([store.counts_of(per_update[u], 0) for u in ids]),
        updates=updates,
    )


async def computer_report(ctx: HandlerContext, query: r.ComputerReportQuery) -> r.ComputerReport:
    rows = await store.computer_updates(ctx.conn, query.computer)
    if (
        not rows
        and query.computer not in (await store.known(ctx.conn, [query.computer], [])).computers
    ):
        raise NotFound(f"computer: {query.computer!r} is unknown to reporting", field="computer")
    items = [
        r.ComputerUpdate(
            update_id=row["update_id"],
            kb=row["kb"],
            title=row["title"],
            state=row["state"],
            reported_at=row["reported_at"],
            last_return_code=row["last_return_code"],
        )
        for row in rows
    ]
    by_state: Counter[str] = Counter(str(i.state) for i in items)
    return r.ComputerReport(
        computer_id=query.computer,
        totals=store.counts_of(dict(by_state), 0),
        updates=items[query.page.offset : query.page.offset + query.page.limit],
    )


async def publish_changes(task: TaskContext) -> int:
    """Throttled: one `reporting.compliance.changed.v1` per changed update per interval."""
    published = 0
    while True:
        async with task.pool.acquire() as conn, conn.transaction():
            dirty = await store.take_dirty(conn, PUBLISH_BATCH)
            if not dirty:
                break
            found = await store.compliance(conn, dirty)
            await task.outbox(conn).add_many(
                r.COMPLIANCE_CHANGED,
                [(r.ComplianceChanged(update=c), c.update_id) for c in found],
            )
            published += len(found)
    return published


async def sample_gauges(task: TaskContext) -> None:
    """The Prometheus gauges, every LOCKGATE_METRICS_SAMPLE_SECONDS: per classification and
    severity, per group (bounded depth), per approved update (bounded count)."""
    async with task.pool.acquire() as conn:
        metrics.COMPLIANCE_COMPUTERS.clear()
        for row in await store.gauge_rows(conn):
            metrics.COMPLIANCE_COMPUTERS.labels(
                row["classification"], row["severity"], row["state"]
            ).set(row["n"])
        metrics.GROUP_COMPUTERS.clear()
        for group_id, name in await store.groups_to_depth(conn, task.settings.report_group_depth):
            per_update = await store.states_of(conn, await store.group_computers(conn, group_id))
            totals: Counter[str] = Counter()
            for states_here in per_update.values():
                totals.update(states_here)
            for state in store.COUNTED:
                metrics.GROUP_COMPUTERS.labels(name, state).set(totals.get(state, 0))
        await _update_gauges(conn, task.settings.report_update_limit, task.clock.now())


async def _update_gauges(conn: Connection, limit: int, now: datetime) -> None:
    """Per approved update (bounded): computers per state, past their deadline, and its
    earliest deadline; and the updates waiting for an approval."""
    active = await store.gauged_updates(conn, limit)
    ids = [u["update_id"] for u in active]
    found = {c.update_id: c for c in await store.compliance(conn, ids)}
    past = [u["update_id"] for u in active if u["deadline"] and u["deadline"] <= now]
    late = await store.overdue(conn, past, now)
    metrics.UPDATE_COMPUTERS.clear()
    metrics.UPDATE_DEADLINE.clear()
    metrics.UPDATE_OVERDUE.clear()
    for row in active:
        compliance = found.get(row["update_id"])
        if compliance is None:
            continue
        labels = (row["name"], row["classification"], row["severity"])
        for state, n in compliance.counts.model_dump().items():
            if state != "applies_to":
                metrics.UPDATE_COMPUTERS.labels(*labels, state).set(n)
        metrics.UPDATE_OVERDUE.labels(*labels).set(late.get(row["update_id"], 0))
        if row["deadline"] is not None:
            metrics.UPDATE_DEADLINE.labels(row["name"]).set(row["deadline"].timestamp())
    metrics.UPDATES_AWAITING_APPROVAL.clear()
    for row in await store.awaiting_approval(conn):
        metrics.UPDATES_AWAITING_APPROVAL.labels(row["classification"], row["severity"]).set(
            row["n"]
        )
