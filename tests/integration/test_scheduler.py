"""The scheduler with a hand-moved clock, with the real catalog and approval, against real
RabbitMQ and PostgreSQL: plans on check-in, windows, deadlines, restarts, catch-up, replicas.

Agents are played by the test: it publishes check-ins, status and restart reports on
`lockgate.agents` and reads each computer's instructions from a queue bound to
`computer.<id>.#`, as a real agent would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import asyncpg
import pytest
from prometheus_client import REGISTRY as METRICS

from libs.bus import Bus, RpcClient, RpcError, to_amqp
from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import policies as p
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.contracts.registry import REGISTRY
from libs.contracts.scheduler import AGENT_CHECKIN, AgentCheckin
from libs.contracts.spec import CommandSpec, Contract
from libs.db.pool import drop_database, ensure_database
from libs.domain.agent_reports import DEFAULT_RETURN_CODES
from libs.service.clock import ManualClock
from libs.service.pipeline import REASON_HEADER
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.integration.test_approval import delete_queues, lockgate
from tests.integration.test_catalog_msrc import JAN, import_request
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_checkins

pytestmark = pytest.mark.integration

PARIS = "Europe/Paris"


class Agent:
    """One simulated computer: publishes its reports, keeps the instructions it receives."""

    def __init__(
        self, fleet: Fleet, computer_id: str, timezone: str, architecture: str = "x64"
    ) -> None:
        self.fleet, self.computer_id, self.timezone = fleet, computer_id, timezone
        self.architecture = architecture
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.version = "1.0.0"
        """The agent version it reports at check-in."""

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        kind = str((message.headers or {})["ce-type"])
        REGISTRY.event(kind).model.model_validate_json(message.body)
        self.received.append((kind, json.loads(message.body)))
        await message.ack()

    def of(self, spec: Any) -> list[dict[str, Any]]:
        return [body for kind, body in self.received if kind == spec.type]

    async def wait_for(
        self, spec: Any, count: int = 1, timeout: float = 20
    ) -> list[dict[str, Any]]:
        async def arrived() -> bool:
            return len(self.of(spec)) >= count

        await eventually(
            arrived, timeout=timeout, what=f"{count} {spec.type} for {self.computer_id}"
        )
        return self.of(spec)

    async def send(self, spec: Any, body: Any) -> None:
        envelope = Envelope.new(
            source=f"agent/{self.computer_id}", type=spec.type, subject=self.computer_id
        )
        await self.fleet.bus.publish(
            to_amqp(envelope, body.model_dump_json().encode()),
            exchange=Exchange.AGENTS.value,
            routing_key=spec.routing_key(self.computer_id),
        )

    async def checkin(self, reason: str = "periodic", *, user: bool = True) -> None:
        await self.send(
            AGENT_CHECKIN,
            AgentCheckin(
                computer_id=self.computer_id,
                hostname=f"{self.computer_id}.corp.example",
                timezone=self.timezone,
                checked_in_at=self.fleet.clock.now(),
                user_logged_on=user,
                reason=reason,
                agent_version=self.version,
                architecture=self.architecture,
                operating_system="Windows 11",
                free_disk_bytes=64 * 1024**3,
                memory_bytes=16 * 1024**3,
            ),
        )

    async def installed(self, update_id: str, code: int, *, user: bool = True) -> None:
        now = self.fleet.clock.now()
        await self.send(
            ag.AGENT_STATUS,
            ag.AgentStatus(
                computer_id=self.computer_id,
                reported_at=now,
                installs=[
                    ag.InstallResult(
                        update_id=update_id,
                        return_code=code,
                        started_at=now - timedelta(minutes=3),
                        finished_at=now,
                    )
                ],
                user_logged_on=user,
            ),
        )

    async def restart_event(self, event: str) -> None:
        await self.send(
            ag.AGENT_RESTART,
            ag.AgentRestart(
                computer_id=self.computer_id,
                event=event,
                at=self.fleet.clock.now(),
                user_logged_on=True,
            ),
        )


class Fleet:
    def __init__(
        self, bus: Bus, rpc: RpcClient, db: asyncpg.Connection, clock: ManualClock
    ) -> None:
        self.bus, self.rpc, self.db, self.clock = bus, rpc, db, clock
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self.cli: dict[str, str] = {}
        """Environment for `lockgate`, pointed at the console."""

    async def agent(
        self, computer_id: str, timezone: str = PARIS, architecture: str = "x64"
    ) -> Agent:
        agent = Agent(self, computer_id, timezone, architecture)
        assert self.channel is not None
        queue = await self.channel.declare_queue(f"tests.agent.{computer_id}", exclusive=True)
        await queue.bind(Exchange.AGENTS.value, routing_key=f"computer.{computer_id}.#")
        await queue.consume(agent.on_message)
        await agent.checkin("start")
        await agent.wait_for(ag.PLAN)
        return agent

    async def advance(self, by: timedelta) -> None:
        """Move the scheduler's clock, then let timers and the planner catch up."""
        self.clock.advance(by)
        await self.quiet()

    async def quiet(self) -> None:
        """Until nothing is due, no plan is to recompute (marked or in a range) and every
        outbox is drained."""

        async def idle() -> bool:
            busy = await self.db.fetchval(
                "SELECT (SELECT count(*) FROM scheduler.timers WHERE due_at <= $1)"
                " + (SELECT count(*) FROM scheduler.computers WHERE plan_dirty_at IS NOT NULL)"
                " + (SELECT count(*) FROM scheduler.plan_ranges)"
                " + (SELECT count(*) FROM scheduler.outbox WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM approval.outbox WHERE published_at IS NULL)",
                self.clock.now(),
            )
            return bool(busy == 0)

        await eventually(idle, timeout=30, what="the scheduler to settle")
        await asyncio.sleep(0.3)  # deliveries to the agents' queues

    async def approve(self, kb: str, group: str, deadline: a.DeadlineChoice) -> None:
        await self.rpc.call(
            a.APPROVE,
            a.Approve(
                updates=[kb],
                groups=[a.GroupChoice(group=group, action="required_install", deadline=deadline)],
            ),
        )

    async def policy(self, name: str, group: str, **settings: Any) -> p.Policy:
        await self.rpc.call(
            p.CREATE_POLICY,
            p.CreatePolicy(name=name, settings=p.PolicySettings.model_validate(settings)),
        )
        return await self.rpc.call(p.ASSIGN_POLICY, p.AssignPolicy(policy=name, group=group))


