"""The agent loop closed (issue 15, "Done when"): what the operator decides reaches the agent,
and what an agent says counts only for itself.

Every service runs as its own process with the console, on a real broker and database, time
running an hour a second; simulated agents speak only the agent protocol and fetch content
only by the signed URLs their plans carry.

- A real MSI (built by wixl) with an x64 requirement, approved for a group of x64 and x86
  computers: the x64 ones download it (every download cut halfway and resumed with Range,
  size and sha256 verified), install it and report it installed, each in one report holding
  the install result and the detection that followed, and both the reports and the plans
  say so; the x86 ones, and an x64 one short of free disk, report it not applicable and
  never attempt it. A computer that already has the product (its MSI product code on disk)
  detects it and downloads nothing (expected to fail until plans carry an MSI's product
  code as its detection rule).
  A second MSI, only made available, is installed where each user asks for it.
- A status report sent by one computer in another's name is dead-lettered by both of its
  consumers and changes nothing.
- A malformed agent message gets a `computer.<id>.rejected.v1` reply naming the field.
- An update outside the offered products is hidden from the default view and refused for
  approval.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from libs.bus import Bus
from libs.contracts import agents as ag
from libs.contracts.catalog import DetectionRule
from libs.service.clock import SpeedClock
from services.simulator.fleet import FAILURE_CODE, Fleet, Options
from tests.integration.test_catalog_msrc import JAN
from tests.support.infra import Infra
from tests.support.installers import build_msi
from tests.support.messages import dead_lettered, eventually, publish_as_agent
from tests.support.system import System, running_system

pytestmark = pytest.mark.integration

SPEED = 3600.0
GIB = 1024**3
INSTALLED = ("installed", "installed_pending_restart")
REPORT_DEAD_LETTERS = ("scheduler.agent-reports.dlq", "reporting.agent-reports.dlq")
"""Both consumers of agent status reports (their queues' dead-letter queues)."""


@dataclass(frozen=True)
class Loop:
    system: System
    fleet: Fleet
    bus: Bus


@pytest.fixture
async def loop(infra: Infra, bus: Bus, log_dir: Path, tmp_path: Path) -> AsyncIterator[Loop]:
    epoch = datetime.now(UTC)
    fleet = Fleet(
        bus,
        SpeedClock(epoch, SPEED),
        Options(
            computers=8,
            prefix="loop",
            seed=3,  # four x64 and four x86 computers
            x86_rate=0.5,
            windows10_rate=0.0,
            offline_rate=0.0,
            failure_rate=0.0,
            request_rate=1.0,
            interrupt_rate=1.0,
        ),
    )
    async with running_system(
        infra, log_dir, tmp_path / "content", epoch=epoch, speed=SPEED
    ) as system:
        try:
            yield Loop(system, fleet, bus)
        finally:
            await fleet.stop()


async def plan_state(system: System, computer: str, update_id: str) -> str | None:
    """What the scheduler's plan for the computer says of the update (None: not in it)."""
    plan = await system.ok("GET", f"/computers/{computer}/plan")
    return next((i["state"] for i in plan["items"] if i["update_id"] == update_id), None)


async def report_state(system: System, computer: str, update_id: str) -> str | None:
    """What reporting holds for the update on the computer (None: nothing)."""
    report = await system.ok("GET", f"/reports/computers/{computer}")
    return next((u["state"] for u in report["updates"] if u["update_id"] == update_id), None)


async def attempts(system: System, update_id: str) -> list[tuple[str, int]]:
    """(computer, return code) of every install attempt reporting recorded for the update."""
    conn = await asyncpg.connect(system.database_url)
    try:
        rows = await conn.fetch(
            "SELECT computer_id, return_code FROM reporting.install_attempts "
            "WHERE update_id = $1 ORDER BY computer_id",
            update_id,
        )
    finally:
        await conn.close()
    return [(row["computer_id"], row["return_code"]) for row in rows]


async def requests_recorded(system: System, update_id: str) -> set[str]:
    """The computers whose users asked the scheduler to install the update."""
    conn = await asyncpg.connect(system.database_url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT computer_id FROM scheduler.install_requests WHERE update_id = $1",
            update_id,
        )
    finally:
        await conn.close()
    return {row["computer_id"] for row in rows}


async def lab(loop: Loop) -> tuple[list[str], list[str]]:
    """Start the fleet and put every computer in the group Lab; its (x64, x86) computers."""
    system, fleet = loop.system, loop.fleet
    computers = sorted(fleet.agents)
    await system.ok("POST", "/groups", json={"name": "Lab"})
    await fleet.start()

    async def registered() -> bool:
        listed = await system.ok("GET", "/groups")
        return bool(listed["groups"][0]["computers"] >= len(computers))

    await eventually(registered, timeout=60, what="every agent registered")
    await system.ok("POST", "/groups/Lab/members", json={"computers": computers})
    x64 = [c for c in computers if fleet.agents[c].architecture == "x64"]
    x86 = [c for c in computers if fleet.agents[c].architecture == "x86"]
    assert (len(x64), len(x86)) == (4, 4)
    return x64, x86


async def approve_for_lab(system: System, approvals: dict[str, dict[str, Any]]) -> None:
    """Once approval knows these updates, approve each for Lab as given."""

    async def known() -> bool:
        found = await system.ok("GET", "/updates", params={"states": ["third_party"]})
        return set(approvals) <= {u["update_id"] for u in found["updates"]}

    await eventually(known, timeout=30, what="approval learning the uploads")
    for update_id, choice in approvals.items():
        await system.ok(
            "POST",
            "/updates/approve",
            json={"updates": [update_id], "groups": [{"group": "Lab", **choice}]},
        )


REQUIRED_NOW: dict[str, Any] = {
    "action": "required_install",
    "deadline": {"kind": "as_soon_as_possible"},
}
X64_ONLY: dict[str, dict[str, Any]] = {
    "description": {"classification": "Updates"},
    "requirements": {
        "architecture": "x64",
        "operating_systems": ["Windows 11"],
        "min_free_disk_bytes": GIB,
        "min_memory_bytes": 2 * GIB,
    },
}
"""A real MSI's upload steps: x64 only, Windows 11, 1 GiB of free disk and 2 GiB of memory
(every simulated computer has at least 4 GiB of memory and 8 of disk, unless a test says)."""


async def test_the_agent_loop_with_a_real_msi(loop: Loop, tmp_path: Path) -> None:
    system, fleet = loop.system, loop.fleet
    computers = sorted(fleet.agents)
    x64, x86 = await lab(loop)

    # A real MSI for x64 computers; one of them is left with half a GiB of free disk.
    msi = build_msi(tmp_path, name="Contoso Notes", version="3.0.0", manufacturer="Contoso")
    cramped = x64[-1]
    fleet.agents[cramped].disk.free_bytes = GIB // 2  # its check-ins say so
    update_id = (await system.upload(msi.path, X64_ONLY))["update_id"]
    # Another, for every architecture, only made available: each user asks for it.
    tool_msi = build_msi(tmp_path, name="Contoso Tools", version="1.2.0", manufacturer="Contoso")
    tool = await system.upload(
        tool_msi.path,
        {
            "description": {"classification": "Updates"},
            "requirements": {"architecture": "both", "operating_systems": ["Windows 11"]},
        },
    )
    tool_id = tool["update_id"]
    await approve_for_lab(
        system, {update_id: REQUIRED_NOW, tool_id: {"action": "available_install"}}
    )

    # The x64 computers end installed, the x86 ones not applicable: in the plans (scheduler)
    # and in the reports (reporting) alike.
    differs: list[tuple[str, str | None, str | None]] = []

    async def settled() -> bool:
        differs.clear()
        for computer in computers:
            seen = (
                await plan_state(system, computer, update_id),
                await report_state(system, computer, update_id),
            )
            wanted = INSTALLED if computer in x64 and computer != cramped else ("not_applicable",)
            asked = (
                await plan_state(system, computer, tool_id),
                await report_state(system, computer, tool_id),
            )
            if not all(state in wanted for state in seen):
                differs.append((computer, *seen))
            if not all(state in INSTALLED for state in asked):
                differs.append((computer, *asked))
        return not differs

    try:
        await eventually(settled, timeout=90, what="every computer settled")
    except AssertionError:
        raise AssertionError(f"(computer, plan, report) not settled: {differs}") from None

    # x64: downloaded by signed URL (resumed with Range: every first request was cut),
    # verified, installed, and reported in one report holding result and detection.
    installing = [c for c in x64 if c != cramped]
    for computer in installing:
        files = fleet.downloads[computer, update_id]
        assert [(f.return_code, f.received, f.resumed) for f in files] == [
            (None, msi.path.stat().st_size, 1)
        ], computer
        assert fleet.installs[computer, update_id] in (0, 3010), computer
    assert {(c, update_id) for c in installing} <= fleet.combined
    # x86, and the x64 computer short of disk: not applicable, no download, no attempt.
    for computer in [*x86, cramped]:
        assert fleet.agents[computer].states[update_id] == "not_applicable"
        assert (computer, update_id) not in fleet.downloads
        assert (computer, update_id) not in fleet.installs
    recorded = await attempts(system, update_id)
    assert not {c for c, _ in recorded} & {*x86, cramped}, recorded
    # The available one: every user asked, the scheduler recorded it and sent the install.
    assert {c for c, u in fleet.requests if u == tool_id} == set(computers)
    assert {c for c, _ in await attempts(system, tool_id)} == set(computers)
    assert await requests_recorded(system, tool_id) == set(computers)

    # A report sent by an x86 computer in an x64 computer's name, saying the install failed
    # later than anything it reported: dead-lettered by both consumers, nothing changes.
    victim, forger = installing[0], x86[0]
    later = fleet.clock.now() + timedelta(minutes=5)
    forged = ag.AgentStatus(
        computer_id=victim,
        reported_at=later,
        installs=[
            ag.InstallResult(
                update_id=update_id,
                return_code=FAILURE_CODE,
                started_at=later - timedelta(minutes=1),
                finished_at=later,
            )
        ],
        detections=[ag.DetectionResult(update_id=update_id, state="needed")],
    )
    forged_id = await publish_as_agent(
        loop.bus, forger, ag.AGENT_STATUS.type, forged.model_dump_json().encode()
    )
    for queue in REPORT_DEAD_LETTERS:
        await dead_lettered(loop.bus, queue, forged_id)
    assert await plan_state(system, victim, update_id) in INSTALLED
    assert await report_state(system, victim, update_id) in INSTALLED
    assert (victim, FAILURE_CODE) not in await attempts(system, update_id)

    # A malformed report (a return code past 32 bits): the agent is told, naming the field.
    sender = installing[1]
    malformed: dict[str, Any] = forged.model_copy(update={"computer_id": sender}).model_dump(
        mode="json"
    )
    malformed["installs"][0]["return_code"] = 5_000_000_000
    malformed_id = await publish_as_agent(
        loop.bus, sender, ag.AGENT_STATUS.type, json.dumps(malformed).encode()
    )

    async def told() -> bool:
        return any(r.message_id == malformed_id for r in fleet.rejections)

    await eventually(told, timeout=30, what="the malformed report's rejected reply")
    rejected = next(r for r in fleet.rejections if r.message_id == malformed_id)
    assert (rejected.computer_id, rejected.message_type, rejected.field) == (
        sender,
        ag.AGENT_STATUS.type,
        "installs[0].return_code",
    )
    assert fleet.summary()["rejected"] >= 1


async def test_an_msi_detects_itself_by_its_product_code(loop: Loop, tmp_path: Path) -> None:
    """A computer that already has the product (its MSI product code registered) detects it
    from the plan's rule: it reports it installed, downloads nothing and attempts nothing."""
    system, fleet = loop.system, loop.fleet
    x64, _ = await lab(loop)
    msi = build_msi(tmp_path, name="Contoso Notes", version="3.1.0", manufacturer="Contoso")
    already = x64[0]
    fleet.agents[already].disk.add(DetectionRule(kind="msi_product_code", value=msi.product_code))
    update_id = (await system.upload(msi.path, X64_ONLY))["update_id"]
    await approve_for_lab(system, {update_id: REQUIRED_NOW})

    async def detected() -> bool:
        seen = (
            await plan_state(system, already, update_id),
            await report_state(system, already, update_id),
        )
        return all(state in INSTALLED for state in seen)

    await eventually(detected, timeout=60, what=f"{already} reporting the MSI installed")
    plan = await system.ok("GET", f"/computers/{already}/plan")
    item = next(i for i in plan["items"] if i["update_id"] == update_id)
    rules = [(r["kind"], r["value"].upper()) for r in item["installation"]["detection_rules"]]
    assert ("msi_product_code", msi.product_code.upper()) in rules, rules
    assert (already, update_id) not in fleet.downloads
    assert already not in {c for c, _ in await attempts(system, update_id)}


async def test_an_update_outside_the_offered_products_is_refused_for_approval(
    loop: Loop,
) -> None:
    system = loop.system
    await system.ok("POST", "/groups", json={"name": "Lab"})
    content = base64.b64encode(gzip.compress(JAN.read_bytes())).decode()
    await system.ok("POST", "/catalog/imports", json={"content_gzip_b64": content})
    updates = (await system.ok("GET", "/catalog/updates", params={"limit": 1000}))["updates"]
    families = {f for u in updates for f in u["product_families"]}
    target = next(u for u in updates if set(u["product_families"]) < families)
    offered = sorted(families - set(target["product_families"]))
    await system.ok("PUT", "/catalog/settings", json={"products": offered})

    async def withdrawn() -> bool:
        found = await system.ok(
            "GET", "/updates", params={"states": ["not_offered"], "limit": 1000}
        )
        return any(u["update_id"] == target["update_id"] for u in found["updates"])

    await eventually(withdrawn, timeout=30, what="approval learning the update is not offered")
    default_view = await system.ok("GET", "/updates", params={"limit": 1000})
    assert target["update_id"] not in {u["update_id"] for u in default_view["updates"]}
    refused = await system.refused(
        "POST",
        "/updates/approve",
        json={
            "updates": [target["update_id"]],
            "groups": [{"group": "Lab", "action": "required_install"}],
        },
    )
    assert "not offered" in refused.text, refused.text
    approvals = await system.ok("GET", "/groups/Lab/approvals")
    assert target["update_id"] not in {a["update_id"] for a in approvals["approvals"]}
