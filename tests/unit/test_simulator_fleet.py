"""A simulated agent's conversation, without a broker: plans and instructions delivered to
the fleet, what it publishes back, and what it downloads (an in-memory content server)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

import aio_pika
import httpx

from libs.bus import Bus
from libs.contracts import agents as ag
from libs.contracts.catalog import DetectionRule, ReturnCode
from libs.contracts.names import Exchange
from libs.contracts.policies import PolicySettings
from libs.contracts.scheduler import AGENT_CHECKIN, AgentCheckin
from libs.service.clock import ManualClock, SpeedClock
from services.simulator.agent import make_agents
from services.simulator.detection import Inventory
from services.simulator.download import PACKAGE_INVALID
from services.simulator.fleet import Fleet, Options

NOW = datetime(2026, 2, 11, 20, 0, tzinfo=UTC)
BODY = b"MSI" * 5000
SHA = hashlib.sha256(BODY).hexdigest()
UPDATE = "0496b64b-4a42-52f3-a887-fcddb4f2f23d"
CODE = "{0A1B2C3D-1111-2222-3333-444455556666}"


@dataclass
class Published:
    """What the fleet published, by message type."""

    sent: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def publish(self, message: aio_pika.Message, *, exchange: str, routing_key: str) -> None:
        assert exchange == Exchange.AGENTS.value
        self.sent.append((routing_key, str((message.headers or {})["ce-type"]), message.body))

    def statuses(self) -> list[ag.AgentStatus]:
        return [
            ag.AgentStatus.model_validate_json(body)
            for _, kind, body in self.sent
            if kind == ag.AGENT_STATUS.type
        ]

    def of(self, kind: str) -> list[tuple[str, bytes]]:
        return [(key, body) for key, k, body in self.sent if k == kind]


def serve(request: httpx.Request) -> httpx.Response:
    """The console's content route, enough for these tests (no Range: no cut downloads)."""
    if "tampered" in str(request.url):
        return httpx.Response(200, content=b"x" + BODY[1:])
    return httpx.Response(200, content=BODY)


def fleet(bus: Published, **options: float) -> Fleet:
    http = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    chosen = Options(
        computers=2,
        failure_rate=0.0,
        interrupt_rate=0.0,
        windows10_rate=0.0,
        request_rate=options.get("request_rate", 0.0),
    )
    made = Fleet(cast(Bus, bus), ManualClock(NOW), chosen, http)
    # One x64 and one x86 computer, whatever the seed drew.
    first, second = sorted(made.agents)
    made.agents[first].inventory = Inventory("x64", "Windows 11", 16 * 2**30)
    made.agents[second].inventory = Inventory("x86", "Windows 11", 4 * 2**30)
    return made


def installation(url_marker: str = "ok") -> ag.Installation:
    return ag.Installation(
        kind="msi",
        files=[
            ag.ContentFile(
                path="notes.msi",
                size=len(BODY),
                sha256=SHA,
                url=f"http://console.test/content/{SHA}/notes.msi?{url_marker}",
                expires_at=datetime(2026, 2, 19, tzinfo=UTC),
            )
        ],
        detection_rules=[DetectionRule(kind="msi_product_code", value=CODE)],
        prerequisites=ag.Prerequisites(package=None, rules=[]),
        requirements=ag.Requirements(
            architecture="x64",
            operating_systems=["Windows 11"],
            min_free_disk_bytes=None,
            min_memory_bytes=None,
        ),
    )


def plan(computer_id: str, *, optional: bool = False) -> ag.ComputerPlan:
    return ag.ComputerPlan(
        computer_id=computer_id,
        policy_id=None,
        policy_name="no policy",
        policy_conflict=None,
        settings=PolicySettings(),
        timezone="UTC",
        next_window=None,
        items=[
            ag.PlanItem(
                update_id=UPDATE,
                kb=None,
                title="Contoso Notes 3.0",
                action="available_install" if optional else "required_install",
                deadline=None,
                state="unknown",
                install_at=None,
                restart="never",
                command_line="/qn",
                return_codes=[ReturnCode(code=0, outcome="success")],
                optional=optional,
                installation=installation(),
            )
        ],
        computed_at=NOW,
    )


