"""Reporting with the real catalog, approval and scheduler, against real RabbitMQ and
PostgreSQL: every state, return-code maps, declines, the notification rule, out-of-order
and duplicate reports, and counters that match a recount from raw rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import pytest
from prometheus_client import REGISTRY

from libs.bus import Bus, RpcClient, to_amqp
from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import reporting as r
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.db.pool import drop_database, ensure_database
from libs.domain.agent_reports import DEFAULT_RETURN_CODES
from libs.service.pipeline import REASON_HEADER
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.integration.test_approval import delete_queues, lockgate
from tests.integration.test_catalog_msrc import JAN, import_request
from tests.integration.test_scheduler import tool_update
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_checkins

pytestmark = pytest.mark.integration

SERVICES = (CATALOG, APPROVAL, SCHEDULER, REPORTING)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Reports:
    def __init__(self, bus: Bus, rpc: RpcClient, db: asyncpg.Connection) -> None:
        self.bus, self.rpc, self.db = bus, rpc, db
        self.cli: dict[str, str] = {}
        """Environment for `lockgate`, pointed at the console."""
        self.sent: set[str] = set()
        """Ids of the well-formed agent messages sent: `settled` waits for each in
        reporting's inbox (a malformed one never gets there; it is dead-lettered)."""

    async def status(
        self,
        computer_id: str,
        at: datetime,
        *,
        detections: dict[str, str] | None = None,
        installs: dict[str, int] | None = None,
        message_id: str | None = None,
        body: bytes | None = None,
    ) -> str:
        report = ag.AgentStatus(
            computer_id=computer_id,
            reported_at=at,
            detections=[
                ag.DetectionResult(update_id=u, state=s) for u, s in (detections or {}).items()
            ],
            installs=[
                ag.InstallResult(
                    update_id=u,
                    return_code=code,
                    started_at=at - timedelta(minutes=2),
                    finished_at=at - timedelta(minutes=1),
                )
                for u, code in (installs or {}).items()
            ],
        )
        envelope = Envelope.new(
            source=f"agent/{computer_id}", type=ag.AGENT_STATUS.type, subject=computer_id
        )
        if message_id is not None:
            envelope = envelope.model_copy(update={"id": message_id})
        if body is None:
            self.sent.add(envelope.id)
        await self.bus.publish(
            to_amqp(envelope, body if body is not None else report.model_dump_json().encode()),
            exchange=Exchange.AGENTS.value,
            routing_key=ag.AGENT_STATUS.routing_key(computer_id),
        )
        return envelope.id

    async def restarted(self, computer_id: str, at: datetime) -> None:
        envelope = Envelope.new(
            source=f"agent/{computer_id}", type=ag.AGENT_RESTART.type, subject=computer_id
        )
        body = ag.AgentRestart(computer_id=computer_id, event="restarted", at=at)
        self.sent.add(envelope.id)
        await self.bus.publish(
            to_amqp(envelope, body.model_dump_json().encode()),
            exchange=Exchange.AGENTS.value,
            routing_key=ag.AGENT_RESTART.routing_key(computer_id),
        )

    async def settled(self) -> None:
        """Until reporting has handled everything sent to it."""

        async def empty() -> bool:
            channel = await self.bus.connection.channel()
            try:
                counts = []
                for queue in REPORTING.queues():
                    declared = await channel.get_queue(queue)
                    counts.append((await declared.declare()).message_count or 0)
            finally:
                await channel.close()
            pending = await self.db.fetchval(
                "SELECT (SELECT count(*) FROM approval.outbox WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM catalog.outbox WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM scheduler.outbox WHERE published_at IS NULL)"
            )
            # A queue's message count leaves out deliveries prefetched and not yet acked
            # (a batch still filling or committing): the inbox says what was handled.
            handled = await self.db.fetchval(
                "SELECT count(DISTINCT message_id) FROM reporting.inbox"
                " WHERE message_id = ANY($1::text[])",
                sorted(self.sent),
            )
            return sum(counts) == 0 and pending == 0 and handled == len(self.sent)

        await eventually(empty, timeout=30, what="reporting to drain its queues")
        await asyncio.sleep(0.3)  # events without an id here (approvals, check-ins) commit

    async def update(self, update_id: str) -> r.UpdateReport:
        return await self.rpc.call(r.UPDATE_REPORT, r.UpdateReportQuery(update=update_id))

    async def recount_matches(self) -> None:
        """The counters equal a count of the raw rows, state by state."""
        kept = await self.db.fetch(
            "SELECT update_id, state, n FROM reporting.update_counts WHERE n <> 0 ORDER BY 1, 2"
        )
        raw = await self.db.fetch(
            "SELECT update_id, state, count(*) AS n FROM reporting.computer_updates"
            " WHERE state <> 'none' GROUP BY 1, 2 ORDER BY 1, 2"
        )
        assert [tuple(x) for x in kept] == [tuple(x) for x in raw]


