"""Every computer accounted for (issue 16, Done when): a simulated fleet, the real services as
processes and time an hour a second, in which some computers fail an install, some go silent
and some never report a status: each is its own number per update, per group, per computer,
in the fleet list's filters and on reporting's gauges; an uninstall approval's overdue count
follows the computers still holding the update.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.bus import Bus
from libs.service.clock import SpeedClock
from services.simulator.fleet import Fleet, Options
from tests.integration.test_catalog_msrc import JAN
from tests.integration.test_end_to_end import _b64
from tests.support.infra import Infra
from tests.support.messages import eventually
from tests.support.system import System, running_system

pytestmark = pytest.mark.integration

SPEED = 3600.0
NOT_REPORTING_DAYS = "0.5"
"""Twelve simulated hours (12 s): longer than the 8 hours between an agent's check-ins."""
COMPUTERS = 20
ASAP = {"kind": "as_soon_as_possible"}


@pytest.fixture
async def estate(
    infra: Infra, bus: Bus, log_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[System, Fleet]]:
    monkeypatch.setenv("LOCKGATE_NOT_REPORTING_DAYS", NOT_REPORTING_DAYS)
    monkeypatch.setenv("LOCKGATE_METRICS_SAMPLE_SECONDS", "0.5")
    epoch = datetime.now(UTC)
    fleet = Fleet(
        bus,
        SpeedClock(epoch, SPEED),
        Options(
            computers=COMPUTERS,
            prefix="acct",
            offline_rate=0.0,
            failure_rate=0.0,
            postpone_rate=0.0,
            request_rate=0.0,
        ),
    )
    async with running_system(
        infra, log_dir, tmp_path / "content", epoch=epoch, speed=SPEED
    ) as system:
        try:
            yield system, fleet
        finally:
            await fleet.stop()


def _ids(page: dict[str, Any]) -> set[str]:
    return {c["computer_id"] for c in page["computers"]}


