"""The content sweeper (issue 17): the content store and the rows naming its files agree.

Periodic, and at start: moves into place a staged file whose rows committed before a crash
stopped the move, removes temporary files and content no row names once older than
LOCKGATE_CONTENT_GRACE_SECONDS, and reports (log and lockgate_catalog_content_missing) rows
whose file is gone. Each removal or move is decided again under the sha256's lock, so a
commit naming the same bytes at that moment is never undone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from libs.db.pool import Connection
from libs.observability import metrics
from libs.service import TaskContext
from services.catalog import store
from services.catalog.domain.content import plan_sweep, staged_sha256
from services.catalog.store.content import LocalContentStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did (None: another replica was sweeping)."""

    settled: list[str]
    """sha256 moved into place from a staged file."""
    removed_temporary: list[str]
    """Names removed from `tmp/`."""
    removed_orphans: list[str]
    """sha256 of content in place that no row named."""
    missing: list[str]
    """sha256 rows name whose file is nowhere."""


async def sweep(task: TaskContext) -> SweepReport | None:
    """One sweep; only one replica sweeps at a time."""
    content_store = store.content.for_settings(task.settings)
    async with task.pool.acquire() as conn:
        if not await store.content.try_sweep_lock(conn):
            return None
        try:
            report = await _sweep(conn, content_store, task.settings.content_grace_seconds)
        finally:
            await store.content.sweep_unlock(conn)
    _report(report)
    return report


async def _sweep(conn: Connection, content: LocalContentStore, grace: float) -> SweepReport:
    # The rows first, then the disk: a file that appears after the rows were read is young,
    # and young files no row names are left alone.
    referenced = await store.content.named(conn)
    temporary = await asyncio.to_thread(content.temporary_files)
    in_place = await asyncio.to_thread(content.content_files)
    plan = plan_sweep(temporary, in_place, referenced, grace)
    settled: list[str] = []
    removed_temporary: list[str] = []
    for name, sha256 in plan.settle:
        async with conn.transaction():
            await store.content.lock(conn, [sha256])
            if await store.content.is_named(conn, sha256):
                if await asyncio.to_thread(content.settle, content.scratch / name, sha256):
                    settled.append(sha256)
                continue
        log.info("content.sweep.unnamed_meanwhile", sha256=sha256, staged=name)
    for name in plan.remove_temporary:
        carried = staged_sha256(name)
        async with conn.transaction():
            if carried is not None:  # staged: named meanwhile means settle, not remove
                await store.content.lock(conn, [carried])
                if await store.content.is_named(conn, carried):
                    await asyncio.to_thread(content.settle, content.scratch / name, carried)
                    settled.append(carried)
                    continue
            await asyncio.to_thread(content.remove_temporary, name)
            removed_temporary.append(name)
    removed_orphans: list[str] = []
    for sha256 in plan.remove_orphans:
        async with conn.transaction():
            await store.content.lock(conn, [sha256])
            if not await store.content.is_named(conn, sha256):
                await asyncio.to_thread(content.delete, sha256)
                removed_orphans.append(sha256)
    missing = [
        sha256
        for sha256 in plan.missing
        if await store.content.is_named(conn, sha256)
        and not await asyncio.to_thread(content.path(sha256).exists)
    ]
    if missing:
        users = await store.content.users(conn, missing)
        for sha256 in missing:
            log.error(
                "content.missing",
                sha256=sha256,
                path=str(content.path(sha256)),
                update_ids=users.get(sha256, []),
            )
    return SweepReport(settled, removed_temporary, removed_orphans, missing)


def _report(report: SweepReport) -> None:
    metrics.CATALOG_CONTENT_MISSING.set(len(report.missing))
    for kind, done in (
        ("settled", report.settled),
        ("temporary", report.removed_temporary),
        ("orphan", report.removed_orphans),
    ):
        if done:
            metrics.CATALOG_CONTENT_SWEPT.labels(kind).inc(len(done))
    if not (report.settled or report.removed_temporary or report.removed_orphans):
        return
    log.info(
        "content.swept",
        settled=len(report.settled),
        removed_temporary=len(report.removed_temporary),
        removed_orphans=len(report.removed_orphans),
        missing=len(report.missing),
    )