START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


def scheduler_settings(infra: Infra, url: str) -> Settings:
    return Settings(
        amqp_url=infra.amqp_url,
        database_url=url,
        heartbeat_seconds=60,
        timer_poll_seconds=0.05,
        timer_batch_size=20,
        planner_poll_seconds=0.05,
        metrics_sample_seconds=0.1,
    )


@contextlib.asynccontextmanager
async def scheduler_system(
    infra: Infra, bus: Bus, name: str, *, approval_on_clock: bool = False
) -> AsyncIterator[tuple[Settings, asyncpg.Connection, ManualClock]]:
    """Catalog, approval and the scheduler in this event loop on a database of their own
    (`<session database>_<name>`), the scheduler (and approval, if asked) reading a manual
    clock at START; their settings, a connection to the database and the clock. Their queues
    and the database are removed after."""
    url = f"{infra.database_url}_{name}"
    await ensure_database(url)
    clock = ManualClock(START)
    settings = scheduler_settings(infra, url)
    processes = [
        ServiceProcess(CATALOG, settings, http_port=0),
        ServiceProcess(APPROVAL, settings, http_port=0, clock=clock if approval_on_clock else None),
        ServiceProcess(SCHEDULER, settings, http_port=0, clock=clock),
    ]
    db: asyncpg.Connection | None = None
    try:
        for process in processes:
            await process.start()
        db = await asyncpg.connect(url)
        yield settings, db, clock
    finally:
        if db is not None:
            await db.close()
        for process in processes:
            await process.stop()
        await delete_queues(bus, (CATALOG, APPROVAL, SCHEDULER))
        await drop_database(url)


def db_suffix(request: pytest.FixtureRequest, prefix: str) -> str:
    """A short database suffix of its own per test."""
    return f"{prefix}{abs(hash(request.node.name)) % 100_000}"