def _gauges(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of one metric: its labels -> value."""
    found: dict[frozenset[tuple[str, str]], float] = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            found[labels] = float(match.group(2))
    return found


def _gauge(samples: dict[frozenset[tuple[str, str]], float], **labels: str) -> float:
    wanted = set(labels.items())
    values = [v for k, v in samples.items() if wanted <= k]
    assert len(values) == 1, f"{labels}: {values}"
    return values[0]


async def test_failed_silent_and_never_reported_are_each_their_own_number(
    estate: tuple[System, Fleet],
) -> None:
    system, fleet = estate
    ok = system.ok
    ids = sorted(fleet.agents)
    alpha, beta = ids[:10], ids[10:]
    silent = {ids[0], ids[1], ids[10]}
    mute = {ids[2], ids[11], ids[12]}
    failing = {ids[3], ids[4], ids[13]}
    holders = {ids[0], ids[10], ids[5], ids[14]}
    """Hold update Y before its uninstall approval: two go silent first, two remove it."""

    # Two Microsoft updates: X required as soon as possible, Y reported on (do not install).
    await ok("POST", "/catalog/imports", json={"content_gzip_b64": _b64(JAN)})

    async def learned() -> bool:
        return len((await ok("GET", "/updates", params={"limit": 10}))["updates"]) >= 2

    await eventually(learned, timeout=60, what="approval learning January's updates")
    first, second = (await ok("GET", "/updates", params={"limit": 2}))["updates"]
    x, y = first["update_id"], second["update_id"]
    for name in ("Alpha", "Beta"):
        await ok("POST", "/groups", json={"name": name})
    await ok(
        "POST",
        "/updates/approve",
        json={
            "updates": [x],
            "groups": [
                {"group": g, "action": "required_install", "deadline": ASAP}
                for g in ("Alpha", "Beta")
            ],
        },
    )
    await ok(
        "POST",
        "/updates/approve",
        json={"updates": [y], "groups": [{"group": "All computers", "action": "do_not_install"}]},
    )

    # Until a computer checks in, the overview and the list say none is managed yet.
    overview = await ok("GET", "/reports/overview")
    assert overview["computers"] == 0
    assert "No computer is managed yet" in overview["enrolment"]
    assert "lockgate broker agents" in overview["enrolment"]
    assert (await ok("GET", "/computers"))["managed"] == 0

    # The fleet: X needed everywhere (three installs fail), Y held by four computers.
    for computer, agent in fleet.agents.items():
        agent.states[x] = "needed"
        agent.states[y] = "installed" if computer in holders else "needed"
        agent.mute = computer in mute
    fleet.failures |= {(c, x) for c in failing}
    await fleet.start()

    async def registered() -> bool:
        return bool((await ok("GET", "/groups"))["groups"][0]["computers"] >= COMPUTERS)

    await eventually(registered, timeout=60, what="every agent registered")
    await ok("POST", "/groups/Alpha/members", json={"computers": alpha})
    await ok("POST", "/groups/Beta/members", json={"computers": beta})

    speaking = [c for c in ids if c not in mute]

    async def installed_everywhere() -> bool:
        return all((c, x) in fleet.installs and (c, y) in fleet.detected for c in speaking)

    await eventually(installed_everywhere, timeout=60, what="every speaking computer's install")
    assert {c for c in speaking if fleet.installs[c, x] not in (0, 3010)} == failing

    # Three go silent; then Y is to be uninstalled: the two still speaking remove it.
    for computer in sorted(silent):
        fleet.go_silent(fleet.agents[computer])
    await ok(
        "POST",
        "/updates/approve",
        json={
            "updates": [y],
            "groups": [{"group": "All computers", "action": "uninstall", "deadline": ASAP}],
        },
    )

    async def removed() -> bool:
        return all(fleet.installs.get((c, y)) in (0, 3010) for c in holders - silent)

    await eventually(removed, timeout=60, what="the uninstalls of the computers still speaking")

    async def gone_quiet() -> bool:
        page = await ok("GET", "/computers", params={"not_reporting": "true"})
        return _ids(page) == silent

    await eventually(gone_quiet, timeout=60, what="the silent computers not reporting")

    # Per update: failed, silent and never reported are three numbers.
    async def counts_settled() -> bool:
        """Every report sent has been taken (the agents' sends are not the ingest)."""
        counts = (await ok("GET", f"/reports/updates/{x}"))["update"]["counts"]
        taken = counts["installed"] + counts["installed_pending_restart"] + counts["failed"]
        return bool(taken + counts["not_reporting"] + counts["no_status"] == COMPUTERS)

    await eventually(counts_settled, timeout=60, what="every report on X counted")
    counts = (await ok("GET", f"/reports/updates/{x}"))["update"]["counts"]
    assert (counts["failed"], counts["not_reporting"], counts["no_status"], counts["needed"]) == (
        3,
        3,
        3,
        0,
    )
    overview = await ok("GET", "/reports/overview")
    assert overview["computers"] == COMPUTERS
    assert overview["computers_not_reporting"] == 3

    # Per group.
    expected = {"Alpha": (2, 2, 1), "Beta": (1, 1, 2)}  # failed, not reporting, no status
    for group, (failed, quiet, unknown) in expected.items():
        report = await ok("GET", f"/reports/groups/{group}")
        (update,) = [u for u in report["updates"] if u["update_id"] == x]
        c = update["counts"]
        assert (c["failed"], c["not_reporting"], c["no_status"]) == (failed, quiet, unknown), group

    # Per computer.
    def state_of(report: dict[str, Any], update_id: str) -> str:
        (found,) = [u["state"] for u in report["updates"] if u["update_id"] == update_id]
        return str(found)

    gone = await ok("GET", f"/reports/computers/{ids[0]}")
    assert gone["not_reporting"] is True
    never = await ok("GET", f"/reports/computers/{ids[2]}")
    assert never["not_reporting"] is False
    assert state_of(never, x) == "no_status"
    broken = await ok("GET", f"/reports/computers/{ids[3]}")
    assert (broken["not_reporting"], state_of(broken, x)) == (False, "failed")

    # The list's filters.
    async def listed(**params: str) -> set[str]:
        return _ids(await ok("GET", "/computers", params=params))

    assert await listed(failed="true") == failing
    assert await listed(not_reporting="true", group="Alpha") == silent & set(alpha)
    # Past a deadline: lacking X (failed, never reported) or still holding Y (the silent).
    assert await listed(past_deadline="true") == failing | mute | (holders & silent)
    assert (await ok("GET", "/computers", params={"limit": 100}))["managed"] == COMPUTERS

    # The gauges, as Prometheus scrapes them from reporting.
    async with httpx.AsyncClient() as http:

        async def scraped() -> str:
            return (await http.get(system.service_urls["reporting"] + "/metrics")).text

        async def gauges_settled() -> bool:
            """One sample taken after everything above (gauges are sampled periodically)."""
            text = await scraped()
            samples = _gauges(text, "lockgate_update_overdue_computers")
            quiet = _gauges(text, "lockgate_computers_not_reporting")
            return sorted(samples.values()) == [2.0, 6.0] and quiet == {frozenset(): 3.0}

        await eventually(gauges_settled, timeout=30, what="reporting's gauges sampled")
        text = await scraped()
    assert _gauges(text, "lockgate_computers_not_reporting") == {frozenset(): 3.0}
    assert _gauges(text, "lockgate_computers_managed") == {frozenset(): float(COMPUTERS)}
    per_update = _gauges(text, "lockgate_update_computers")
    x_samples = {k: v for k, v in per_update.items() if v and ("state", "failed") in k}
    assert sorted(x_samples.values()) == [3.0]
    (x_labels,) = x_samples
    x_name = dict(x_labels)["update"]
    for state, n in (("failed", 3), ("not_reporting", 3), ("no_status", 3), ("needed", 0)):
        assert _gauge(per_update, update=x_name, state=state) == n, state
    overdue = _gauges(text, "lockgate_update_overdue_computers")
    # X: the three failed and the three never reported; Y: the two silent still holding it.
    assert _gauge(overdue, update=x_name) == 6
    assert sorted(overdue.values()) == [2.0, 6.0]
    groups = _gauges(text, "lockgate_group_update_states")
    # Computer x update pairs (X and Y): the silent ones are not reporting on both, the mute
    # ones never reported either; only X's installs failed.
    for group, (failed, quiet, unknown) in {"Alpha": (2, 4, 2), "Beta": (1, 2, 4)}.items():
        found = tuple(
            _gauge(groups, group=group, state=s) for s in ("failed", "not_reporting", "no_status")
        )
        assert found == (failed, quiet, unknown), group
