"""End to end: every service as its own process, the console, and a simulated fleet, with
time running 3,600 times faster (an hour a second) for all of them.

The source document's flow: import MSRC, a rule for Workstations with a one-week deadline
and an explicit as-soon-as-possible override on its child Pilot, agents checking in,
detecting, installing (in windows or at deadlines) and restarting, a third-party MSI with a
scripted failure, a decline; then the reports must match what the fleet says it did.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from libs.bus import Bus
from libs.contracts.approval import UPDATE_STATES
from libs.service.clock import SpeedClock
from services.simulator.fleet import FAILURE_CODE, Fleet, Options
from tests.integration.test_catalog_msrc import FEB, JAN
from tests.support.infra import Infra
from tests.support.installers import build_msi
from tests.support.messages import eventually
from tests.support.system import System, running_system

pytestmark = pytest.mark.integration

SPEED = 3600.0
COMPUTERS = 30
PILOT = 10


class Estate:
    def __init__(self, system: System, fleet: Fleet) -> None:
        self.system, self.fleet = system, fleet
        self.ok = system.ok


@pytest.fixture
async def estate(infra: Infra, bus: Bus, log_dir: Path, tmp_path: Path) -> AsyncIterator[Estate]:
    epoch = datetime.now(UTC)
    fleet = Fleet(
        bus,
        SpeedClock(epoch, SPEED),
        # Every computer runs Windows 11, the MSI's requirement, so the scripted failure
        # below happens on a computer the MSI applies to.
        Options(
            computers=COMPUTERS,
            prefix="e2e",
            offline_rate=0.0,
            failure_rate=0.0,
            windows10_rate=0.0,
            interrupt_rate=0.2,
        ),
    )
    async with running_system(
        infra, log_dir, tmp_path / "content", epoch=epoch, speed=SPEED
    ) as system:
        try:
            yield Estate(system, fleet)
        finally:
            await fleet.stop()


def _b64(path: Path) -> str:
    return base64.b64encode(gzip.compress(path.read_bytes())).decode()


async def test_the_whole_flow_with_a_simulated_fleet(estate: Estate, tmp_path: Path) -> None:
    ok = estate.ok
    fleet = estate.fleet
    await ok("POST", "/groups", json={"name": "Workstations"})
    await ok("POST", "/groups", json={"name": "Pilot", "parent": "Workstations"})
    # 1. January then February: February's KBs supersede January's.
    jan = await ok("POST", "/catalog/imports", json={"content_gzip_b64": _b64(JAN)})

    # Approval learns January from catalog events; the rule below must come after that, or
    # it would see January's updates arrive and approve them.
    async def january_known() -> bool:
        # Every state: the default view hides what the catalog settings do not offer.
        found = await ok("GET", "/updates", params={"limit": 1000, "states": list(UPDATE_STATES)})
        return bool(found["total"] >= jan["published"])

    await eventually(january_known, timeout=60, what="approval learning January's updates")
    # A rule created now approves only what arrives from now on: February's updates.
    await ok(
        "POST",
        "/rules",
        json={
            "rule": {
                "name": "Workstation security",
                "products": ["Windows"],
                "classifications": ["Security Updates"],
                "groups": ["Workstations"],
                "deadline": "one_week",
            }
        },
    )
    feb = await ok("POST", "/catalog/imports", json={"content_gzip_b64": _b64(FEB)})
    assert feb["superseded"] > 0
    updates = (await ok("GET", "/catalog/updates", params={"limit": 1000}))["updates"]
    superseded = [u for u in updates if u["superseded_by"]]
    assert superseded

    # 2. The rule approved February's Windows security updates for Workstations (none of
    # the January ones they supersede); Pilot overrides one to required as soon as possible.
    async def approved() -> bool:
        found = await ok("GET", "/groups/Workstations/approvals")
        return bool(found["approvals"])

    await eventually(approved, timeout=60, what="the rule's approvals")
    ws = (await ok("GET", "/groups/Workstations/approvals"))["approvals"]
    approved_ids = {a["update_id"] for a in ws}
    assert not approved_ids & {u["update_id"] for u in superseded}
    target = sorted(ws, key=lambda a: a["kb"] or "")[0]
    await ok(
        "POST",
        "/updates/approve",
        json={
            "updates": [target["update_id"]],
            "groups": [
                {
                    "group": "Pilot",
                    "action": "required_install",
                    "deadline": {"kind": "as_soon_as_possible"},
                }
            ],
        },
    )

    # 3. Agents check in; put them in their groups.
    await fleet.start()
    computers = sorted(fleet.agents)

    async def registered() -> bool:
        listed = await ok("GET", "/groups")
        return bool(listed["groups"][0]["computers"] >= COMPUTERS)

    await eventually(registered, timeout=60, what="every agent registered")
    await ok("POST", "/groups/Pilot/members", json={"computers": computers[:PILOT]})
    await ok("POST", "/groups/Workstations/members", json={"computers": computers[PILOT:]})

    # Pilot installs at once (deadline ASAP); restarts follow the 3010s.
    async def pilot_installed() -> bool:
        """Every Pilot computer that needed it has reported installing it."""
        first = [fleet.detected.get((c, target["update_id"])) for c in computers[:PILOT]]
        needing = [
            c for c, state in zip(computers[:PILOT], first, strict=True) if state == "needed"
        ]
        return None not in first and all(
            (c, target["update_id"]) in fleet.installs for c in needing
        )

    await eventually(pilot_installed, timeout=90, what="Pilot's forced installs")

    # Workstations install in their maintenance windows (02:00 local, within a simulated day).
    async def windows_ran() -> bool:
        return any(c in computers[PILOT:] for c, _ in fleet.installs)

    await eventually(windows_ran, timeout=120, what="installs in the Workstations' windows")

    async def restarted() -> bool:
        return fleet.stats["restarts"] > 0

    await eventually(restarted, timeout=60, what="a restart cycle after a 3010")

    # 4. A third-party MSI, required for Pilot, with one scripted failure.
    msi = build_msi(tmp_path, name="Contoso Notes", version="2.1.0", manufacturer="Contoso")
    third_party = await estate.system.upload(
        msi.path,
        {
            "description": {"classification": "Updates"},
            "requirements": {"architecture": "both", "operating_systems": ["Windows 11"]},
        },
    )
    failing = computers[0]
    fleet.failures.add((failing, third_party["update_id"]))

    async def known_to_approval() -> bool:
        found = await ok("GET", "/updates", params={"states": ["third_party"]})
        return bool(found["updates"])

    await eventually(known_to_approval, timeout=30, what="approval learning the MSI")
    await ok(
        "POST",
        "/updates/approve",
        json={
            "updates": [third_party["update_id"]],
            "groups": [
                {
                    "group": "Pilot",
                    "action": "required_install",
                    "deadline": {"kind": "as_soon_as_possible"},
                }
            ],
        },
    )

    async def msi_reported() -> bool:
        report = await ok("GET", f"/reports/updates/{third_party['update_id']}")
        counts = report["update"]["counts"]
        done = counts["installed"] + counts["installed_pending_restart"] + counts["failed"]
        applicable = [
            c
            for c in computers[:PILOT]
            if fleet.agents[c].states.get(third_party["update_id"]) != "not_applicable"
        ]
        return done >= len(applicable) and bool(applicable)

    await eventually(msi_reported, timeout=90, what="the MSI's installs reported")
    # Each Pilot computer fetched the MSI by its signed URL and verified it before installing
    # (the scripted failure too: its installer fails after the download).
    fetched = [fleet.downloads.get((c, third_party["update_id"])) for c in computers[:PILOT]]
    assert all(files and all(f.return_code is None for f in files) for files in fetched)
    report = await ok("GET", f"/reports/updates/{third_party['update_id']}")
    assert report["update"]["counts"]["failed"] == 1
    # Only the scripted computer fails (it may have been told to retry at a later window,
    # an hour of simulated time is a second here, so each try is an attempt of its own).
    assert {(f["computer_id"], f["return_code"]) for f in report["failed_attempts"]} == {
        (failing, FAILURE_CODE)
    }

    # 6. Reports match what the fleet did, computer by computer. Windows keep firing at an
    # hour a second, so an install the fleet just made may still be on its way: wait for the
    # reports to catch up, and name what still differs if they do not.
    mismatches: list[tuple[str, str, int, str]] = []

    async def reports_match() -> bool:
        mismatches.clear()
        for computer in computers[:PILOT]:
            seen = await ok("GET", f"/reports/computers/{computer}")
            states = {u["update_id"]: u["state"] for u in seen["updates"]}
            for (who, update_id), code in list(fleet.installs.items()):
                if who != computer or update_id not in states:
                    continue
                expected = (
                    ("failed",)
                    if code == FAILURE_CODE
                    else ("installed", "installed_pending_restart")
                )
                if states[update_id] not in expected:
                    mismatches.append((computer, update_id, code, states[update_id]))
        return not mismatches

    try:
        await eventually(reports_match, timeout=30, what="reports matching the fleet's installs")
    except AssertionError:
        raise AssertionError(f"reported states differ from installs: {mismatches}") from None

    # 5. Declining the Pilot update deletes its report data.
    before = await ok("GET", f"/reports/updates/{target['update_id']}")
    assert before["update"]["counts"]["applies_to"] > 0
    await ok("POST", "/updates/decline", json={"updates": [target["update_id"]]})

    async def deleted() -> bool:
        after = await ok("GET", f"/reports/updates/{target['update_id']}")
        counts = after["update"]["counts"]
        return bool(
            counts["applies_to"] == counts["not_applicable"] == 0 and after["failures"] == 0
        )

    await eventually(deleted, timeout=30, what="the declined update's report data gone")