@pytest.fixture
async def fleet(infra: Infra, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    async with scheduler_system(infra, bus, db_suffix(request, "sch")) as (settings, db, clock):
        found = Fleet(bus, RpcClient(bus, source="tests", timeout=60), db, clock)
        found.channel = await bus.connection.channel()
        try:
            async with running_console(settings) as console:
                found.cli = console.cli_env(infra.env())
                yield found
        finally:
            await found.channel.close()


async def first_kb(fleet: Fleet, restart: str) -> c.UpdateSnapshot:
    """Import January; an update with the given restart behaviour, once approval knows it."""
    await fleet.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    found = await fleet.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
    update = next(
        u for u in sorted(found.updates, key=lambda u: u.kb or "") if u.restart == restart
    )

    async def known() -> bool:
        approval = await fleet.db.fetchval(
            "SELECT count(*) FROM approval.updates WHERE update_id = $1::uuid", update.update_id
        )
        scheduler = await fleet.db.fetchval(
            "SELECT count(*) FROM scheduler.updates WHERE update_id = $1::uuid", update.update_id
        )
        return bool(approval == scheduler == 1)

    await eventually(known, timeout=30, what="approval and scheduler learning the update")
    return update


def local(instant: str) -> datetime:
    return datetime.fromisoformat(instant).replace(tzinfo=ZoneInfo(PARIS)).astimezone(UTC)


async def test_a_checkin_is_answered_with_the_plan(fleet: Fleet) -> None:
    agent = await fleet.agent("pc-plan")
    (plan,) = agent.of(ag.PLAN)
    assert plan["policy_name"] == "no policy"
    assert plan["settings"] == p.RECOMMENDED.model_dump(mode="json")
    assert plan["items"] == []
    await agent.checkin()
    plans = await agent.wait_for(ag.PLAN, 2)
    assert plans[-1]["computer_id"] == "pc-plan"
    via_rpc = await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-plan"))
    assert via_rpc.policy_id is None
    with pytest.raises(RpcError) as unknown:
        await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-never-seen"))
    assert unknown.value.body.field == "computer"


async def test_one_week_deadline_installs_at_the_window_then_forces_at_the_deadline(
    fleet: Fleet,
) -> None:
    update = await first_kb(fleet, "always")
    await fleet.policy(
        "Nightly",
        a.ROOT_GROUP_NAME,
        use_maintenance_window=False,
        scheduled_time="03:00",
        allow_immediate_install=False,
    )
    agent = await fleet.agent("pc-week")
    await fleet.approve(update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="one_week"))
    await fleet.quiet()
    plan = agent.of(ag.PLAN)[-1]
    (item,) = plan["items"]
    assert plan["policy_name"] == "Nightly"
    assert item["action"] == "required_install"
    window = local("2026-03-03T03:00")  # the next 03:00 in Paris after Monday 10:00 local
    assert datetime.fromisoformat(plan["next_window"]) == window
    assert datetime.fromisoformat(item["install_at"]) == window
    assert agent.of(ag.INSTALL) == []

    await fleet.advance(window - fleet.clock.now() + timedelta(seconds=1))
    (install,) = await agent.wait_for(ag.INSTALL)
    assert install["reason"] == "window"
    assert [(u["update_id"], u["forced"]) for u in install["updates"]] == [
        (update.update_id, False)
    ]

    # Not installed (the agent never reports it): at the deadline the install is forced.
    # What firing reads beside the timers (TimerPlan) is gone, as for timers stored before
    # it was kept: they fire from the stored plan, which keeps it again.
    await fleet.db.execute("DELETE FROM scheduler.timer_plans")
    deadline = datetime.fromisoformat(item["deadline"])
    await fleet.advance(deadline - fleet.clock.now() + timedelta(seconds=1))
    forced = [i for i in agent.of(ag.INSTALL) if i["reason"] == "deadline"]
    assert len(forced) == 1
    assert forced[0]["updates"][0]["forced"] is True
    assert await fleet.db.fetchval("SELECT count(*) FROM scheduler.timer_plans") == 1
    # The window timer fired once more (the next night) and is kept for the next one.
    windows = [i for i in agent.of(ag.INSTALL) if i["reason"] == "window"]
    assert len(windows) == 2


async def test_3010_leads_to_delay_prompt_postponement_reprompt_and_restart(
    fleet: Fleet,
) -> None:
    update = await first_kb(fleet, "always")
    await fleet.policy(
        "Office",
        a.ROOT_GROUP_NAME,
        restart_delay_minutes=15,
        restart_prompt_interval_minutes=30,
        allow_immediate_install=False,
    )
    agent = await fleet.agent("pc-restart")
    await fleet.approve(update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="none"))
    await fleet.quiet()
    await agent.installed(update.update_id, 3010)
    await fleet.quiet()

    async def gauged(pending: float) -> bool:
        return METRICS.get_sample_value("lockgate_restarts_pending") == pending

    await eventually(lambda: gauged(1), timeout=10, what="lockgate_restarts_pending 1")
    assert METRICS.get_sample_value("lockgate_timers_scheduled", {"kind": "restart"}) == 1
    assert METRICS.get_sample_value("lockgate_timers_due", {"kind": "restart"}) == 0
    await fleet.advance(timedelta(minutes=14))
    assert agent.of(ag.RESTART_PROMPT) == [], "nothing before the restart delay"
    await fleet.advance(timedelta(minutes=1, seconds=1))
    (first,) = await agent.wait_for(ag.RESTART_PROMPT)
    assert (first["prompt"], first["may_postpone"], first["restart_at"]) == (1, True, None)

    await agent.restart_event("postponed")
    await fleet.quiet()
    await fleet.advance(timedelta(minutes=29))
    assert len(agent.of(ag.RESTART_PROMPT)) == 1, "nothing before the prompt interval"
    await fleet.advance(timedelta(minutes=1, seconds=1))
    prompts = await agent.wait_for(ag.RESTART_PROMPT, 2)
    assert prompts[1]["prompt"] == 2

    await agent.restart_event("restarted")
    await fleet.quiet()
    await eventually(lambda: gauged(0), timeout=10, what="lockgate_restarts_pending 0")
    await fleet.advance(timedelta(hours=2))
    assert len(agent.of(ag.RESTART_PROMPT)) == 2, "no prompt after the restart"
    plan = agent.of(ag.PLAN)[-1]
    assert plan["items"][0]["state"] == "installed"
    assert plan["items"][0]["install_at"] is None


