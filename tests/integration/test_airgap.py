"""A disconnected (air-gapped) site: the whole system with every outbound connection refused.

Every process runs with tests/support/airgap/ first on PYTHONPATH, so its sitecustomize.py
refuses, before any packet leaves, each connect or name lookup that is not loopback, and
records the attempt. The four services, the console and `lockgate` run that way, and the
simulated fleet runs in this process under the same guard. The site gets its catalog from a
folder carried in (data/msrc with its SHA256SUMS), an operator approves an update and
uploads a third-party installer, the computers get plans, download the installer from the
console and install; then no attempt may have been recorded, and every process must have
armed the guard.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.bus import Bus
from libs.contracts.approval import UPDATE_STATES
from libs.service.clock import SpeedClock
from services.catalog.sources.manifest import write_manifest
from services.simulator.fleet import Fleet, Options
from tests.integration.test_catalog_msrc import DATA
from tests.support.airgap import sitecustomize as guard
from tests.support.infra import Infra
from tests.support.installers import build_msi
from tests.support.messages import eventually
from tests.support.processes import ROOT
from tests.support.system import System, running_system

pytestmark = pytest.mark.integration

GUARD_DIR = Path(guard.__file__).resolve().parent
SPEED = 3600.0
COMPUTERS = 6
PROCESSES = ("catalog", "approval", "scheduler", "reporting", "console")


def guarded(log: Path) -> dict[str, str]:
    """Environment that arms the guard in a Python process, recording to `log`."""
    path = os.pathsep.join(p for p in (str(GUARD_DIR), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, guard.LOG_ENV: str(log)}


def attempts(log: Path) -> list[dict[str, Any]]:
    """The outbound attempts the guard refused and recorded (in any process)."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def armed(log: Path) -> list[list[str]]:
    """The command line of every process that armed the guard."""
    marker = Path(str(log) + ".armed")
    return [json.loads(line)["argv"] for line in marker.read_text().splitlines() if line]


def lockgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "--json", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


SELF_CHECK = """
import json, socket
found = {}
server = socket.create_server(("127.0.0.1", 0))
with socket.create_connection(server.getsockname(), timeout=5):
    found["loopback"] = "connected"
server.close()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for name, attempt in [
    ("connect", lambda: socket.create_connection(("192.0.2.10", 443), timeout=5)),
    ("resolve", lambda: socket.getaddrinfo("api.msrc.microsoft.com", 443)),
    ("udp", lambda: udp.sendto(b"x", ("192.0.2.10", 53))),
]:
    try:
        attempt()
        found[name] = "went out"
    except OSError as error:
        found[name] = type(error).__name__
print(json.dumps(found))
"""