@pytest.fixture
async def reports(infra: Infra, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Reports]:
    url = f"{infra.database_url}_rep{abs(hash(request.node.name)) % 100_000}"
    await ensure_database(url)
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=url,
        heartbeat_seconds=60,
        compliance_publish_seconds=0.2,
        metrics_sample_seconds=0.2,
    )
    processes = [ServiceProcess(s, settings, http_port=0) for s in SERVICES]
    for process in processes:
        await process.start()
    db = await asyncpg.connect(url)
    found = Reports(bus, RpcClient(bus, source="tests", timeout=60), db)
    try:
        async with running_console(settings) as console:
            found.cli = console.cli_env(infra.env())
            yield found
    finally:
        await db.close()
        for process in processes:
            await process.stop()
        await delete_queues(bus, SERVICES)
        await drop_database(url)


async def setup(reports: Reports, computers: list[str]) -> list[c.UpdateSnapshot]:
    await reports.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    await publish_checkins(reports.bus, [checkin(cid) for cid in computers])
    expected = await reports.db.fetchval("SELECT count(*) FROM catalog.updates")

    async def known() -> bool:
        got = await reports.db.fetchrow(
            "SELECT (SELECT count(*) FROM reporting.updates) AS u,"
            " (SELECT count(*) FROM reporting.computers) AS c,"
            " (SELECT count(*) FROM approval.updates) AS a"
        )
        return got is not None and (got["u"], got["c"], got["a"]) == (
            expected,
            len(computers),
            expected,
        )

    await eventually(known, timeout=60, what="reporting and approval learning updates, computers")
    found = await reports.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
    return sorted(found.updates, key=lambda u: u.kb or "")


async def approve(
    reports: Reports,
    update_id: str,
    group: str = a.ROOT_GROUP_NAME,
    deadline: a.DeadlineChoice | None = None,
) -> None:
    """A required install of the update on the group (no deadline unless given)."""
    choice = a.GroupChoice(group=group, action="required_install")
    if deadline is not None:
        choice = choice.model_copy(update={"deadline": deadline})
    await reports.rpc.call(a.APPROVE, a.Approve(updates=[update_id], groups=[choice]))