async def test_without_user_control_the_user_is_warned_then_the_computer_restarts(
    fleet: Fleet,
) -> None:
    update = await first_kb(fleet, "always")
    await fleet.policy(
        "Kiosk", a.ROOT_GROUP_NAME, user_controls_restart=False, restart_delay_minutes=1
    )
    kiosk = await fleet.agent("pc-kiosk")
    nobody = await fleet.agent("pc-nobody")
    await fleet.approve(update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="none"))
    await fleet.quiet()
    await kiosk.installed(update.update_id, 3010, user=True)
    await nobody.installed(update.update_id, 3010, user=False)
    await fleet.quiet()
    (now_restart,) = await nobody.wait_for(ag.RESTART)
    assert now_restart["reason"] == "nobody_logged_on"
    await fleet.advance(timedelta(minutes=1, seconds=1))
    (warning,) = await kiosk.wait_for(ag.RESTART_PROMPT)
    assert warning["may_postpone"] is False
    issued = datetime.fromisoformat(warning["issued_at"])
    assert datetime.fromisoformat(warning["restart_at"]) == issued + timedelta(minutes=5)
    await fleet.advance(timedelta(minutes=5))
    (restart,) = await kiosk.wait_for(ag.RESTART)
    assert restart["reason"] == "warning_elapsed"


async def test_an_offline_computer_catches_up_after_the_missed_install_delay(
    fleet: Fleet,
) -> None:
    update = await first_kb(fleet, "always")
    await fleet.policy(
        "Laptops",
        a.ROOT_GROUP_NAME,
        use_maintenance_window=True,
        missed_install_delay_minutes=10,
        allow_immediate_install=False,
    )
    agent = await fleet.agent("pc-away")
    await fleet.approve(update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="none"))
    await fleet.quiet()
    # The laptop is off for two days: windows pass, their instructions wait unread.
    await fleet.advance(timedelta(days=2))
    fired = len(agent.of(ag.INSTALL))
    await agent.checkin("start")
    await fleet.quiet()
    await fleet.advance(timedelta(minutes=9))
    assert len(agent.of(ag.INSTALL)) == fired, "nothing before the missed-install delay"
    await fleet.advance(timedelta(minutes=1, seconds=1))
    catch_up = [i for i in agent.of(ag.INSTALL) if i["reason"] == "catch_up"]
    assert len(catch_up) == 1
    assert catch_up[0]["updates"][0]["update_id"] == update.update_id


def tool_update() -> c.UpdateSnapshot:
    """A third-party update that installs without a restart, as the catalog publishes it."""
    return c.UpdateSnapshot(
        update_id="7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        revision=1,
        origin="third_party",
        kb=None,
        title="Contoso PDF Reader 24.1",
        classification="Updates",
        severity=None,
        products=[],
        product_families=["Contoso"],
        cves=[],
        release_date=START,
        restart="never",
        fixed_builds=[],
        url=None,
        supersedes=[],
        superseded_by=[],
        superseded_by_kbs=[],
        expired=False,
        size_bytes=1024,
        sha256="0" * 64,
        return_codes=list(DEFAULT_RETURN_CODES),
        package=c.Package(
            kind="exe",
            installer="reader.exe",
            files=[c.PackageFile(path="reader.exe", size=1024)],
            architecture="x64",
            operating_systems=["Windows 11"],
            detection_rules=[],
            prerequisite_package=None,
            prerequisite_rules=[],
            command_line="/quiet /norestart",
        ),
    )


