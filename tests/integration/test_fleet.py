"""The fleet list and every computer accounted for (issue 16): failed, silent and never
reported computers each in their own number, per update and per computer, and in the list's
filters, sorts and keyset pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.contracts import approval as a
from libs.contracts import policies as p
from libs.contracts import reporting as r
from libs.domain.deadline_spread import spread_offset
from services.reporting.store import states
from tests.integration.test_approval import lockgate
from tests.integration.test_reporting import (  # noqa: F401 (the fixture)
    T0,
    Reports,
    approve,
    reports,
    setup,
)
from tests.support.messages import checkin, eventually, publish_checkins


async def _list(reports: Reports, **query: object) -> r.ComputerList:  # noqa: F811
    return await reports.rpc.call(r.LIST_COMPUTERS, r.ListComputers.model_validate(query))


async def test_failed_silent_and_never_reported_computers_are_counted_apart(
    reports: Reports,  # noqa: F811
) -> None:
    computers = ["pc-f1", "pc-f2", "pc-f3", "pc-f4"]
    updates = await setup(reports, computers)
    u = updates[0].update_id
    await approve(reports, u, deadline=a.DeadlineChoice(kind="as_soon_as_possible"))
    await reports.status("pc-f1", T0, detections={u: "installed"})
    await reports.status("pc-f2", T0, installs={u: 1603})
    await reports.status("pc-f3", T0, installs={u: 1603})
    await reports.settled()
    # pc-f3 fell silent a month ago (it failed before it did); pc-f4 never reported.
    await reports.db.execute(
        "UPDATE reporting.computers SET last_contact_at = $1 WHERE computer_id = 'pc-f3'",
        datetime.now(UTC) - timedelta(days=30),
    )

    counts = (await reports.update(u)).update.counts
    assert (counts.installed, counts.failed, counts.not_reporting, counts.no_status) == (1, 1, 1, 1)
    summary = await reports.rpc.call(r.SUMMARY, r.Summary())
    assert (summary.computers, summary.computers_not_reporting) == (4, 1)
    assert summary.totals is not None
    assert summary.totals.not_reporting == 1

    pc4 = await reports.rpc.call(r.COMPUTER_REPORT, r.ComputerReportQuery(computer="pc-f4"))
    assert [(x.update_id, x.state) for x in pc4.updates] == [(u, "no_status")]
    assert pc4.totals.no_status == 1
    assert not pc4.not_reporting
    pc3 = await reports.rpc.call(r.COMPUTER_REPORT, r.ComputerReportQuery(computer="pc-f3"))
    assert pc3.not_reporting
    assert pc3.totals.not_reporting == 1
    assert pc3.totals.failed == 0

    every = await _list(reports)
    assert [c.computer_id for c in every.computers] == computers
    assert every.next_cursor is None
    assert every.managed == 4
    first = every.computers[0]
    assert (first.hostname, first.timezone, first.agent_version) == (
        "pc-f1.corp.example",
        "Europe/Paris",
        "1.0.0",
    )
    assert [c.compliance.failed for c in every.computers] == [0, 1, 1, 0]
    assert every.computers[3].compliance.no_status == 1
    assert [c.not_reporting for c in every.computers] == [False, False, True, False]

    async def ids(**query: object) -> list[str]:
        return [c.computer_id for c in (await _list(reports, **query)).computers]

    assert await ids(not_reporting=True) == ["pc-f3"]
    assert await ids(failed=True) == ["pc-f2", "pc-f3"]
    assert await ids(restart_pending=True) == []
    assert await ids(past_deadline=True) == ["pc-f2", "pc-f3", "pc-f4"]
    assert await ids(search="PC-F1") == ["pc-f1"]
    assert await ids(search="pc-f") == computers
    assert await ids(group=a.ROOT_GROUP_NAME) == computers
    assert await ids(sort="failed") == ["pc-f2", "pc-f3", "pc-f1", "pc-f4"]
    assert (await ids(sort="last_contact"))[0] == "pc-f3"

    for sort in ("name", "last_contact", "failed"):
        seen: list[str] = []
        cursor = None
        while True:
            page = await _list(reports, sort=sort, limit=3, cursor=cursor)
            seen += [c.computer_id for c in page.computers]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == computers, sort
        assert len(seen) == 4, sort

    await reports.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Lab"))
    await reports.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Lab bench", parent="Lab"))
    await reports.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-f2"], group="Lab bench")
    )
    await reports.settled()
    assert await ids(group="Lab") == ["pc-f2"], "subgroups included"
    lab = await _list(reports, group="Lab")
    assert lab.computers[0].groups == ["Lab bench"]


async def test_the_fleet_list_shows_the_policy_in_force_as_the_scheduler_announces_it(
    reports: Reports,  # noqa: F811
) -> None:
    """scheduler.computer.policy-changed.v1: at registration ("no policy"), then each time
    an assignment or unassignment changes a computer's policy in force, and only then."""
    computers = ["pc-p1", "pc-p2", "pc-p3"]
    await publish_checkins(reports.bus, [checkin(cid) for cid in computers])

    async def policies_are(expected: dict[str, str]) -> bool:
        listed = await _list(reports)
        return {c.computer_id: c.policy for c in listed.computers} == expected

    async def shown(expected: dict[str, str], what: str) -> None:
        await eventually(lambda: policies_are(expected), timeout=30, what=what)

    await shown(dict.fromkeys(computers, "no policy"), "every new computer announced")
    await reports.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Kiosks"))
    await reports.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-p1", "pc-p2"], group="Kiosks")
    )
    await reports.rpc.call(p.CREATE_POLICY, p.CreatePolicy(name="Kiosk nights"))
    await reports.rpc.call(p.ASSIGN_POLICY, p.AssignPolicy(policy="Kiosk nights", group="Kiosks"))
    await shown(
        {"pc-p1": "Kiosk nights", "pc-p2": "Kiosk nights", "pc-p3": "no policy"},
        "the group's policy in the fleet list",
    )
    code, printed, err = await lockgate(reports.cli, "computers", "list", "--search", "pc-p1")
    assert code == 0, err
    assert [(c["computer_id"], c["policy"]) for c in printed["computers"]] == [
        ("pc-p1", "Kiosk nights")
    ], "GET /computers shows it too"

    await reports.rpc.call(p.UNASSIGN_POLICY, p.UnassignPolicy(group="Kiosks"))
    await shown(dict.fromkeys(computers, "no policy"), "no policy after the unassignment")
    await reports.settled()
    announced = await reports.db.fetchval(
        "SELECT count(*) FROM scheduler.outbox WHERE routing_key LIKE '%policy-changed%'"
    )
    assert announced == 3 + 2 + 2, "a computer is announced only when its policy changes"


