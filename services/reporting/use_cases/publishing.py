"""Changed counts out: `reporting.compliance.changed.v1`, throttled."""

from __future__ import annotations

from libs.contracts import reporting as r
from libs.service import TaskContext
from services.reporting import store
from services.reporting.domain.fleet import silent_since

PUBLISH_BATCH = 500


async def publish_changes(task: TaskContext) -> int:
    """Throttled: one `reporting.compliance.changed.v1` per changed update per interval."""
    published = 0
    while True:
        async with task.pool.acquire() as conn, conn.transaction():
            changed = await store.aggregates.take_changed(conn, PUBLISH_BATCH)
            if not changed:
                break
            since = silent_since(task.clock.now(), task.settings.not_reporting_days)
            found = await store.aggregates.compliance(conn, changed, since)
            await task.outbox(conn).add_many(
                r.COMPLIANCE_CHANGED,
                [(r.ComplianceChanged(update=c), c.update_id) for c in found],
            )
            published += len(found)
    return published
