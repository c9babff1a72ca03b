"""What the web console's overview and update pages read from reporting, with the real
catalog, approval and scheduler, RabbitMQ and PostgreSQL: the compliance history (one point
per interval, oldest first, one replica at a time), computers past a deadline, the update
list's failed and search filters, and the computers of one update."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from libs.bus import RpcError
from libs.contracts import approval as a
from libs.contracts import reporting as r
from libs.contracts.api import PREFIX
from libs.db.pool import create_pool
from libs.service import TaskContext
from libs.service.clock import ManualClock
from libs.service.handlers import Instance
from libs.settings import Settings
from services.reporting.domain.counts import sum_counts
from services.reporting.domain.history import interval_start
from services.reporting.use_cases.history import sample_compliance
from tests.integration.test_reporting import (  # noqa: F401 (the fixture)
    T0,
    Reports,
    approve,
    reports,
    setup,
)
from tests.support.infra import Infra
from tests.support.messages import eventually

pytestmark = pytest.mark.integration

ASAP = a.DeadlineChoice(kind="as_soon_as_possible")


@pytest.fixture(autouse=True)
def fast_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """A point every second (the least the setting takes) in the services the `reports`
    fixture starts (its settings read the rest from LOCKGATE_* variables)."""
    monkeypatch.setenv("LOCKGATE_COMPLIANCE_SAMPLE_SECONDS", "1")


async def _get(reports: Reports, path: str, **params: object) -> Any:  # noqa: F811
    """GET through the console's HTTP API, as the web console does."""
    async with httpx.AsyncClient(
        base_url=reports.cli["LOCKGATE_URL"] + PREFIX,
        headers={"Authorization": f"Bearer {reports.cli['LOCKGATE_TOKEN']}"},
    ) as http:
        answer = await http.get(path, params={k: str(v) for k, v in params.items()})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _summary(reports: Reports, **query: object) -> r.SummaryReport:  # noqa: F811
    return await reports.rpc.call(r.SUMMARY, r.Summary.model_validate(query))


async def _silence(reports: Reports, computer_id: str) -> None:  # noqa: F811
    """The computer was last heard from a month ago (not reporting)."""
    await reports.db.execute(
        "UPDATE reporting.computers SET last_contact_at = $1 WHERE computer_id = $2",
        datetime.now(UTC) - timedelta(days=30),
        computer_id,
    )