async def test_updates_needing_no_restart_install_at_once_when_allowed(fleet: Fleet) -> None:
    update = tool_update()
    envelope = Envelope.new(source="lockgate/catalog", type=c.UPDATE_PUBLISHED.type)
    await fleet.bus.publish(
        to_amqp(envelope, c.UpdatePublished(update=update).model_dump_json().encode()),
        exchange=Exchange.EVENTS.value,
        routing_key=c.UPDATE_PUBLISHED.type,
    )

    async def known() -> bool:
        return bool(
            await fleet.db.fetchval(
                "SELECT (SELECT count(*) FROM approval.updates)"
                " + (SELECT count(*) FROM scheduler.updates)"
            )
            == 2
        )

    await eventually(known, timeout=30, what="approval and scheduler learning the update")
    agent = await fleet.agent("pc-now")
    await fleet.approve(update.update_id, a.ROOT_GROUP_NAME, a.DeadlineChoice())
    await fleet.quiet()
    (install,) = await agent.wait_for(ag.INSTALL)
    assert install["reason"] == "immediate"
    assert install["updates"][0]["command_line"] == "/quiet /norestart"
    await fleet.advance(timedelta(minutes=1))
    assert len([i for i in agent.of(ag.INSTALL) if i["reason"] == "immediate"]) == 1


async def test_nearest_group_policy_wins_and_removal_returns_to_defaults(fleet: Fleet) -> None:
    agent = await fleet.agent("pc-policy")
    for group in ("Lab", "Ops"):
        await fleet.rpc.call(a.CREATE_GROUP, a.CreateGroup(name=group))
    await fleet.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Lab bench", parent="Lab"))
    await fleet.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-policy"], group="Lab bench")
    )
    await fleet.quiet()
    await fleet.policy("Everyone", a.ROOT_GROUP_NAME, detection_frequency_hours=12)
    await fleet.advance(timedelta(minutes=1))  # assignments are ordered by time
    await fleet.policy("Lab machines", "Lab", detection_frequency_hours=20)
    await fleet.quiet()
    plan = await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-policy"))
    assert plan.policy_name == "Lab machines", "the parent's policy beats All computers'"
    assert plan.settings.detection_frequency_hours == 20
    assert plan.policy_conflict is None

    # In Ops too, with its own policy assigned later: same distance? No: Ops is nearer
    # (its own group) than Lab (a parent of Lab bench), and the conflict is reported.
    await fleet.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-policy"], group="Ops")
    )
    await fleet.advance(timedelta(minutes=1))
    await fleet.policy("Operations", "Ops", detection_frequency_hours=16)
    await fleet.quiet()
    plan = await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-policy"))
    assert plan.policy_name == "Operations"
    assert plan.policy_conflict is not None
    # Lab bench gets its own policy, assigned after Ops': a tie, the most recent wins.
    await fleet.advance(timedelta(minutes=1))
    await fleet.policy("Bench", "Lab bench", detection_frequency_hours=8)
    plan = await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-policy"))
    assert plan.policy_name == "Bench"
    for group in ("Ops", "Lab bench"):
        await fleet.rpc.call(p.UNASSIGN_POLICY, p.UnassignPolicy(group=group))
    # Lab bench reaches Lab's policy and Ops reaches All computers', both one level up:
    # a tie that the more recent assignment (Lab's) wins, still a conflict.
    plan = await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-policy"))
    assert plan.policy_name == "Lab machines"
    assert plan.policy_conflict is not None
    await fleet.rpc.call(p.UNASSIGN_POLICY, p.UnassignPolicy(group="Lab"))
    plan = await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-policy"))
    assert (plan.policy_name, plan.policy_conflict) == ("Everyone", None)
    await fleet.rpc.call(p.DELETE_POLICY, p.PolicyRef(policy="Everyone"))
    plan = await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer="pc-policy"))
    assert (plan.policy_name, plan.settings) == ("no policy", p.RECOMMENDED)
    await fleet.quiet()
    assert agent.of(ag.PLAN)[-1]["policy_name"] == "no policy"


async def test_bad_input(fleet: Fleet, bus: Bus) -> None:
    class RawCreate(Contract):
        name: str
        settings: dict[str, Any]

    raw = CommandSpec(
        type=p.CREATE_POLICY.type,
        request=RawCreate,
        reply=p.Policy,
        handler="scheduler",
        summary="raw",
    )
    with pytest.raises(RpcError) as out_of_range:
        await fleet.rpc.call(raw, RawCreate(name="x", settings={"restart_delay_minutes": 45}))
    message = out_of_range.value.body.message
    assert "restart_delay_minutes" in message
    assert "45" in message
    assert "30" in message
    await fleet.rpc.call(p.CREATE_POLICY, p.CreatePolicy(name="y"))
    with pytest.raises(RpcError) as unknown_setting:
        await fleet.rpc.call(p.EDIT_POLICY, p.EditPolicy(policy="y", settings={"reboot": True}))
    assert "reboot" in unknown_setting.value.body.message
    with pytest.raises(RpcError) as bad_time:
        await fleet.rpc.call(
            p.EDIT_POLICY, p.EditPolicy(policy="y", settings={"scheduled_time": "24:00"})
        )
    assert "scheduled_time" in bad_time.value.body.message
    assert await fleet.db.fetchval("SELECT count(*) FROM scheduler.policies") == 1

    # A status from a computer that never checked in is parked with the reason.
    ghost = Agent(fleet, "pc-ghost", PARIS)
    await ghost.installed("3f0c5d8e-8a52-5c8e-9d0e-2b7f4c1a9e11", 0)
    channel = await bus.connection.channel()
    dlq = await channel.get_queue(dead_letter_queue_name("scheduler.agent-reports"))

    async def parked() -> bool:
        return bool((await dlq.declare()).message_count)

    await eventually(parked, timeout=20, what="the ghost's status in the DLQ")
    message_in_dlq = await dlq.get(timeout=5)
    assert "not registered" in str((message_in_dlq.headers or {})[REASON_HEADER])
    await channel.close()