async def test_every_state_counted_per_update_computer_and_group(reports: Reports) -> None:
    computers = [f"pc-s{i}" for i in range(1, 8)]
    updates = await setup(reports, computers)
    u = updates[0].update_id
    await approve(reports, u)
    await reports.status("pc-s1", T0, detections={u: "installed"})
    await reports.status("pc-s2", T0, detections={u: "needed"})
    await reports.status("pc-s3", T0, installs={u: 1603})
    await reports.status("pc-s4", T0, installs={u: 3010})
    await reports.status("pc-s5", T0, installs={u: 3010})
    await reports.status("pc-s6", T0, detections={u: "not_applicable"})
    await reports.settled()
    await reports.restarted("pc-s5", T0 + timedelta(minutes=20))
    await reports.settled()

    report = await reports.update(u)
    counts = report.update.counts
    assert (
        counts.installed,
        counts.needed,
        counts.failed,
        counts.installed_pending_restart,
        counts.not_applicable,
        counts.no_status,
    ) == (2, 1, 1, 1, 1, 1)
    assert counts.applies_to == 5
    assert (report.successes, report.failures) == (2, 1)
    assert [(f.computer_id, f.return_code) for f in report.failed_attempts] == [("pc-s3", 1603)]

    pc3 = await reports.rpc.call(r.COMPUTER_REPORT, r.ComputerReportQuery(computer="pc-s3"))
    assert [(x.update_id, x.state, x.last_return_code) for x in pc3.updates] == [
        (u, "failed", 1603)
    ]

    # A group with a subgroup: counts over the computers of both.
    await reports.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Floor 1"))
    await reports.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Room 101", parent="Floor 1"))
    await reports.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-s1"], group="Floor 1")
    )
    await reports.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-s3"], group="Room 101")
    )
    await reports.settled()
    floor = await reports.rpc.call(r.GROUP_REPORT, r.GroupReportQuery(group="Floor 1"))
    assert floor.computers == 2
    assert (floor.totals.installed, floor.totals.failed) == (1, 1)

    async def gauged() -> bool:  # bounded labels: groups down to LOCKGATE_REPORT_GROUP_DEPTH
        sample = REGISTRY.get_sample_value(
            "lockgate_group_update_states", {"group": "Floor 1", "state": "failed"}
        )
        return sample == 1

    await eventually(gauged, timeout=10, what="the per-group gauge")
    assert (
        REGISTRY.get_sample_value(
            "lockgate_group_update_states", {"group": "Room 101", "state": "failed"}
        )
        is None
    ), "Room 101 is deeper than the default depth 1"
    summary = await reports.rpc.call(r.SUMMARY, r.Summary())
    assert summary.computers == len(computers)
    code, printed, _ = await lockgate(reports.cli, "report", "update", u)
    assert code == 0
    assert printed["update"]["counts"] == counts.model_dump()
    code, failing, _ = await lockgate(reports.cli, "updates", "list", "--filter", "failed")
    assert (code, [x["update_id"] for x in failing["updates"]]) == (0, [u])
    code, printed, _ = await lockgate(reports.cli, "report", "computer", "pc-s4")
    assert printed["updates"][0]["state"] == "installed_pending_restart"
    assert summary.updates[0].update_id == u
    await reports.recount_matches()

    # Prometheus: per approved update (bounded), and updates needed but not approved.
    other = updates[1]
    await reports.status("pc-s2", T0, detections={other.update_id: "needed"})
    await reports.settled()
    name = f"KB{updates[0].kb}"

    def sample(metric: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(metric, labels)

    async def per_update() -> bool:
        awaiting = sample(
            "lockgate_updates_awaiting_approval",
            classification=other.classification,
            severity=other.severity or "none",
        )
        return (
            awaiting == 1
            and sample(
                "lockgate_update_computers",
                update=name,
                state="failed",
                classification=updates[0].classification,
                severity=updates[0].severity or "none",
            )
            == 1
        )

    await eventually(per_update, timeout=10, what="the per-update gauges")
    assert (
        sample(
            "lockgate_update_computers",
            update=name,
            state="no_status",
            classification=updates[0].classification,
            severity=updates[0].severity or "none",
        )
        == 1
    )
    assert sample("lockgate_update_deadline_timestamp_seconds", update=name) is None, (
        "approved without a deadline"
    )

    # Past the deadline: counted per computer, by the approvals of the groups it is in.
    async def approve_now(group: str) -> None:
        await reports.rpc.call(
            a.APPROVE,
            a.Approve(
                updates=[other.update_id],
                groups=[
                    a.GroupChoice(
                        group=group,
                        action="required_install",
                        deadline=a.DeadlineChoice(kind="as_soon_as_possible"),
                    )
                ],
            ),
        )

    other_name = f"KB{other.kb}"
    other_labels = {
        "update": other_name,
        "classification": other.classification,
        "severity": other.severity or "none",
    }

    async def overdue(expected: float) -> bool:
        return sample("lockgate_update_overdue_computers", **other_labels) == expected

    # Floor 1 (pc-s1, and pc-s3 in Room 101) never reported on it: no status lacks it too.
    await approve_now("Floor 1")
    await eventually(lambda: overdue(2), timeout=10, what="pc-s1 and pc-s3 overdue")
    assert sample("lockgate_update_deadline_timestamp_seconds", update=other_name)
    await approve_now(a.ROOT_GROUP_NAME)  # pc-s2 needs it; the other five have no status
    await eventually(lambda: overdue(len(computers)), timeout=10, what="every computer overdue")


async def test_operator_added_return_code_is_read_through_the_map(reports: Reports) -> None:
    await setup(reports, ["pc-m1", "pc-m2", "pc-m3"])
    tool = tool_update()
    tool = tool.model_copy(
        update={
            "return_codes": [
                *DEFAULT_RETURN_CODES,
                c.ReturnCode(code=17, outcome="success"),
                c.ReturnCode(code=1641, outcome="success_restart_required"),
            ]
        }
    )
    envelope = Envelope.new(source="lockgate/catalog", type=c.UPDATE_PUBLISHED.type)
    await reports.bus.publish(
        to_amqp(envelope, c.UpdatePublished(update=tool).model_dump_json().encode()),
        exchange=Exchange.EVENTS.value,
        routing_key=c.UPDATE_PUBLISHED.type,
    )
    await reports.settled()
    await reports.status("pc-m1", T0, installs={tool.update_id: 17})
    await reports.status("pc-m2", T0, installs={tool.update_id: 1641})
    await reports.status("pc-m3", T0, installs={tool.update_id: 3})
    await reports.settled()
    counts = (await reports.update(tool.update_id)).update.counts
    assert (counts.installed, counts.installed_pending_restart, counts.failed) == (1, 1, 1)


async def test_decline_deletes_report_data_and_later_reports_are_ignored(
    reports: Reports,
) -> None:
    updates = await setup(reports, ["pc-d1", "pc-d2"])
    u = updates[0].update_id
    await reports.status("pc-d1", T0, detections={u: "needed"})
    await reports.status("pc-d2", T0, installs={u: 1603})
    await reports.settled()
    assert (await reports.update(u)).update.counts.needed == 1
    await reports.rpc.call(a.DECLINE, a.Decline(updates=[u]))
    await reports.settled()
    for table in ("computer_updates", "install_attempts", "update_counts"):
        left = await reports.db.fetchval(
            f"SELECT count(*) FROM reporting.{table} WHERE update_id = $1::uuid",
            u,
        )
        assert left == 0, table
    await reports.status("pc-d1", T0 + timedelta(hours=1), detections={u: "needed"})
    await reports.settled()
    assert (await reports.update(u)).update.counts.needed == 0
    await reports.recount_matches()


async def test_new_updates_to_approve_notification(reports: Reports) -> None:
    updates = await setup(reports, ["pc-n1"])
    u, v = updates[0].update_id, updates[1].update_id

    async def notified() -> bool:
        return (await reports.rpc.call(r.SUMMARY, r.Summary())).new_updates_to_approve

    assert not await notified(), "nothing is needed yet"
    await reports.status("pc-n1", T0, detections={u: "needed", v: "installed"})
    await reports.settled()
    assert await notified(), "a needed update neither approved nor declined"
    await approve(reports, u)
    await reports.settled()
    assert not await notified(), "approved"
    await reports.status("pc-n1", T0 + timedelta(hours=1), detections={v: "needed"})
    await reports.settled()
    assert await notified()
    await reports.rpc.call(a.DECLINE, a.Decline(updates=[v]))
    await reports.settled()
    assert not await notified(), "declined"


async def test_an_update_the_settings_withdraw_is_not_new_to_approve(reports: Reports) -> None:
    """The notification counts only offered updates: withdrawing one by the catalog settings
    silences it, offering it again brings it back."""
    updates = await setup(reports, ["pc-w1"])
    u = next(x for x in updates if x.offered and x.classification == "Security Updates")

    async def notified() -> bool:
        return (await reports.rpc.call(r.SUMMARY, r.Summary())).new_updates_to_approve

    await reports.status("pc-w1", T0, detections={u.update_id: "needed"})
    await reports.settled()
    assert await notified(), "an offered update is needed"
    before = await reports.rpc.call(c.GET_SETTINGS, c.GetSettings())
    await reports.rpc.call(
        c.CHANGE_SETTINGS, c.ChangeSettings(classifications=["Critical Updates"])
    )
    await reports.settled()
    assert not await notified(), "withdrawn by the settings"
    await reports.rpc.call(
        c.CHANGE_SETTINGS, c.ChangeSettings(classifications=before.settings.classifications)
    )
    await reports.settled()
    assert await notified(), "offered again"


async def test_out_of_order_and_duplicate_reports_never_move_backwards(reports: Reports) -> None:
    updates = await setup(reports, ["pc-o1"])
    u = updates[0].update_id
    later = T0 + timedelta(hours=2)
    await reports.status("pc-o1", later, installs={u: 0})
    await reports.settled()
    await reports.status("pc-o1", T0, detections={u: "needed"})  # an old report, late
    first = await reports.status("pc-o1", later + timedelta(hours=1), installs={u: 1603})
    await reports.status(
        "pc-o1", later + timedelta(hours=1), installs={u: 1603}, message_id=first
    )  # the same message again
    await reports.settled()
    pc = await reports.rpc.call(r.COMPUTER_REPORT, r.ComputerReportQuery(computer="pc-o1"))
    assert [x.state for x in pc.updates] == ["failed"]
    attempts = await reports.db.fetchval(
        "SELECT count(*) FROM reporting.install_attempts WHERE update_id = $1::uuid", u
    )
    assert attempts == 2, "the duplicate message added nothing"
    await reports.recount_matches()
    changed = await reports.db.fetch(
        "SELECT body FROM reporting.outbox WHERE routing_key = $1", r.COMPLIANCE_CHANGED.type
    )
    assert changed, "compliance.changed is published"
    assert len(changed) < 4, "throttled: not one event per report"
    r.ComplianceChanged.model_validate_json(bytes(changed[-1]["body"]))


async def test_scheduler_and_reporting_store_the_same_state_for_the_same_reports(
    reports: Reports,
) -> None:
    """Both services read reports through libs/domain/agent_reports.py: a 3010, a restart, a
    successful uninstall, a report naming an update twice, a failure followed by a late
    detection and an out-of-order report leave the same state in both schemas."""
    computers = [f"pc-same{i}" for i in range(1, 6)]
    updates = await setup(reports, computers)
    u = updates[0].update_id
    later = T0 + timedelta(hours=1)

    def result(code: int, operation: str = "install") -> ag.InstallResult:
        return ag.InstallResult.model_validate(
            {
                "update_id": u,
                "operation": operation,
                "return_code": code,
                "started_at": T0 - timedelta(minutes=2),
                "finished_at": T0 - timedelta(minutes=1),
            }
        )

    async def send(computer_id: str, at: datetime, **parts: list[Any]) -> None:
        body = ag.AgentStatus(computer_id=computer_id, reported_at=at, **parts)
        await reports.status(computer_id, at, body=body.model_dump_json().encode())

    await send("pc-same1", T0, installs=[result(3010)])
    await send("pc-same2", T0, installs=[result(0, "uninstall")])
    both = [ag.DetectionResult(update_id=u, state="installed")]
    await send("pc-same3", T0, detections=both, installs=[result(0)])
    await send("pc-same4", T0, installs=[result(1603)])
    await send("pc-same5", later, detections=[ag.DetectionResult(update_id=u, state="needed")])
    await reports.settled()
    await reports.restarted("pc-same1", later)
    await send("pc-same4", later, detections=[ag.DetectionResult(update_id=u, state="needed")])
    await send("pc-same5", T0, installs=[result(0)])  # older than what is held: ignored

    expected = {
        "pc-same1": "installed",
        "pc-same2": "needed",
        "pc-same3": "installed",
        "pc-same4": "failed",
        "pc-same5": "needed",
    }

    async def stored(schema: str) -> dict[str, str]:
        rows = await reports.db.fetch(
            f"SELECT computer_id, state FROM {schema}.computer_updates"
            " WHERE update_id = $1::uuid AND computer_id = ANY ($2::text[])",
            u,
            computers,
        )
        return {row["computer_id"]: row["state"] for row in rows}

    async def agree() -> bool:
        return await stored("scheduler") == expected and await stored("reporting") == expected

    await eventually(agree, timeout=30, what="scheduler and reporting to store the same states")
    dead = await reports.db.fetchval(
        "SELECT count(*) FROM scheduler.computer_updates WHERE state_at IS NULL"
        " AND update_id = $1::uuid AND computer_id = ANY ($2::text[])",
        u,
        computers,
    )
    assert dead == 0, "the scheduler stamps states with the agent's reported_at"


async def test_a_malformed_report_goes_to_the_dlq_and_the_next_is_handled(
    reports: Reports,
) -> None:
    updates = await setup(reports, ["pc-x1"])
    u = updates[0].update_id
    bad = json.dumps(
        {
            "computer_id": "pc-x1",
            "reported_at": T0.isoformat(),
            "installs": [
                {
                    "update_id": u,
                    "return_code": "abc",
                    "started_at": T0.isoformat(),
                    "finished_at": T0.isoformat(),
                }
            ],
        }
    ).encode()
    await reports.status("pc-x1", T0, body=bad)
    await reports.status("pc-x1", T0, detections={u: "needed"})
    await reports.settled()
    assert (await reports.update(u)).update.counts.needed == 1
    channel = await reports.bus.connection.channel()
    dlq = await channel.get_queue(dead_letter_queue_name("reporting.agent-reports"))
    parked: aio_pika.abc.AbstractIncomingMessage | None = await dlq.get(timeout=5, fail=False)
    await channel.close()
    assert parked is not None
    headers: dict[str, Any] = dict(parked.headers or {})
    assert "return_code" in str(headers[REASON_HEADER])