async def test_the_history_keeps_a_point_per_interval_oldest_first(
    reports: Reports,  # noqa: F811
    infra: Infra,
    request: pytest.FixtureRequest,
) -> None:
    computers = ["pc-h1", "pc-h2", "pc-h3"]
    updates = await setup(reports, computers)
    u = updates[0].update_id
    await approve(reports, u)
    await reports.status("pc-h1", T0, detections={u: "installed"})
    await reports.status("pc-h2", T0, installs={u: 1603})
    await reports.settled()
    await _silence(reports, "pc-h3")
    outdated = datetime.now(UTC) - timedelta(days=91)
    await reports.db.execute(
        "INSERT INTO reporting.compliance_history (at, computers, not_reporting, counts)"
        " VALUES ($1, 0, 0, $2::jsonb)",
        outdated,
        r.StateCounts(
            applies_to=0,
            installed=0,
            needed=0,
            failed=0,
            installed_pending_restart=0,
            not_applicable=0,
            no_status=0,
        ).model_dump_json(),
    )
    summary = await _summary(reports)
    assert summary.totals is not None
    assert (summary.totals.installed, summary.totals.failed) == (1, 1)
    assert summary.totals.not_reporting == 1

    async def caught_up() -> bool:
        history = await reports.rpc.call(r.COMPLIANCE_HISTORY, r.ComplianceHistory())
        latest = [p for p in history.points if p.counts == summary.totals]
        return len(latest) >= 2

    await eventually(caught_up, timeout=30, what="two points with the counts of now")
    points = (await reports.rpc.call(r.COMPLIANCE_HISTORY, r.ComplianceHistory())).points
    assert all(p.at > outdated for p in points), "older than the history days: deleted"
    ats = [p.at for p in points]
    assert ats == sorted(ats), "oldest first"
    assert len(set(ats)) == len(ats), "one per interval"
    assert all(at.microsecond == 0 for at in ats), "an interval's start (1 s from the epoch)"
    assert (points[-1].computers, points[-1].not_reporting) == (3, 1)
    assert points[-1].counts == summary.totals, "the overview's totals"

    after = await reports.rpc.call(r.COMPLIANCE_HISTORY, r.ComplianceHistory(since=ats[0], limit=2))
    assert [p.at for p in after.points] == ats[1:3], "the first `limit` after `since`"
    newest = await reports.rpc.call(r.COMPLIANCE_HISTORY, r.ComplianceHistory(limit=2))
    assert len(newest.points) == 2
    assert newest.points[0].at < newest.points[1].at, "oldest first"
    assert newest.points[0].at >= ats[-2], "without `since`: the newest `limit`"
    shown = await _get(reports, "/reports/history", limit=1)
    (last,) = [r.CompliancePoint.model_validate(p) for p in shown["points"]]
    assert last.at >= ats[-1]
    assert last.counts == summary.totals

    # Replicas sampling at once keep one point for their interval: one of them takes it.
    url = f"{infra.database_url}_rep{abs(hash(request.node.name)) % 100_000}"
    pool = await create_pool(url, "reporting", max_size=5)
    try:
        instant = datetime.now(UTC) - timedelta(days=1, microseconds=1)
        settings = Settings(database_url=url, compliance_sample_seconds=60)
        replicas = [
            TaskContext(
                pool=pool,
                clock=ManualClock(instant),
                instance=Instance("reporting", f"replica-{i}", "test", instant),
                settings=settings,
            )
            for i in range(5)
        ]
        kept = await asyncio.gather(*(sample_compliance(task) for task in replicas))
        assert kept.count(True) == 1, kept
        assert await sample_compliance(replicas[0]) is False, "the interval is taken"
    finally:
        await pool.close()
    at = interval_start(instant, 60)
    rows = await reports.db.fetch(
        "SELECT computers, counts::text FROM reporting.compliance_history"
        " WHERE at >= $1 AND at < $2",
        at - timedelta(seconds=60),
        at + timedelta(seconds=120),
    )
    assert len(rows) == 1
    assert rows[0]["computers"] == 3
    assert r.StateCounts.model_validate_json(rows[0]["counts"]) == summary.totals