def install(computer_id: str, marker: str = "ok") -> ag.InstallInstruction:
    return ag.InstallInstruction(
        computer_id=computer_id,
        reason="immediate",
        updates=[
            ag.InstallItem(
                update_id=UPDATE,
                kb=None,
                action="required_install",
                command_line="/qn",
                forced=False,
                restart="never",
                installation=installation(marker),
            )
        ],
        prompt_user=False,
        issued_at=NOW,
    )


async def deliver(
    made: Fleet, computer_id: str, body: ag.ComputerPlan | ag.InstallInstruction
) -> None:
    spec = ag.PLAN if isinstance(body, ag.ComputerPlan) else ag.INSTALL
    await made.deliver(
        f"computer.{computer_id}.{spec.type.removeprefix('computer.')}",
        spec.type,
        body.model_dump_json().encode(),
    )


async def test_checkins_carry_the_inventory() -> None:
    bus = Published()
    made = fleet(bus)
    x64 = sorted(made.agents)[0]
    update = ag.AgentUpdateInstruction(
        computer_id=x64, version="1.5.0", prompt_restart=False, issued_at=NOW
    )
    # A new agent version starts and checks in.
    await made.deliver(
        f"computer.{x64}.agent-update.v1", ag.AGENT_UPDATE.type, update.model_dump_json().encode()
    )
    ((key, body),) = bus.of(AGENT_CHECKIN.type)
    checkin = AgentCheckin.model_validate_json(body)
    assert key == f"agent.{x64}.checkin.v1"
    assert (checkin.agent_version, checkin.reason) == ("1.5.0", "start")
    assert (checkin.architecture, checkin.operating_system) == ("x64", "Windows 11")
    assert checkin.memory_bytes == 16 * 2**30
    assert checkin.free_disk_bytes == made.agents[x64].disk.free_bytes


async def test_x64_downloads_installs_and_reports_result_and_detection_together() -> None:
    bus = Published()
    made = fleet(bus)
    x64, x86 = sorted(made.agents)
    for computer in (x64, x86):
        await deliver(made, computer, plan(computer))
    detected = {s.computer_id: s.detections[0].state for s in bus.statuses()}
    assert detected == {x64: "needed", x86: "not_applicable"}

    for computer in (x64, x86):
        await deliver(made, computer, install(computer))
    x64_report, x86_report = bus.statuses()[2:]
    assert [(i.update_id, i.return_code) for i in x64_report.installs] == [(UPDATE, 0)]
    assert [(d.update_id, d.state) for d in x64_report.detections] == [(UPDATE, "installed")]
    assert made.agents[x64].disk.holds(DetectionRule(kind="msi_product_code", value=CODE))
    assert [f.return_code for f in made.downloads[x64, UPDATE]] == [None]
    # The x86 computer does not meet the requirement: no download, no attempt.
    assert x86_report.installs == []
    assert [(d.update_id, d.state) for d in x86_report.detections] == [(UPDATE, "not_applicable")]
    assert (x86, UPDATE) not in made.downloads
    assert made.combined == {(x64, UPDATE)}


async def test_content_that_does_not_match_fails_the_install_and_installs_nothing() -> None:
    bus = Published()
    made = fleet(bus)
    x64 = sorted(made.agents)[0]
    await deliver(made, x64, plan(x64))
    await deliver(made, x64, install(x64, "tampered"))
    report = bus.statuses()[-1]
    assert [i.return_code for i in report.installs] == [PACKAGE_INVALID]
    assert [d.state for d in report.detections] == ["needed"]
    assert not made.agents[x64].disk.holds(DetectionRule(kind="msi_product_code", value=CODE))


async def test_an_installed_product_is_detected_and_not_installed_again() -> None:
    bus = Published()
    made = fleet(bus)
    x64 = sorted(made.agents)[0]
    made.agents[x64].disk.add(DetectionRule(kind="msi_product_code", value=CODE))
    await deliver(made, x64, plan(x64))
    await deliver(made, x64, install(x64))
    assert [s.detections[0].state for s in bus.statuses()] == ["installed", "installed"]
    assert all(s.installs == [] for s in bus.statuses())
    assert (x64, UPDATE) not in made.downloads


