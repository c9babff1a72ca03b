"""Maintenance windows per group, end to end: the real catalog, approval and scheduler
against real RabbitMQ and PostgreSQL with a hand-moved clock (approval and scheduler), the
agents played by the test (tests/integration/test_scheduler.py), and the CLI through the
console.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from libs.bus import RpcError
from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import windows as w
from libs.contracts.spec import CommandSpec, Contract
from tests.integration import test_scheduler as base
from tests.integration import test_scheduler_deadlines as timed_base
from tests.integration.test_approval import lockgate
from tests.integration.test_catalog_msrc import JAN, import_request
from tests.integration.test_scheduler import PARIS, Fleet
from tests.support.messages import eventually

pytestmark = pytest.mark.integration

fleet = base.fleet
"""The fleet with its console (the CLI talks to it)."""
timed = timed_base.timed
"""The fleet whose approval reads the manual clock too (custom deadlines near it)."""


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(PARIS)).astimezone(UTC)


async def two_updates(fleet: Fleet) -> tuple[c.UpdateSnapshot, c.UpdateSnapshot]:
    """Two updates that need a restart (none installs at once), once approval and the
    scheduler know them."""
    await fleet.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    found = await fleet.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
    first, second = [
        u for u in sorted(found.updates, key=lambda u: u.kb or "") if u.restart != "never"
    ][:2]

    async def known() -> bool:
        counts = await fleet.db.fetchrow(
            "SELECT (SELECT count(*) FROM approval.updates WHERE update_id = ANY ($1::uuid[]))"
            " AS approval,"
            " (SELECT count(*) FROM scheduler.updates WHERE update_id = ANY ($1::uuid[]))"
            " AS scheduler",
            [first.update_id, second.update_id],
        )
        return counts is not None and counts["approval"] == counts["scheduler"] == 2

    await eventually(known, timeout=30, what="approval and scheduler learning the updates")
    return first, second


async def scheduler_knows(fleet: Fleet, *names: str) -> None:
    """Until the scheduler's read copy of the groups has these (approval's events)."""

    async def known() -> bool:
        found = await fleet.db.fetchval(
            "SELECT count(*) FROM scheduler.groups WHERE name = ANY ($1::text[])", list(names)
        )
        return bool(found == len(names))

    await eventually(known, timeout=20, what=f"the scheduler learning groups {names}")


async def test_installs_wait_for_a_window_and_a_passed_deadline_does_not(timed: Fleet) -> None:
    window_update, deadline_update = await two_updates(timed)
    await timed.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Datacenter"))
    await timed.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Servers", parent="Datacenter"))
    await timed.policy(
        "Nightly",
        a.ROOT_GROUP_NAME,
        use_maintenance_window=False,
        scheduled_time="03:00",
        allow_immediate_install=False,
    )
    agent = await timed.agent("pc-window")
    await timed.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-window"], group="Servers")
    )
    await scheduler_knows(timed, "Datacenter", "Servers")
    # Servers' own window, and one of Datacenter above it: the computer has both.
    await timed.rpc.call(
        w.SET_WINDOWS,
        w.SetMaintenanceWindows(
            group="Servers", windows=[w.MaintenanceWindow.model_validate("tuesday 22:00-02:00")]
        ),
    )
    await timed.rpc.call(
        w.SET_WINDOWS,
        w.SetMaintenanceWindows(
            group="Datacenter",
            windows=[w.MaintenanceWindow.model_validate("second tuesday + 1 day, 20:00-21:00")],
        ),
    )
    await timed.quiet()
    deadline = local("2026-03-03T16:00")  # Tuesday afternoon: outside every window
    await timed.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[window_update.kb or ""],
            groups=[a.GroupChoice(group="Servers", action="required_install")],
        ),
    )
    await timed.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[deadline_update.kb or ""],
            groups=[
                a.GroupChoice(
                    group="Servers",
                    action="required_install",
                    deadline=a.DeadlineChoice(kind="custom", at=deadline),
                )
            ],
        ),
    )
    await timed.quiet()

    async def planned() -> bool:
        plans = agent.of(ag.PLAN)
        return bool(plans) and len(plans[-1]["items"]) == 2

    await eventually(planned, timeout=20, what="the plan with both approved updates")
    plan = agent.of(ag.PLAN)[-1]
    assert sorted(x["start"] for x in plan["maintenance_windows"]) == ["20:00", "22:00"]
    # Policy: 03:00 every day; Tuesday 03:00 is outside the windows, so the next install is
    # the opening of Tuesday's window, 22:00 (Datacenter's is on Wednesday 11 March).
    window = local("2026-03-03T22:00")
    assert datetime.fromisoformat(plan["next_window"]) == window
    items = {i["update_id"]: i for i in plan["items"]}
    assert datetime.fromisoformat(items[window_update.update_id]["install_at"]) == window
    assert datetime.fromisoformat(items[deadline_update.update_id]["install_at"]) == deadline

    # The policy's 03:00 passes outside every window: nothing is sent.
    await timed.advance(local("2026-03-03T03:00") - timed.clock.now() + timedelta(minutes=1))
    assert agent.of(ag.INSTALL) == []
    # The deadline passes outside every window: it is not held back.
    await timed.advance(deadline - timed.clock.now() + timedelta(seconds=1))
    (forced,) = await agent.wait_for(ag.INSTALL)
    assert forced["reason"] == "deadline"
    assert [u["update_id"] for u in forced["updates"]] == [deadline_update.update_id]
    await agent.installed(deadline_update.update_id, 0)
    await timed.quiet()
    # Up to a minute before the window: still nothing else.
    await timed.advance(window - timed.clock.now() - timedelta(minutes=1))
    assert len(agent.of(ag.INSTALL)) == 1
    await timed.advance(timedelta(minutes=1, seconds=1))
    installs = await agent.wait_for(ag.INSTALL, 2)
    opened = installs[-1]
    assert opened["reason"] == "window"
    assert [u["update_id"] for u in opened["updates"]] == [window_update.update_id]
    issued = datetime.fromisoformat(opened["issued_at"])
    assert window <= issued < local("2026-03-04T02:00"), "inside the window"

    # Not installed yet (no report): the next try is at the next window's opening, the
    # policy's Wednesday 03:00 being outside every window.
    replanned = await timed.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-window"))
    assert replanned.next_window == local("2026-03-10T22:00")

    # Installed at 01:55 asking for a restart: the restart delay (15 minutes) ends outside
    # the window, so the restart cycle starts at the next window's opening.
    await timed.advance(local("2026-03-04T01:55") - timed.clock.now())
    await agent.installed(window_update.update_id, 3010)
    await timed.quiet()
    await timed.advance(timedelta(hours=1))
    assert agent.of(ag.RESTART_PROMPT) == []
    held = await timed.db.fetchval(
        "SELECT restart_due_at FROM scheduler.computers WHERE computer_id = 'pc-window'"
    )
    assert held == local("2026-03-10T22:00")
    await timed.advance(local("2026-03-10T22:00") - timed.clock.now() + timedelta(seconds=1))
    (prompt,) = await agent.wait_for(ag.RESTART_PROMPT)
    issued = datetime.fromisoformat(prompt["issued_at"])
    assert local("2026-03-10T22:00") <= issued < local("2026-03-11T02:00"), "inside the window"


async def test_operators_set_list_and_clear_windows_and_bad_input_is_refused(fleet: Fleet) -> None:
    await fleet.agent("pc-cli-windows")
    await fleet.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Branch offices"))
    await scheduler_knows(fleet, "Branch offices")
    code, found, err = await lockgate(
        fleet.cli,
        "windows",
        "set",
        "Branch offices",
        "tuesday 22:00-02:00",
        "second tuesday + 1 day, 22:00-02:00",
    )
    assert code == 0, err
    assert found["texts"] == ["tuesday 22:00-02:00", "second tuesday + 1 day, 22:00-02:00"]
    code, listed, _ = await lockgate(fleet.cli, "windows", "list")
    assert code == 0
    assert [(g["group_name"], len(g["windows"])) for g in listed["groups"]] == [
        ("Branch offices", 2)
    ]

    # Refused before anything is sent, naming the window and what is allowed.
    code, _, err = await lockgate(fleet.cli, "windows", "set", "Branch offices", "tusday 1:00-2:00")
    assert code != 0
    assert "'tusday'" in err
    assert "monday" in err

    # Refused by the scheduler too (the API takes windows as text as well).
    class RawWindows(Contract):
        group: str
        windows: list[str]

    raw = CommandSpec(
        type=w.SET_WINDOWS.type,
        request=RawWindows,
        reply=w.GroupWindows,
        handler="scheduler",
        summary="raw",
    )
    with pytest.raises(RpcError) as refused:
        await fleet.rpc.call(
            raw, RawWindows(group="Branch offices", windows=["fifth tuesday 01:00-02:00"])
        )
    assert "fifth" in refused.value.body.message
    assert "first, second, third, fourth, last" in refused.value.body.message
    accepted = await fleet.rpc.call(
        raw, RawWindows(group="Branch offices", windows=["last friday + 3 days, 20:00-23:00"])
    )
    assert accepted.texts == ["last friday + 3 days, 20:00-23:00"]
    with pytest.raises(RpcError) as unknown:
        await fleet.rpc.call(
            w.SET_WINDOWS,
            w.SetMaintenanceWindows(
                group="No such group",
                windows=[w.MaintenanceWindow.model_validate("monday 01:00-02:00")],
            ),
        )
    assert unknown.value.body.field == "group"

    code, cleared, _ = await lockgate(fleet.cli, "windows", "clear", "Branch offices")
    assert (code, cleared["windows"]) == (0, [])
    code, _, err = await lockgate(fleet.cli, "windows", "clear", "Branch offices")
    assert code != 0
    assert "no maintenance windows" in err
    code, listed, _ = await lockgate(fleet.cli, "windows", "list")
    assert listed["groups"] == []


async def test_operators_set_the_spread_and_the_grace_from_the_cli(fleet: Fleet) -> None:
    await fleet.agent("pc-cli-spread")
    code, _, err = await lockgate(
        fleet.cli, "policies", "create", "Spread", "--set", "deadline_spread_hours=30"
    )
    assert code != 0
    assert "deadline_spread_hours" in err
    assert "24" in err
    code, created, err = await lockgate(
        fleet.cli,
        "policies",
        "create",
        "Spread",
        "--set",
        "deadline_spread_hours=6",
        "--set",
        "deadline_grace_days=2",
    )
    assert code == 0, err
    assert (
        created["settings"]["deadline_spread_hours"],
        created["settings"]["deadline_grace_days"],
    ) == (6, 2)
    code, _, err = await lockgate(
        fleet.cli, "policies", "edit", "Spread", "--set", "deadline_grace_days=8"
    )
    assert code != 0
    assert "deadline_grace_days" in err
    assert "8" in err