async def test_overview_counts_computers_past_a_deadline_and_filters_the_updates(
    reports: Reports,  # noqa: F811
) -> None:
    computers = ["pc-o1", "pc-o2", "pc-o3", "pc-o4"]
    updates = await setup(reports, computers)
    u, v = updates[0], updates[1]
    await reports.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[u.update_id],
            groups=[
                a.GroupChoice(group=a.ROOT_GROUP_NAME, action="required_install", deadline=ASAP)
            ],
        ),
    )
    await reports.status("pc-o1", T0, detections={u.update_id: "installed", v.update_id: "needed"})
    await reports.status("pc-o2", T0, installs={u.update_id: 1603})
    await reports.status("pc-o3", T0, detections={u.update_id: "needed"})
    await reports.settled()  # pc-o4 never reported: no status, behind too

    overview = await _summary(reports)
    assert overview.computers_past_deadline == 3
    late = await reports.rpc.call(r.LIST_COMPUTERS, r.ListComputers(past_deadline=True))
    assert [c.computer_id for c in late.computers] == ["pc-o2", "pc-o3", "pc-o4"]
    shown = await _get(reports, "/reports/overview")
    assert shown["computers_past_deadline"] == 3

    # The headline counts are the whole fleet's, whatever the page and filters.
    every = await _summary(reports, page={"limit": 1000})
    assert overview.totals == every.totals == sum_counts([x.counts for x in every.updates])
    one = await _summary(reports, page={"limit": 1})
    assert (len(one.updates), one.total, one.totals) == (1, 2, every.totals)

    failing = await _summary(reports, failed=True)
    assert ([x.update_id for x in failing.updates], failing.total) == ([u.update_id], 1)
    assert failing.totals == every.totals
    page = await _get(reports, "/reports/overview", failed="true")
    assert [x["update_id"] for x in page["updates"]] == [u.update_id]

    async def found(text: str) -> list[str]:
        return [x.update_id for x in (await _summary(reports, search=text)).updates]

    assert await found(f"kb{u.kb}") == [u.update_id], "KB number, any case"
    assert await found(str(v.kb)) == [v.update_id], "the number alone"
    fragment = u.title[len(u.title) // 3 : len(u.title) // 3 + 12].upper()
    assert u.update_id in await found(fragment), "part of the title, any case"
    assert await found("no such update 42%_") == []
    assert (await _get(reports, "/reports/overview", search=f"KB{v.kb}"))["total"] == 1

    # pc-o3 installs it: one behind fewer; pc-o2, the one failed computer, falls silent.
    await reports.status("pc-o3", T0 + timedelta(hours=1), installs={u.update_id: 0})
    await reports.settled()
    assert (await _summary(reports)).computers_past_deadline == 2
    await _silence(reports, "pc-o2")
    assert (await _summary(reports, failed=True)).updates == [], "silent: not reporting"
    assert (await _summary(reports)).computers_past_deadline == 2, "overdue, silent or not"


async def test_the_computers_of_an_update_by_state_a_page_at_a_time(
    reports: Reports,  # noqa: F811
) -> None:
    computers = [f"pc-c{i}" for i in range(1, 7)]
    updates = await setup(reports, computers)
    u = updates[0]
    await reports.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Lab"))
    await reports.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-c5", "pc-c6"], group="Lab")
    )
    await approve(reports, u.update_id, group="Lab")
    await reports.status("pc-c1", T0, detections={u.update_id: "installed"})
    await reports.status("pc-c2", T0, installs={u.update_id: 1603})
    await reports.status("pc-c3", T0, detections={u.update_id: "not_applicable"})
    await reports.status("pc-c5", T0, detections={u.update_id: "needed"})
    await reports.settled()  # pc-c4: neither reported nor targeted; pc-c6: targeted, silent

    async def listed(**query: object) -> r.UpdateComputerList:
        return await reports.rpc.call(
            r.UPDATE_COMPUTERS, r.UpdateComputers.model_validate({"update": u.update_id, **query})
        )

    every = await listed()
    assert every.update_id == u.update_id
    assert [(c.computer_id, c.state) for c in every.computers] == [
        ("pc-c1", "installed"),
        ("pc-c2", "failed"),
        ("pc-c3", "not_applicable"),
        ("pc-c5", "needed"),
        ("pc-c6", "no_status"),
    ]
    assert every.total == 5
    failed = every.computers[1]
    assert (failed.hostname, failed.reported_at, failed.last_return_code) == (
        "pc-c2.corp.example",
        T0,
        1603,
    )
    assert every.computers[4].reported_at is None
    assert not any(c.not_reporting for c in every.computers)
    counts = (await reports.update(u.update_id)).update.counts
    for state in ("installed", "failed", "not_applicable", "needed", "no_status"):
        assert (await listed(state=state)).total == getattr(counts, state), state

    pages: list[str] = []
    for offset in (0, 2, 4):
        page = await listed(page={"offset": offset, "limit": 2})
        assert page.total == 5
        pages += [c.computer_id for c in page.computers]
    assert pages == [c.computer_id for c in every.computers]
    beyond = await listed(page={"offset": 10, "limit": 2})
    assert (beyond.computers, beyond.total) == ([], 5)

    by_kb = await _get(reports, f"/reports/updates/KB{u.kb}/computers", state="failed")
    assert [(c["computer_id"], c["state"]) for c in by_kb["computers"]] == [("pc-c2", "failed")]
    assert by_kb["update_id"] == u.update_id

    # Silent: it keeps its last-known state, flagged, and the filter tells it apart.
    await _silence(reports, "pc-c2")
    silent = await listed(state="failed")
    assert [(c.computer_id, c.not_reporting) for c in silent.computers] == [("pc-c2", True)]
    assert (await listed(state="failed", not_reporting=False)).total == 0
    assert (await listed(not_reporting=False)).total == 4
    assert (await reports.update(u.update_id)).update.counts.failed == 0

    with pytest.raises(RpcError) as unknown:
        await listed(update="KB0000001")
    assert unknown.value.body.field == "update"