async def test_a_user_asks_for_an_available_update_once() -> None:
    bus = Published()
    made = fleet(bus, request_rate=1.0)
    x64, x86 = sorted(made.agents)
    for _ in range(2):  # a second plan before the install: no second request
        for computer in (x64, x86):
            await deliver(made, computer, plan(computer, optional=True))
    requests = [
        ag.InstallRequest.model_validate_json(body) for _, body in bus.of(ag.INSTALL_REQUEST.type)
    ]
    assert [(r.computer_id, r.update_id) for r in requests] == [(x64, UPDATE)]
    assert made.requests == {(x64, UPDATE)}


async def test_refusals_are_counted_and_kept() -> None:
    made = fleet(Published())
    x64 = sorted(made.agents)[0]
    rejected = ag.Rejected(
        computer_id=x64,
        message_id="7d1f0c3e-58a2-4b9e-a1f4-2c6b8e9d0a17",
        message_type=ag.AGENT_STATUS.type,
        reason_class="InvalidMessage",
        reason="installs[0].return_code: too large",
        field="installs[0].return_code",
        rejected_at=NOW,
    )
    await made.deliver(
        f"computer.{x64}.rejected.v1", ag.REJECTED.type, rejected.model_dump_json().encode()
    )
    assert made.rejections == [rejected]
    assert made.summary()["rejected"] == 1


def test_a_share_goes_silent_another_is_mute_and_the_rest_of_the_fleet_is_the_same() -> None:
    plain = make_agents(Options(computers=400))
    quiet = make_agents(Options(computers=400, silent_rate=0.1, mute_rate=0.05))
    silent = {c for c, a in quiet.items() if a.goes_silent}
    mute = {c for c, a in quiet.items() if a.mute}
    assert 20 <= len(silent) <= 60
    assert 5 <= len(mute) <= 40
    assert not silent & mute
    assert not any(a.goes_silent or a.mute for a in plain.values())
    # The rates choose computers; they do not change what the seed drew for each one.
    assert [(a.inventory, a.timezone, a.disk.free_bytes) for a in plain.values()] == [
        (a.inventory, a.timezone, a.disk.free_bytes) for a in quiet.values()
    ]
    assert silent == {
        c for c, a in make_agents(Options(computers=400, silent_rate=0.1)).items() if a.goes_silent
    }


async def test_a_mute_computer_is_planned_for_but_never_reports() -> None:
    bus = Published()
    made = fleet(bus)
    x64, x86 = sorted(made.agents)
    made.agents[x64].mute = True
    for computer in (x64, x86):
        await deliver(made, computer, plan(computer))
        await deliver(made, computer, install(computer))
    assert {s.computer_id for s in bus.statuses()} == {x86}
    assert (x64, UPDATE) not in made.installs
    assert made.stats["instructions_ignored"] == 2
    assert made.mute() == [x64]
    assert made.summary()["mute"] == 1


async def test_a_silent_computer_checks_in_reports_then_stops_for_good() -> None:
    bus = Published()
    # A simulated hour passes in 36 ms: the computer goes silent after 4 hours (a check-in
    # every 8 hours before a plan), i.e. right after its first check-in.
    clock = SpeedClock(datetime.now(UTC), 100_000)
    made = Fleet(
        cast(Bus, bus),
        clock,
        Options(computers=2, silent_after=timedelta(hours=4), failure_rate=0.0),
    )
    first, second = sorted(made.agents)
    made.agents[first].goes_silent = True
    tasks = [asyncio.create_task(made.live(agent)) for agent in made.agents.values()]
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            if made.silent() and made.stats["checkins"] >= 4:
                break
        assert made.silent() == [first]
        assert not made.agents[first].online
        checked_in = [
            AgentCheckin.model_validate_json(b).computer_id for _, b in bus.of(AGENT_CHECKIN.type)
        ]
        assert checked_in.count(first) == 1  # its start, then nothing
        assert checked_in.count(second) >= 2  # the other goes on checking in
        # What reaches it now is missed, not answered.
        await deliver(made, first, plan(first))
        assert all(s.computer_id != first for s in bus.statuses())
        assert made.stats["instructions_missed"] == 1
        assert made.summary()["silent"] == made.stats["went_silent"] == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