def test_the_guard_refuses_outbound_traffic_and_records_it(infra: Infra, tmp_path: Path) -> None:
    """Self-check: under the guard a process reaches loopback, but a connect to another
    address, a name lookup and a datagram out are refused and recorded; and `lockgate`
    fetching a document from the MSRC API (the connected side's way) fails and is recorded."""
    log = tmp_path / "outbound.jsonl"
    env = {**os.environ, **guarded(log)}
    probe = subprocess.run(
        [sys.executable, "-c", SELF_CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(probe.stdout) == {
        "loopback": "connected",
        "connect": "OutboundRefused",
        "resolve": "gaierror",
        "udp": "OutboundRefused",
    }
    url = "https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2026-Jan"
    fetched = lockgate(infra.env(**guarded(log)), "catalog", "import-msrc", url)
    assert fetched.returncode == 1
    assert "air-gap guard: resolving 'api.msrc.microsoft.com' refused" in fetched.stderr
    recorded = [(a["call"], a["address"]) for a in attempts(log)]
    assert recorded == [
        ("connect", "('192.0.2.10', 443)"),
        ("getaddrinfo", "'api.msrc.microsoft.com'"),
        ("sendto", "('192.0.2.10', 53)"),
        ("getaddrinfo", "'api.msrc.microsoft.com'"),
    ]
    assert "services.cli.main" in attempts(log)[-1]["argv"]
    assert len(armed(log)) == 2


class Site:
    def __init__(self, system: System, fleet: Fleet, log: Path, cli_env: dict[str, str]) -> None:
        self.system, self.fleet, self.log, self.cli_env = system, fleet, log, cli_env
        self.ok = system.ok


@pytest.fixture
async def site(infra: Infra, bus: Bus, log_dir: Path, tmp_path: Path) -> AsyncIterator[Site]:
    """The whole system, every process guarded; the fleet in this process, guarded too."""
    log = tmp_path / "outbound.jsonl"
    epoch = datetime.now(UTC)
    fleet = Fleet(
        bus,
        SpeedClock(epoch, SPEED),
        Options(
            computers=COMPUTERS,
            prefix="gap",
            offline_rate=0.0,
            failure_rate=0.0,
            windows10_rate=0.0,
            x86_rate=0.0,
            interrupt_rate=0.0,
        ),
    )
    async with running_system(
        infra, log_dir, tmp_path / "content", epoch=epoch, speed=SPEED, extra_env=guarded(log)
    ) as system:
        token = system.http.headers["Authorization"].removeprefix("Bearer ")
        cli_env = infra.env(**guarded(log), LOCKGATE_URL=system.console_url, LOCKGATE_TOKEN=token)
        disarm = guard.install(str(log))
        try:
            yield Site(system, fleet, log, cli_env)
        finally:
            await fleet.stop()
            disarm()
    # Stopping tried nothing outbound either.
    assert attempts(log) == [], json.dumps(attempts(log), indent=1)


async def test_an_air_gapped_site_imports_approves_and_installs(site: Site, tmp_path: Path) -> None:
    ok, fleet = site.ok, site.fleet
    # Connected side: the documents downloaded and their manifest written; carried in.
    folder = tmp_path / "carried-in"
    shutil.copytree(DATA, folder)
    write_manifest(folder)
    imported = await asyncio.to_thread(
        lockgate, site.cli_env, "catalog", "import-msrc", str(folder)
    )
    assert imported.returncode == 0, imported.stderr
    imports = json.loads(imported.stdout)["imports"]
    assert [i["document_id"] for i in imports] == ["2026-Jan", "2026-Feb"]
    published = sum(i["published"] for i in imports)

    async def approval_knows_them() -> bool:
        found = await ok("GET", "/updates", params={"limit": 1000, "states": list(UPDATE_STATES)})
        return bool(found["total"] >= published)

    await eventually(approval_knows_them, timeout=60, what="approval learning the imports")
    await ok("POST", "/groups", json={"name": "Disconnected"})
    await fleet.start()
    computers = sorted(fleet.agents)

    async def registered() -> bool:
        listed = await ok("GET", "/groups")
        return bool(listed["groups"][0]["computers"] >= COMPUTERS)

    await eventually(registered, timeout=60, what="every agent registered")
    await ok("POST", "/groups/Disconnected/members", json={"computers": computers})

    # A Microsoft update from the carried-in documents, and a third-party installer whose
    # content the console serves: both required as soon as possible.
    updates = (await ok("GET", "/catalog/updates", params={"limit": 1000}))["updates"]
    target = sorted(
        (u for u in updates if u["offered"] and not u["superseded_by"] and not u["expired"]),
        key=lambda u: u["kb"] or "",
    )[0]
    msi = build_msi(tmp_path, name="Offline Notes", version="1.0.0", manufacturer="Contoso")
    third_party = await site.system.upload(
        msi.path,
        {
            "description": {"classification": "Updates"},
            "requirements": {"architecture": "both", "operating_systems": ["Windows 11"]},
        },
    )

    async def msi_known() -> bool:
        found = await ok("GET", "/updates", params={"states": ["third_party"]})
        return bool(found["updates"])

    await eventually(msi_known, timeout=30, what="approval learning the installer")
    for update_id in (target["update_id"], third_party["update_id"]):
        await ok(
            "POST",
            "/updates/approve",
            json={
                "updates": [update_id],
                "groups": [
                    {
                        "group": "Disconnected",
                        "action": "required_install",
                        "deadline": {"kind": "as_soon_as_possible"},
                    }
                ],
            },
        )

    ids = (target["update_id"], third_party["update_id"])

    async def installed_where_needed() -> bool:
        """Every computer detected both; each that needed one installed it."""
        first = {(c, u): fleet.detected.get((c, u)) for c in computers for u in ids}
        return None not in first.values() and all(
            key in fleet.installs for key, state in first.items() if state == "needed"
        )

    await eventually(installed_where_needed, timeout=120, what="the installs of the approvals")
    installs = {key: code for key, code in fleet.installs.items() if key[1] in ids}
    assert {u for _, u in installs} == set(ids)
    assert set(installs.values()) <= {0, 3010}
    # The installer came from the console, verified, by every computer that installed it.
    msi_installs = [c for c, u in installs if u == third_party["update_id"]]
    assert msi_installs
    for computer in msi_installs:
        files = fleet.downloads[computer, third_party["update_id"]]
        assert files
        assert all(f.return_code is None for f in files)

    async def reported() -> bool:
        for update_id in ids:
            report = await ok("GET", f"/reports/updates/{update_id}")
            counts = report["update"]["counts"]
            done = counts["installed"] + counts["installed_pending_restart"]
            if done < sum(1 for _, u in installs if u == update_id):
                return False
        return True

    await eventually(reported, timeout=60, what="reporting counting the installs")

    # Nothing tried to leave the site, and the guard was on in every process.
    assert attempts(site.log) == [], json.dumps(attempts(site.log), indent=1)
    commands = [" ".join(argv) for argv in armed(site.log)]
    for name in PROCESSES:
        assert any(f"-m services.{name}" in c for c in commands), (name, commands)
    assert any("services.cli.main" in c for c in commands)