async def test_two_replicas_never_fire_the_same_timer_twice(
    fleet: Fleet, infra: Infra, bus: Bus
) -> None:
    """A second scheduler on the same database and clock: every deadline fires once."""
    update = await first_kb(fleet, "always")
    await fleet.policy("No immediate", a.ROOT_GROUP_NAME, allow_immediate_install=False)
    computers = [f"pc-r{i:03d}" for i in range(300)]
    await publish_checkins(bus, [checkin(cid) for cid in computers])

    async def registered() -> bool:
        count = await fleet.db.fetchval("SELECT count(*) FROM scheduler.computers")
        return bool(count == len(computers))

    await eventually(registered, timeout=60, what="300 computers registered")
    url = await fleet.db.fetchval("SELECT current_database()")
    second = ServiceProcess(
        SCHEDULER,
        scheduler_settings(infra, f"{infra.database_url.rsplit('/', 1)[0]}/{url}"),
        http_port=0,
        clock=fleet.clock,
    )
    await second.start()
    try:
        channel = await bus.connection.channel()
        tap = await channel.declare_queue("tests.all-installs", exclusive=True)
        await tap.bind(Exchange.AGENTS.value, routing_key="computer.*.install.v1")
        seen: list[dict[str, Any]] = []

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append(json.loads(message.body))
            await message.ack()

        await tap.consume(keep)
        await fleet.approve(
            update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="as_soon_as_possible")
        )
        await fleet.quiet()
        plan = await fleet.rpc.call(ag.GET_PLAN, ag.GetPlan(computer=computers[0]))
        deadline = plan.items[0].deadline
        assert deadline is not None
        await fleet.advance(deadline - fleet.clock.now() + timedelta(seconds=1))

        async def all_forced() -> bool:
            return len({i["computer_id"] for i in seen if i["reason"] == "deadline"}) >= 300

        await eventually(all_forced, timeout=60, what="a forced install for every computer")
        await asyncio.sleep(1.0)
        forced = [i["computer_id"] for i in seen if i["reason"] == "deadline"]
        assert sorted(forced) == sorted(computers), "each computer exactly once"
        await channel.close()
    finally:
        await second.stop()


async def test_operators_manage_policies_from_the_cli(fleet: Fleet) -> None:
    await fleet.agent("pc-cli")
    code, created, _ = await lockgate(
        fleet.cli,
        "policies",
        "create",
        "Evenings",
        "--set",
        "scheduled_time=19:30",
        "--set",
        "use_maintenance_window=false",
        "--set",
        "restart_delay_minutes=20",
    )
    assert code == 0
    assert created["settings"]["scheduled_time"] == "19:30"
    assert created["settings"]["detection_frequency_hours"] == 8, "unset: recommended"
    code, _, _ = await lockgate(
        fleet.cli, "policies", "assign", "Evenings", "--group", a.ROOT_GROUP_NAME
    )
    assert code == 0
    code, plan, _ = await lockgate(fleet.cli, "computers", "plan", "pc-cli")
    assert (code, plan["policy_name"]) == (0, "Evenings")
    code, _, err = await lockgate(
        fleet.cli, "policies", "edit", "Evenings", "--set", "restart_prompt_interval_minutes=2000"
    )
    assert code == 1
    assert "restart_prompt_interval_minutes" in err
    assert "2000" in err
    code, listed, _ = await lockgate(fleet.cli, "policies", "list")
    assert listed["policies"][0]["settings"]["restart_prompt_interval_minutes"] == 30