async def test_a_computer_is_past_deadline_from_its_own_spread_deadline(
    reports: Reports,  # noqa: F811
) -> None:
    """With a policy that spreads deadlines, reporting counts a computer past its deadline
    only once its own deadline (libs/domain/deadline_spread.py) has come, as the scheduler
    forces it; the spread comes with the policy in force the scheduler announces, and again
    when the policy's spread is edited."""
    computers = [f"pc-s{n:02d}" for n in range(12)]
    updates = await setup(reports, computers)
    u = updates[0].update_id
    await reports.rpc.call(
        p.CREATE_POLICY,
        p.CreatePolicy(name="Spread", settings=p.PolicySettings(deadline_spread_hours=24)),
    )
    await reports.rpc.call(p.ASSIGN_POLICY, p.AssignPolicy(policy="Spread", group="All computers"))

    async def offsets_are(hours: int) -> bool:
        rows = await reports.db.fetch(
            "SELECT computer_id, deadline_offset_seconds FROM reporting.computers"
        )
        return {row["computer_id"]: row["deadline_offset_seconds"] for row in rows} == {
            c: int(spread_offset(c, hours).total_seconds()) for c in computers
        }

    await eventually(lambda: offsets_are(24), timeout=30, what="each computer's own offset")
    await approve(reports, u, deadline=a.DeadlineChoice(kind="as_soon_as_possible"))
    await reports.settled()
    # The approved deadline was twelve hours ago: a computer whose share of the 24 hours is
    # under twelve is past its own deadline, the others are not yet (none reported: all lack
    # the required install).
    half = timedelta(hours=12)
    await reports.db.execute(
        "UPDATE reporting.group_approvals SET deadline = now() - $2::interval"
        " WHERE update_id = $1::uuid",
        u,
        half,
    )
    late = sorted(c for c in computers if spread_offset(c, 24) <= half)
    assert 0 < len(late) < len(computers), "the ids fall on both sides of half the spread"

    async def past(expected: list[str]) -> bool:
        listed = [c.computer_id for c in (await _list(reports, past_deadline=True)).computers]
        summary = await reports.rpc.call(r.SUMMARY, r.Summary())
        async with reports.db.transaction():
            await reports.db.execute("SET LOCAL search_path TO reporting")
            overdue = await states.overdue(reports.db, [u], datetime.now(UTC))
        return (listed, summary.computers_past_deadline, overdue.get(u, 0)) == (
            expected,
            len(expected),
            len(expected),
        )

    await eventually(lambda: past(late), timeout=30, what="only computers past their own")

    # The spread edited away: every computer's deadline is the approved one again.
    await reports.rpc.call(
        p.EDIT_POLICY, p.EditPolicy(policy="Spread", settings={"deadline_spread_hours": 0})
    )
    await eventually(lambda: offsets_are(0), timeout=30, what="the spread announced again")
    await eventually(lambda: past(computers), timeout=30, what="every computer past deadline")
