"""The simulated agent's own rules: its disk, what it detects, and how it downloads content."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from libs.contracts.agents import ContentFile, Installation, Prerequisites, Requirements
from libs.contracts.catalog import DetectionRule
from services.scheduler.domain import applicability as scheduler_rules
from services.simulator.agent import Options, make_agents
from services.simulator.detection import Architecture, Inventory, detect, unmet
from services.simulator.disk import Disk, detects, install, uninstall
from services.simulator.download import (
    PACKAGE_INVALID,
    PACKAGE_OPEN_FAILED,
    Digest,
    fetch,
    resumes_at,
)

GIB = 1024**3
UPDATE = "5a8c2e4f-1b3d-4f6a-8c9e-0d2f4a6b8c1e"
BODY = bytes(range(256)) * 40  # 10,240 bytes
SHA = hashlib.sha256(BODY).hexdigest()
URL = "http://console.test/content/" + SHA + "/tool.msi?computer=pc-1&expires=1&signature=s"


def rule(kind: str, value: str) -> DetectionRule:
    return DetectionRule.model_validate({"kind": kind, "value": value})


def requirements(
    architecture: str = "both",
    operating_systems: tuple[str, ...] = (),
    disk: int | None = None,
    memory: int | None = None,
) -> Requirements:
    return Requirements.model_validate(
        {
            "architecture": architecture,
            "operating_systems": list(operating_systems),
            "min_free_disk_bytes": disk,
            "min_memory_bytes": memory,
        }
    )


def installation(
    *,
    rules: tuple[DetectionRule, ...] = (),
    needs: Requirements | None = None,
    package: str | None = None,
    prerequisite_rules: tuple[DetectionRule, ...] = (),
    size: int = len(BODY),
) -> Installation:
    return Installation(
        kind="msi",
        files=[
            ContentFile(
                path="tool.msi",
                size=size,
                sha256=SHA,
                url=URL,
                expires_at=datetime(2030, 1, 1, tzinfo=UTC),
            )
        ],
        detection_rules=list(rules),
        prerequisites=Prerequisites(package=package, rules=list(prerequisite_rules)),
        requirements=needs or requirements(),
    )


X64 = Inventory(architecture="x64", operating_system="Windows 11", memory_bytes=16 * GIB)
X86 = Inventory(architecture="x86", operating_system="Windows 10", memory_bytes=4 * GIB)


def test_the_disk_compares_as_windows_does() -> None:
    disk = Disk.fresh(free_bytes=50 * GIB)
    disk.add(
        rule("file_exists", "C:\\Program Files\\Contoso\\notes.exe"),
        rule("msi_product_code", "{0a1b2c3d-1111-2222-3333-444455556666}"),
        rule("registry_key", "HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso\\Notes"),
    )
    assert disk.holds(rule("file_exists", "c:/program files/contoso/NOTES.EXE"))
    assert disk.holds(rule("msi_product_code", "0A1B2C3D-1111-2222-3333-444455556666"))
    assert disk.holds(rule("registry_key", "HKLM\\Software\\Contoso\\Notes\\"))
    assert disk.holds(rule("registry_key", "HKLM\\SOFTWARE\\Contoso"))  # a parent key exists
    assert not disk.holds(rule("registry_key", "HKLM\\SOFTWARE\\Contoso\\Notes\\Plugins"))
    assert not disk.holds(rule("file_exists", "C:\\Program Files\\Contoso\\other.exe"))
    assert disk.holds(rule("file_exists", "C:\\Windows\\System32\\kernel32.dll"))  # Windows


def test_any_detection_rule_holding_means_installed() -> None:
    disk = Disk.fresh(free_bytes=GIB)
    rules = (rule("file_exists", "C:\\Tool\\tool.exe"), rule("registry_key", "HKLM\\SOFTWARE\\T"))
    assert not detects(disk, UPDATE, rules)
    disk.add(rules[1])
    assert detects(disk, UPDATE, rules)


def test_install_leaves_what_detection_looks_for_and_uninstall_takes_it_away() -> None:
    disk = Disk.fresh(free_bytes=GIB)
    code = rule("msi_product_code", "{0A1B2C3D-1111-2222-3333-444455556666}")
    with_rule = installation(rules=(code,))
    install(disk, UPDATE, with_rule)
    assert detects(disk, UPDATE, [code])
    assert disk.free_bytes == GIB - len(BODY)
    uninstall(disk, UPDATE, with_rule)
    assert not detects(disk, UPDATE, [code])
    assert disk.free_bytes == GIB


def test_without_rules_the_default_rule_installs_exactly_once() -> None:
    disk = Disk.fresh(free_bytes=GIB)
    assert not detects(disk, UPDATE, [])
    install(disk, UPDATE, installation())
    assert detects(disk, UPDATE, [])
    assert not detects(disk, "another-update", [])


@pytest.mark.parametrize(
    ("required", "x64", "x86", "arm64"),
    [("x64", True, False, False), ("x86", False, True, False), ("both", True, True, True)],
)
def test_architecture_requirements(required: str, x64: bool, x86: bool, arm64: bool) -> None:
    needs = requirements(required)
    arm = Inventory(architecture="arm64", operating_system="Windows 11", memory_bytes=GIB)
    seen = [not unmet(needs, inventory, GIB) for inventory in (X64, X86, arm)]
    assert seen == [x64, x86, arm64]


def test_operating_system_disk_and_memory_requirements() -> None:
    assert not unmet(requirements(operating_systems=()), X86, GIB)
    assert not unmet(requirements(operating_systems=(" windows 11 ",)), X64, GIB)
    assert unmet(requirements(operating_systems=("Windows 11",)), X86, GIB) == [
        "needs Windows 11, this computer runs Windows 10"
    ]
    assert unmet(requirements(disk=2 * GIB), X64, GIB) == [
        f"needs {2 * GIB} bytes of free disk, this computer has {GIB}"
    ]
    assert not unmet(requirements(disk=GIB), X64, GIB)
    assert unmet(requirements(memory=8 * GIB), X86, GIB) == [
        f"needs {8 * GIB} bytes of memory, this computer has {4 * GIB}"
    ]


def test_detection_order_requirements_then_rules_then_prerequisites() -> None:
    disk = Disk.fresh(free_bytes=10 * GIB)
    file = rule("file_exists", "C:\\Tool\\tool.exe")
    x64_only = installation(rules=(file,), needs=requirements("x64"))
    assert detect(UPDATE, x64_only, X86, disk, {}).state == "not_applicable"
    assert detect(UPDATE, x64_only, X64, disk, {}).state == "needed"
    disk.add(file)
    assert detect(UPDATE, x64_only, X64, disk, {}).state == "installed"
    assert detect(UPDATE, x64_only, X86, disk, {}).state == "not_applicable"

    runtime = rule("registry_key", "HKLM\\SOFTWARE\\Runtime")
    needs_runtime = installation(prerequisite_rules=(runtime,))
    assert detect(UPDATE, needs_runtime, X64, disk, {}).state == "not_applicable"
    disk.add(runtime)
    assert detect(UPDATE, needs_runtime, X64, disk, {}).state == "needed"

    needs_package = installation(package="base-package")
    found = detect(UPDATE, needs_package, X64, disk, {"base-package": "needed"})
    assert (found.state, found.why) == (
        "not_applicable",
        "prerequisite base-package is not installed",
    )
    assert detect(UPDATE, needs_package, X64, disk, {"base-package": "installed"}).state == (
        "needed"
    )


@pytest.mark.parametrize("architecture", ["x86", "x64", "arm64"])
def test_the_agent_and_the_scheduler_agree_on_requirements(architecture: Architecture) -> None:
    """The simulator reads requirements as services/scheduler/domain/applicability.py does."""
    for os_name, required, systems, memory in itertools.product(
        ("Windows 10", "Windows 11"),
        ("x86", "x64", "both"),
        ((), ("Windows 11",), ("windows 10 ", "Windows 11")),
        (None, 8 * GIB),
    ):
        needs = requirements(required, systems, 5 * GIB, memory)
        ours = Inventory(architecture=architecture, operating_system=os_name, memory_bytes=4 * GIB)
        theirs = scheduler_rules.Inventory(
            architecture=architecture,
            operating_system=os_name,
            free_disk_bytes=6 * GIB,
            memory_bytes=4 * GIB,
        )
        assert (not unmet(needs, ours, 6 * GIB)) == scheduler_rules.applies(needs, theirs), needs


def test_inventory_goes_into_every_checkin() -> None:
    agents = make_agents(Options(computers=200, x86_rate=0.25, windows10_rate=0.5, seed=7))
    shares = {arch: sum(a.architecture == arch for a in agents.values()) for arch in ("x86", "x64")}
    assert 30 <= shares["x86"] <= 70
    assert shares["x86"] + shares["x64"] == 200
    agent = agents["sim-00000"]
    checkin = agent.checkin("start", datetime(2026, 2, 11, tzinfo=UTC))
    assert checkin.architecture == agent.architecture
    assert checkin.operating_system in ("Windows 10", "Windows 11")
    assert checkin.free_disk_bytes == agent.disk.free_bytes
    assert checkin.memory_bytes == agent.inventory.memory_bytes
    assert checkin.os_version.startswith("10.0.")


def test_digest_of_a_body_fed_in_chunks() -> None:
    file = installation().files[0]
    digest = Digest()
    for start in range(0, len(BODY), 1000):
        digest.feed(BODY[start : start + 1000])
    assert digest.mismatch(file) is None
    short = Digest()
    short.feed(BODY[:-1])
    assert (
        short.mismatch(file)
        == f"tool.msi: {len(BODY) - 1} bytes received, the plan says {len(BODY)}"
    )
    altered = Digest()
    altered.feed(b"x" + BODY[1:])
    assert (altered.mismatch(file) or "").startswith("tool.msi: sha256 ")


class _Broken(httpx.AsyncByteStream):
    """A body whose connection drops after `keep` bytes."""

    def __init__(self, data: bytes, keep: int) -> None:
        self.data, self.keep = data, keep

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data[: self.keep]
        raise httpx.ReadError("connection reset by peer")


class Server:
    """The console's content route as far as an agent sees it: 200, Range, refusals."""

    def __init__(self, body: bytes = BODY, *, drop_first_after: int | None = None) -> None:
        self.body, self.drop = body, drop_first_after
        self.ranges: list[str | None] = []
        self.honour_range = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        wanted = request.headers.get("range")
        self.ranges.append(wanted)
        if wanted and self.honour_range:
            first = int(wanted.removeprefix("bytes=").rstrip("-"))
            return httpx.Response(
                206,
                content=self.body[first:],
                headers={"Content-Range": f"bytes {first}-{len(self.body) - 1}/{len(self.body)}"},
            )
        if self.drop is not None:
            keep, self.drop = self.drop, None
            return httpx.Response(200, stream=_Broken(self.body, keep))
        return httpx.Response(200, content=self.body)