async def test_a_mandatory_agent_release_installs_at_the_agent_update_schedule(
    fleet: Fleet,
) -> None:
    await fleet.policy(
        "Agents on Saturday",
        a.ROOT_GROUP_NAME,
        agent_update_schedule={"day": "saturday", "time": "02:00"},
        prompt_agent_update_restart=False,
    )
    agent = await fleet.agent("pc-agent")
    await fleet.quiet()
    assert agent.of(ag.PLAN)[-1]["agent_update"] is None, "no release yet"

    optional = await fleet.rpc.call(
        p.PUBLISH_AGENT_RELEASE, p.PublishAgentRelease(version="1.0.1", mandatory=False)
    )
    assert optional.mandatory is False
    await fleet.quiet()
    assert agent.of(ag.PLAN)[-1]["agent_update"] is None, "an optional release is not pushed"

    await fleet.rpc.call(
        p.PUBLISH_AGENT_RELEASE, p.PublishAgentRelease(version="1.1.0", notes="faster scans")
    )
    await fleet.quiet()
    saturday = local("2026-03-07T02:00")  # the first Saturday 02:00 in Paris after START
    planned = agent.of(ag.PLAN)[-1]["agent_update"]
    assert planned == {
        "version": "1.1.0",
        "install_at": saturday.isoformat().replace("+00:00", "Z"),
        "prompt_restart": False,
    }
    await fleet.advance(saturday - fleet.clock.now() - timedelta(minutes=1))
    assert agent.of(ag.AGENT_UPDATE) == [], "nothing before the schedule"
    await fleet.advance(timedelta(minutes=2))
    (sent,) = await agent.wait_for(ag.AGENT_UPDATE)
    assert (sent["version"], sent["prompt_restart"]) == ("1.1.0", False)

    agent.version = "1.1.0"  # it installed the new agent and checks in with it
    await agent.checkin("start")
    await fleet.quiet()
    assert agent.of(ag.PLAN)[-1]["agent_update"] is None
    await fleet.advance(timedelta(days=8))
    assert len(agent.of(ag.AGENT_UPDATE)) == 1, "an up-to-date agent is not told again"

    with pytest.raises(RpcError) as older:
        await fleet.rpc.call(p.PUBLISH_AGENT_RELEASE, p.PublishAgentRelease(version="1.0.9"))
    assert older.value.body.field == "version"
    assert "not newer than the latest release 1.1.0" in str(older.value)
    code, listed, _ = await lockgate(fleet.cli, "agent-releases", "list")
    assert code == 0
    assert [(r["version"], r["mandatory"]) for r in listed["releases"]] == [
        ("1.1.0", True),
        ("1.0.1", False),
    ]
    assert listed["latest_mandatory"] == "1.1.0"


async def publish_update(fleet: Fleet, update: c.UpdateSnapshot) -> None:
    """Publish an update as the catalog would, and wait until approval and scheduler know it."""
    envelope = Envelope.new(source="lockgate/catalog", type=c.UPDATE_PUBLISHED.type)
    await fleet.bus.publish(
        to_amqp(envelope, c.UpdatePublished(update=update).model_dump_json().encode()),
        exchange=Exchange.EVENTS.value,
        routing_key=c.UPDATE_PUBLISHED.type,
    )

    async def known() -> bool:
        found = await fleet.db.fetchval(
            "SELECT (SELECT count(*) FROM approval.updates WHERE update_id = $1::uuid)"
            " + (SELECT count(*) FROM scheduler.updates WHERE update_id = $1::uuid)",
            update.update_id,
        )
        return bool(found == 2)

    await eventually(known, timeout=30, what="approval and scheduler learning the update")


async def test_third_party_items_carry_the_installation_and_requirements_decide_applicability(
    fleet: Fleet,
) -> None:
    """x64 computers get the content signed for each of them; x86 ones find the x64-only
    update not applicable and are never told to install it."""
    update = tool_update()
    await publish_update(fleet, update)
    await fleet.policy("At once", a.ROOT_GROUP_NAME, allow_immediate_install=True)
    x64 = await fleet.agent("pc-x64")
    x86 = await fleet.agent("pc-x86", architecture="x86")
    await fleet.approve(update.update_id, a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="one_week"))
    await fleet.quiet()

    [item] = x64.of(ag.PLAN)[-1]["items"]
    assert (item["state"], item["optional"]) == ("unknown", False)
    installation = item["installation"]
    assert installation["requirements"]["architecture"] == "x64"
    [installer] = installation["files"]
    assert (installer["path"], installer["sha256"]) == ("reader.exe", update.sha256)
    assert "/content/" in installer["url"]
    assert "computer=pc-x64" in installer["url"]
    (install,) = await x64.wait_for(ag.INSTALL)
    assert install["updates"][0]["installation"] == installation
    assert install["updates"][0]["restart"] == "never"

    [skipped] = x86.of(ag.PLAN)[-1]["items"]
    assert (skipped["state"], skipped["install_at"]) == ("not_applicable", None)
    await fleet.advance(timedelta(days=8))  # window, deadline: nothing for the x86 computer
    assert x86.of(ag.INSTALL) == []

    # The computer is replaced by an x64 one under the same id: the update applies again.
    x86.architecture = "x64"
    await x86.checkin()
    await fleet.quiet()
    assert x86.of(ag.PLAN)[-1]["items"][0]["state"] == "unknown"
    await x86.wait_for(ag.INSTALL)


