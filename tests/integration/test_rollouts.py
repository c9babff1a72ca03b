"""Rollouts over three rings with the real catalog, approval, scheduler and reporting, against
real RabbitMQ and PostgreSQL: a simulated fleet's agents report installs and failures, the
approval service's clock is moved past each ring's delay, and its gate task asks reporting for
the rings' counts. One rollout completes; one stops at a failing gate, held with why in the
event and in `lockgate rollouts show`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import pytest

from libs.bus import Bus, RpcClient, RpcError, to_amqp
from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import rollouts as ro
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from libs.contracts.registry import REGISTRY
from libs.contracts.rings import RingGate
from libs.db.pool import drop_database, ensure_database
from libs.service.clock import ManualClock
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.integration.test_approval import delete_queues, run_lockgate
from tests.integration.test_catalog_msrc import JAN, import_request
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_checkins

pytestmark = pytest.mark.integration

SERVICES = (CATALOG, APPROVAL, SCHEDULER, REPORTING)
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RINGS = {"Pilot": 10, "Early": 10, "Broad": 10}
"""Ring groups and how many simulated computers each holds."""
GATE = RingGate(delay_hours=24, min_installed_percent=90, max_failed_percent=10, min_reports=8)


class Rollouts:
    """The four services (approval on a hand-moved clock), the console for the CLI, and a tap
    on every `approval.rollout.*` event."""

    def __init__(
        self, bus: Bus, rpc: RpcClient, db: asyncpg.Connection, clock: ManualClock
    ) -> None:
        self.bus, self.rpc, self.db, self.clock = bus, rpc, db, clock
        self.cli: dict[str, str] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def tap(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event_type = str((message.headers or {})["ce-type"])
        REGISTRY.event(event_type).model.model_validate_json(message.body)  # matches its model
        self.events.append((event_type, json.loads(message.body)))
        await message.ack()

    def of(self, spec: Any) -> list[dict[str, Any]]:
        return [body for event_type, body in self.events if event_type == spec.type]

    async def event(self, spec: Any, count: int = 1) -> list[dict[str, Any]]:
        """Until `count` events of `spec` were seen."""

        async def seen() -> bool:
            return len(self.of(spec)) >= count

        await eventually(seen, timeout=30, what=f"{count} {spec.type}")
        return self.of(spec)

    async def fleet(self) -> str:
        """The catalog's January updates, the fleet checked in, each ring's computers in its
        group, known to reporting; returns the update rolled out."""
        await self.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
        computers = [f"pc-{ring.lower()}-{i}" for ring, n in RINGS.items() for i in range(n)]
        await publish_checkins(self.bus, [checkin(cid) for cid in computers])
        expected = await self.db.fetchval("SELECT count(*) FROM catalog.updates")

        async def known() -> bool:
            got = await self.db.fetchrow(
                "SELECT (SELECT count(*) FROM reporting.updates) AS ru,"
                " (SELECT count(*) FROM reporting.computers) AS rc,"
                " (SELECT count(*) FROM approval.updates) AS au,"
                " (SELECT count(*) FROM approval.computers) AS ac"
            )
            return got is not None and tuple(got) == (
                expected,
                len(computers),
                expected,
                len(computers),
            )

        await eventually(known, timeout=60, what="approval and reporting learning the fleet")
        for ring in RINGS:
            await self.rpc.call(a.CREATE_GROUP, a.CreateGroup(name=ring))
            await self.rpc.call(
                a.CHANGE_MEMBERSHIP,
                a.ChangeMembership(computers=self.members(ring), group=ring),
            )

        async def members_known() -> bool:
            n = await self.db.fetchval("SELECT count(*) FROM reporting.memberships")
            return bool(n == len(computers))

        await eventually(members_known, timeout=30, what="reporting learning the ring groups")
        found = await self.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
        return sorted(found.updates, key=lambda u: u.kb or "")[0].update_id

    @staticmethod
    def members(ring: str) -> list[str]:
        return [f"pc-{ring.lower()}-{i}" for i in range(RINGS[ring])]

    async def report(self, update_id: str, codes: dict[str, int]) -> None:
        """Agents publish their install results (return code per computer) as agents do."""
        at = datetime.now(UTC)
        for computer_id, code in codes.items():
            body = ag.AgentStatus(
                computer_id=computer_id,
                reported_at=at,
                detections=[],
                installs=[
                    ag.InstallResult(
                        update_id=update_id,
                        return_code=code,
                        started_at=at - timedelta(minutes=2),
                        finished_at=at - timedelta(minutes=1),
                    )
                ],
            )
            envelope = Envelope.new(
                source=f"agent/{computer_id}", type=ag.AGENT_STATUS.type, subject=computer_id
            )
            await self.bus.publish(
                to_amqp(envelope, body.model_dump_json().encode()),
                exchange=Exchange.AGENTS.value,
                routing_key=ag.AGENT_STATUS.routing_key(computer_id),
            )

        async def counted() -> bool:
            n = await self.db.fetchval(
                "SELECT count(*) FROM reporting.computer_updates WHERE update_id = $1::uuid"
                " AND computer_id = ANY ($2::text[]) AND last_return_code IS NOT NULL",
                update_id,
                list(codes),
            )
            return bool(n == len(codes))

        await eventually(counted, timeout=30, what="reporting counting the install results")

    async def show(self, reference: str) -> ro.Rollout:
        return await self.rpc.call(ro.SHOW_ROLLOUT, ro.RolloutRef(rollout=reference))

    async def explicit_on(self, group: str, update_id: str) -> a.Approval | None:
        found = await self.rpc.call(a.GROUP_APPROVALS, a.GroupApprovals(group=group))
        states = [s for s in found.approvals if s.update_id == update_id]
        return states[0].explicit if states else None

    async def past_delay(self) -> None:
        """Move approval's clock to one second past the current ring's delay."""
        self.clock.advance(timedelta(hours=GATE.delay_hours, seconds=1))


@pytest.fixture
async def rollouts(
    infra: Infra, bus: Bus, request: pytest.FixtureRequest
) -> AsyncIterator[Rollouts]:
    url = f"{infra.database_url}_roll{abs(hash(request.node.name)) % 100_000}"
    await ensure_database(url)
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=url,
        heartbeat_seconds=60,
        rollout_poll_seconds=0.2,
    )
    clock = ManualClock(START)
    processes = [
        ServiceProcess(s, settings, http_port=0, clock=clock if s is APPROVAL else None)
        for s in SERVICES
    ]
    for process in processes:
        await process.start()
    channel = await bus.connection.channel()
    tap = await channel.declare_queue("tests.rollout-tap", exclusive=True)
    await tap.bind(Exchange.EVENTS.value, routing_key="approval.rollout.#")
    db = await asyncpg.connect(url)
    found = Rollouts(bus, RpcClient(bus, source="tests", timeout=60), db, clock)
    await tap.consume(found.tap)
    try:
        async with running_console(settings) as console:
            found.cli = console.cli_env(infra.env())
            yield found
    finally:
        await channel.close()
        await db.close()
        for process in processes:
            await process.stop()
        await delete_queues(bus, SERVICES)
        await drop_database(url)


async def test_a_three_ring_rollout_completes_as_each_gate_passes(rollouts: Rollouts) -> None:
    update_id = await rollouts.fleet()
    code, out, err = await run_lockgate(
        rollouts.cli,
        "--json",
        "rollouts",
        "start",
        update_id,
        "--ring",
        "Pilot",
        "--ring",
        "Early",
        "--ring",
        "Broad",
        "--deadline",
        "1w",
        "--delay-hours",
        str(GATE.delay_hours),
        "--min-installed",
        str(GATE.min_installed_percent),
        "--max-failed",
        str(GATE.max_failed_percent),
        "--min-reports",
        str(GATE.min_reports),
    )
    assert code == 0, err
    started = ro.Rollout.model_validate_json(out)
    assert (started.state, started.rings_started) == ("running", 1)
    assert started.next_ring_due_at == START + timedelta(hours=24)
    (event,) = await rollouts.event(ro.ROLLOUT_STARTED)
    assert event["rollout"]["rollout_id"] == started.rollout_id
    pilot = await rollouts.explicit_on("Pilot", update_id)
    assert pilot is not None
    assert (pilot.action, pilot.approved_by) == (
        "required_install",
        f"rollout:{started.rollout_id}",
    )
    assert pilot.deadline.at == START + timedelta(weeks=1)
    assert await rollouts.explicit_on("Early", update_id) is None

    # Every pilot installs; before the delay is over nothing moves.
    await rollouts.report(update_id, dict.fromkeys(rollouts.members("Pilot"), 0))
    rollouts.clock.advance(timedelta(hours=23))
    await asyncio.sleep(1.0)  # several runs of the gate task
    waiting = await rollouts.show(started.rollout_id)
    assert (waiting.rings_started, waiting.gate_figures) == (1, None)
    assert await rollouts.explicit_on("Early", update_id) is None

    # Paused fleet-wide, the gate over Pilot would pass past the delay but waits, saying why:
    # a pause stops the update spreading, so no ring is approved under it.
    await rollouts.rpc.call(
        a.PAUSE_UPDATE, a.PauseUpdate(update=update_id, reason="pilot complaints")
    )
    rollouts.clock.advance(timedelta(hours=1, seconds=1))
    ring_two_at = rollouts.clock.now()

    async def paused_gate() -> bool:
        figures = (await rollouts.show(started.rollout_id)).gate_figures
        return figures is not None and figures.verdict == "waiting"

    await eventually(paused_gate, timeout=30, what="the gate measured under the pause")
    shown = await rollouts.show(started.rollout_id)
    assert shown.gate_figures is not None
    assert shown.gate_figures.why.startswith("paused fleet-wide by ")
    assert "(pilot complaints)" in shown.gate_figures.why
    assert (shown.state, shown.rings_started) == ("running", 1)
    assert await rollouts.explicit_on("Early", update_id) is None
    assert not rollouts.of(ro.GATE_PASSED)

    # Resumed, the next run of the gate passes and Early starts, its deadline from now.
    await rollouts.rpc.call(a.RESUME_UPDATE, a.ResumeUpdate(update=update_id, reason="false alarm"))
    (passed,) = await rollouts.event(ro.GATE_PASSED)
    figures = ro.GateFigures.model_validate(passed["figures"])
    assert (figures.verdict, figures.rings_measured, figures.reported) == ("passed", 1, 10)
    assert (figures.installed, figures.failed, figures.installed_percent) == (10, 0, 100.0)
    assert passed["ring"]["group_name"] == "Early"
    early = await rollouts.explicit_on("Early", update_id)
    assert early is not None
    assert early.deadline.at == ring_two_at + timedelta(weeks=1)
    assert await rollouts.explicit_on("Broad", update_id) is None

    # Early installs but one computer that has not reported yet (no status is not a report):
    # the next gate counts the 19 reports of both rings.
    early_codes = dict.fromkeys(rollouts.members("Early")[:-1], 0)
    await rollouts.report(update_id, early_codes)
    await rollouts.past_delay()
    await rollouts.event(ro.GATE_PASSED, 2)
    (completed,) = await rollouts.event(ro.ROLLOUT_COMPLETED)
    done = ro.Rollout.model_validate(completed["rollout"])
    assert (done.state, done.rings_started) == ("completed", 3)
    assert [ring.started_by for ring in done.rings] == ["start", "gate", "gate"]
    assert done.gate_figures is not None
    assert (done.gate_figures.rings_measured, done.gate_figures.reported) == (2, 19)
    assert await rollouts.explicit_on("Broad", update_id) is not None
    rings_started = await rollouts.event(ro.RING_STARTED, 3)
    assert [e["ring"]["group_name"] for e in rings_started] == ["Pilot", "Early", "Broad"]
    assert not rollouts.of(ro.GATE_HELD)

    code, out, err = await run_lockgate(rollouts.cli, "rollouts", "show", started.rollout_id)
    assert code == 0, err
    assert "completed" in out
    assert "gate passed" in out
    assert "19 reported" in out


async def test_a_rollout_stops_at_a_failing_gate_held_with_why(rollouts: Rollouts) -> None:
    update_id = await rollouts.fleet()
    started = await rollouts.rpc.call(
        ro.START_ROLLOUT,
        ro.StartRollout(
            update=update_id,
            rings=["Pilot", "Early", "Broad"],
            deadline=a.DeadlineChoice(kind="two_weeks"),
            gate=GATE,
        ),
    )
    # 8 pilots install, 2 fail (1603: not in the default map): 20% failed, above 10%.
    pilots = rollouts.members("Pilot")
    codes = {**dict.fromkeys(pilots[:8], 0), **dict.fromkeys(pilots[8:], 1603)}
    await rollouts.report(update_id, codes)
    await rollouts.past_delay()
    (held,) = await rollouts.event(ro.GATE_HELD)
    why = "20% failed (2 of 10 reports): failures must stay below 10%"
    assert held["reason"] == why
    assert held["figures"]["failed"] == 2
    assert held["figures"]["verdict"] == "held"
    assert held["rollout"]["state"] == "held"
    assert held["ring"]["group_name"] == "Early"

    # Held: time passing does not start Early.
    await rollouts.past_delay()
    await asyncio.sleep(1.0)
    shown = await rollouts.show(started.rollout_id)
    assert (shown.state, shown.rings_started, shown.held_because) == ("held", 1, why)
    assert await rollouts.explicit_on("Early", update_id) is None
    assert not rollouts.of(ro.GATE_PASSED)
    code, out, err = await run_lockgate(rollouts.cli, "rollouts", "show", started.rollout_id)
    assert code == 0, err
    assert f"HELD: {why}" in out
    assert "2 failed (20%)" in out

    # A second rollout of the same update is refused while this one is held.
    with pytest.raises(RpcError, match="already has a rollout held"):
        await rollouts.rpc.call(
            ro.START_ROLLOUT, ro.StartRollout(update=update_id, rings=["Early", "Broad"])
        )

    # The operator looks, then gives go: Early starts now, whatever the gate; then cancels.
    code, out, err = await run_lockgate(
        rollouts.cli, "rollouts", "go", started.rollout_id, "--reason", "lab machines"
    )
    assert code == 0, err
    (go,) = await rollouts.event(ro.ROLLOUT_GO)
    assert (go["reason"], go["ring"]["group_name"]) == ("lab machines", "Early")
    assert await rollouts.explicit_on("Early", update_id) is not None
    # A ring of a rollout still running cannot be deleted, even once emptied.
    await rollouts.rpc.call(
        a.CHANGE_MEMBERSHIP,
        a.ChangeMembership(computers=rollouts.members("Broad"), group="Broad", member=False),
    )
    with pytest.raises(RpcError, match="'Broad' is a ring of rollouts still running or held"):
        await rollouts.rpc.call(a.DELETE_GROUP, a.DeleteGroup(group="Broad"))
    cancelled = await rollouts.rpc.call(
        ro.CANCEL_ROLLOUT, ro.RolloutDecision(rollout=update_id, reason="next month's is out")
    )
    assert (cancelled.state, cancelled.rings_started) == ("cancelled", 2)
    await rollouts.event(ro.ROLLOUT_CANCELLED)
    await rollouts.past_delay()
    await asyncio.sleep(1.0)
    assert await rollouts.explicit_on("Broad", update_id) is None


async def test_a_rule_with_a_gate_rolls_updates_out_over_its_groups(rollouts: Rollouts) -> None:
    """A rule with `rollout` starts a rollout per update it picks (its first group approved
    now, the others after their gates), and never a second one for an update."""
    await rollouts.fleet()
    catalog = await rollouts.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
    approvable = [u for u in catalog.updates if u.offered and not u.superseded_by and not u.expired]
    kinds = Counter((u.classification, tuple(u.product_families)) for u in approvable)
    (classification, families), _ = kinds.most_common(1)[0]
    update_id = next(
        u.update_id
        for u in approvable
        if (u.classification, tuple(u.product_families)) == (classification, families)
    )
    spec = a.RuleSpec(
        name="Rings",
        products=list(families),
        classifications=[classification],
        groups=["Pilot", "Early", "Broad"],
        deadline="one_week",
        rollout=GATE,
    )
    with pytest.raises(RpcError, match=r"rule.groups\[1\]: group 'Pilot' is already ring 1"):
        await rollouts.rpc.call(
            a.CREATE_RULE,
            a.CreateRule(rule=spec.model_copy(update={"groups": ["Pilot", "Pilot"]})),
        )
    rule = await rollouts.rpc.call(a.CREATE_RULE, a.CreateRule(rule=spec))
    assert rule.rollout == GATE
    await rollouts.rpc.call(
        ro.START_ROLLOUT, ro.StartRollout(update=update_id, rings=["Pilot", "Early"], gate=GATE)
    )
    preview = await rollouts.rpc.call(a.RUN_RULE, a.RunRule(rule="Rings", dry_run=True))
    assert preview.updates_approved, "the rule picks other updates of that kind"
    assert update_id not in preview.updates_approved  # already rolled out
    assert {s.group_name for s in preview.approvals} == {"Pilot"}
    before = await rollouts.rpc.call(ro.LIST_ROLLOUTS, ro.ListRollouts(states=["running"]))
    assert [r.update_id for r in before.rollouts] == [update_id]  # a dry run starts nothing

    ran = await rollouts.rpc.call(a.RUN_RULE, a.RunRule(rule="Rings"))
    assert sorted(ran.updates_approved) == sorted(preview.updates_approved)
    running = await rollouts.rpc.call(ro.LIST_ROLLOUTS, ro.ListRollouts(states=["running"]))
    by_rule = [r for r in running.rollouts if r.started_by == f"rule:{rule.rule_id}"]
    assert sorted(r.update_id for r in by_rule) == sorted(ran.updates_approved)
    for rollout in by_rule:
        assert [ring.group_name for ring in rollout.rings] == ["Pilot", "Early", "Broad"]
        assert (rollout.rings_started, rollout.gate) == (1, GATE)
    first = ran.updates_approved[0]
    pilot = await rollouts.explicit_on("Pilot", first)
    assert pilot is not None
    assert pilot.approved_by.startswith("rollout:")
    assert await rollouts.explicit_on("Early", first) is None
    again = await rollouts.rpc.call(a.RUN_RULE, a.RunRule(rule="Rings"))
    assert again.updates_approved == []