def client(handler: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_a_download_is_verified() -> None:
    server = Server()
    async with client(server) as http:
        done = await fetch(http, installation().files[0])
    assert (done.return_code, done.received, done.resumed) == (None, len(BODY), 0)
    assert server.ranges == [None]


async def test_an_interrupted_download_resumes_where_it_stopped() -> None:
    server = Server(drop_first_after=4000)
    async with client(server) as http:
        done = await fetch(http, installation().files[0])
    assert (done.return_code, done.resumed) == (None, 1)
    assert server.ranges == [None, "bytes=4000-"]


async def test_a_cut_the_agent_simulates_resumes_too() -> None:
    server = Server()
    async with client(server) as http:
        done = await fetch(http, installation().files[0], cut_after=len(BODY) // 2)
    assert done.return_code is None
    assert server.ranges == [None, f"bytes={len(BODY) // 2}-"]


async def test_a_server_ignoring_the_range_is_read_from_the_start() -> None:
    server = Server(drop_first_after=4000)
    server.honour_range = False
    async with client(server) as http:
        done = await fetch(http, installation().files[0])
    assert done.return_code is None
    assert server.ranges == [None, "bytes=4000-"]


async def test_content_that_is_not_what_the_plan_says_fails_the_install() -> None:
    async with client(Server(b"y" + BODY[1:])) as http:
        altered = await fetch(http, installation().files[0])
    assert altered.return_code == PACKAGE_INVALID
    assert "sha256" in altered.reason
    async with client(Server(BODY + b"more")) as http:
        longer = await fetch(http, installation().files[0])
    assert longer.return_code == PACKAGE_INVALID
    assert "bytes received" in longer.reason


async def test_a_refused_download_fails_the_install_and_says_why() -> None:
    def refuse(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            410,
            json={"type": "urn:lockgate:content:expired", "title": "expired", "status": 410},
            headers={"Content-Type": "application/problem+json"},
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        done = await fetch(http, installation().files[0])
    assert done.return_code == PACKAGE_OPEN_FAILED
    assert (done.refusal, done.reason) == ("expired", "HTTP 410 expired")
    assert PACKAGE_OPEN_FAILED != PACKAGE_INVALID != 1603


async def test_a_connection_that_keeps_dropping_fails_the_install() -> None:
    def drop(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(drop)) as http:
        done = await fetch(http, installation().files[0])
    assert done.return_code == PACKAGE_OPEN_FAILED
    assert "interrupted" in done.reason


def test_a_content_range_names_where_the_body_starts() -> None:
    answer = httpx.Response(206, headers={"Content-Range": "bytes 4000-10239/10240"})
    assert resumes_at(answer) == 4000
    assert resumes_at(httpx.Response(206)) is None