async def test_a_user_asks_for_an_available_install_and_gets_it(fleet: Fleet, bus: Bus) -> None:
    update = tool_update()
    await publish_update(fleet, update)
    agent = await fleet.agent("pc-portal")
    await fleet.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[update.update_id],
            groups=[a.GroupChoice(group=a.ROOT_GROUP_NAME, action="available_install")],
        ),
    )
    await fleet.quiet()
    [item] = agent.of(ag.PLAN)[-1]["items"]
    assert (item["action"], item["optional"], item["install_at"]) == (
        "available_install",
        True,
        None,
    )
    assert agent.of(ag.INSTALL) == [], "nothing installs an available update unasked"

    asked_at = fleet.clock.now()
    await agent.send(
        ag.INSTALL_REQUEST,
        ag.InstallRequest(
            computer_id=agent.computer_id, update_id=update.update_id, requested_at=asked_at
        ),
    )
    (install,) = await agent.wait_for(ag.INSTALL)
    assert install["reason"] == "requested"
    assert install["prompt_user"] is False
    [wanted] = install["updates"]
    assert (wanted["update_id"], wanted["action"], wanted["forced"]) == (
        update.update_id,
        "required_install",
        False,
    )
    assert wanted["installation"] == item["installation"]
    recorded = await fleet.db.fetchrow(
        "SELECT computer_id, update_id::text, requested_at, answered_at"
        " FROM scheduler.install_requests"
    )
    assert recorded is not None
    assert dict(recorded) == {
        "computer_id": "pc-portal",
        "update_id": update.update_id,
        "requested_at": asked_at,
        "answered_at": fleet.clock.now(),
    }

    # An update that is not optional for the computer is refused, with the reason.
    await agent.send(
        ag.INSTALL_REQUEST,
        ag.InstallRequest(
            computer_id=agent.computer_id,
            update_id="3f0c5d8e-8a52-5c8e-9d0e-2b7f4c1a9e11",
            requested_at=asked_at,
        ),
    )
    channel = await bus.connection.channel()
    dlq = await channel.get_queue(dead_letter_queue_name("scheduler.agent-reports"))

    async def parked() -> bool:
        return bool((await dlq.declare()).message_count)

    await eventually(parked, timeout=20, what="the refused request in the DLQ")
    refused = await dlq.get(timeout=5)
    assert "a user may only ask for an update the plan lists as optional" in str(
        (refused.headers or {})[REASON_HEADER]
    )
    await channel.close()
    assert len(agent.of(ag.INSTALL)) == 1
    assert await fleet.db.fetchval("SELECT count(*) FROM scheduler.install_requests") == 1


async def test_an_update_withdrawn_by_the_catalog_settings_is_not_planned(fleet: Fleet) -> None:
    update = tool_update().model_copy(update={"restart": "always"})
    await publish_update(fleet, update)
    agent = await fleet.agent("pc-offers")
    await fleet.approve(update.update_id, a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="none"))
    await fleet.quiet()
    assert [i["update_id"] for i in agent.of(ag.PLAN)[-1]["items"]] == [update.update_id]

    async def offer(spec: Any, settings_version: int) -> None:
        change = c.UpdateOfferChanged(
            update_id=update.update_id,
            kb=None,
            title=update.title,
            offered=spec is c.UPDATE_OFFERED,
            reason="test",
            revision=update.revision,
            settings_version=settings_version,
        )
        envelope = Envelope.new(source="lockgate/catalog", type=spec.type)
        await fleet.bus.publish(
            to_amqp(envelope, change.model_dump_json().encode()),
            exchange=Exchange.EVENTS.value,
            routing_key=spec.type,
        )
        await asyncio.sleep(0.5)
        await fleet.quiet()

    await offer(c.UPDATE_WITHDRAWN, 2)
    assert agent.of(ag.PLAN)[-1]["items"] == []
    await offer(c.UPDATE_OFFERED, 1)  # decided under older settings: ignored
    assert agent.of(ag.PLAN)[-1]["items"] == []
    await offer(c.UPDATE_OFFERED, 3)
    assert [i["update_id"] for i in agent.of(ag.PLAN)[-1]["items"]] == [update.update_id]
