"""The approval service with the real catalog and scheduler, against real RabbitMQ and PostgreSQL.

Updates come from importing the real MSRC documents into the catalog; computers from agent
check-ins handled by the scheduler. Every event approval publishes is read back from the
broker and validated against its model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from pydantic import BaseModel

from libs.bus import Bus, RpcClient, RpcError, to_amqp
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts.api import PREFIX
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.contracts.registry import REGISTRY
from libs.contracts.spec import CommandSpec, Contract
from libs.db.pool import drop_database, ensure_database
from libs.service.handlers import ServiceDefinition
from libs.service.pipeline import REASON_CLASS_HEADER, REASON_HEADER
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.integration.test_catalog_msrc import FEB, JAN, import_request
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_checkins
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

SERVICES = (CATALOG, APPROVAL, SCHEDULER)


async def delete_queues(bus: Bus, services: tuple[ServiceDefinition, ...]) -> None:
    """Remove the services' queues so later tests' events do not pile up in them."""
    channel = await bus.connection.channel()
    for service in services:
        for queue in service.queues():
            await channel.queue_delete(queue)
            await channel.queue_delete(dead_letter_queue_name(queue))
    await channel.close()


class System:
    """Catalog, approval and scheduler in this event loop on one database, plus a tap on
    every `approval.*` event."""

    def __init__(self, rpc: RpcClient, db: asyncpg.Connection, bus: Bus, infra: Infra) -> None:
        self.rpc, self.db, self.bus, self.infra = rpc, db, bus, infra
        self.cli: dict[str, str] = infra.env()
        """Environment for `lockgate` (pointed at the console once it runs)."""
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.seen = 0
        """Events seen since the start (tests clear `events`, not this)."""

    async def tap(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event_type = str((message.headers or {})["ce-type"])
        spec = REGISTRY.event(event_type)
        if event_type.endswith(".heartbeat.v1"):
            await message.ack()
            return
        spec.model.model_validate_json(message.body)  # every event matches its model
        self.events.append((event_type, json.loads(message.body)))
        self.seen += 1
        await message.ack()

    def of(self, spec: Any) -> list[dict[str, Any]]:
        return [body for event_type, body in self.events if event_type == spec.type]

    async def settle(self) -> None:
        """Until every outbox event is published and the tap has seen them."""

        async def drained() -> bool:
            pending = await self.db.fetchval(
                "SELECT (SELECT count(*) FROM approval.outbox WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM catalog.outbox WHERE published_at IS NULL)"
            )
            published = await self.db.fetchval(
                "SELECT count(*) FROM approval.outbox WHERE published_at IS NOT NULL"
                " AND routing_key NOT LIKE '%.heartbeat.v1'"
            )
            return bool(pending == 0 and self.seen >= published)

        await eventually(drained, timeout=30, what="outboxes drained and events seen")

    async def import_msrc(self, *paths: Any) -> None:
        for path in paths:
            await self.rpc.call(c.IMPORT_DOCUMENT, import_request(path))
        expected = await self.db.fetchrow(
            "SELECT count(*) AS updates, count(*) FILTER (WHERE superseded_at IS NOT NULL)"
            " AS superseded FROM catalog.updates"
        )

        async def learnt() -> bool:
            known = await self.db.fetchrow(
                "SELECT count(*) AS updates, count(*) FILTER (WHERE superseded_by <> '{}')"
                " AS superseded FROM approval.updates"
            )
            return known is not None and tuple(known) == tuple(expected or ())

        await eventually(learnt, timeout=60, what="approval learning the catalog's updates")
        await self.settle()

    async def catalog_updates(self) -> dict[str, c.UpdateSnapshot]:
        found = await self.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
        return {u.kb or u.update_id: u for u in found.updates}

    async def group(self, name: str, parent: str = a.ROOT_GROUP_NAME) -> a.Group:
        return await self.rpc.call(a.CREATE_GROUP, a.CreateGroup(name=name, parent=parent))

    async def approvals_of(self, group: str) -> dict[str, a.GroupApprovalState]:
        found = await self.rpc.call(a.GROUP_APPROVALS, a.GroupApprovals(group=group))
        return {s.kb or s.update_id: s for s in found.approvals}


@pytest.fixture
async def system(infra: Infra, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[System]:
    url = f"{infra.database_url}_appr{abs(hash(request.node.name)) % 100_000}"
    await ensure_database(url)
    settings = Settings(amqp_url=infra.amqp_url, database_url=url, heartbeat_seconds=60)
    processes = [ServiceProcess(service, settings, http_port=0) for service in SERVICES]
    for process in processes:
        await process.start()
    channel = await bus.connection.channel()
    tap = await channel.declare_queue("tests.approval-tap", exclusive=True)
    await tap.bind(Exchange.EVENTS.value, routing_key="approval.#")
    db = await asyncpg.connect(url)
    found = System(RpcClient(bus, source="tests", timeout=60), db, bus, infra)
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


async def register(system: System, *computer_ids: str) -> None:
    """Agents check in; the scheduler registers them; approval learns them."""
    await publish_checkins(system.bus, [checkin(cid) for cid in computer_ids])

    async def known() -> bool:
        count = await system.db.fetchval(
            "SELECT count(*) FROM approval.computers WHERE computer_id = ANY ($1::text[])",
            list(computer_ids),
        )
        return bool(count == len(computer_ids))

    await eventually(known, timeout=30, what="approval learning the computers")


def windows_security(update: c.UpdateSnapshot) -> bool:
    return "Windows" in update.product_families and update.classification == "Security Updates"


async def test_rule_approves_newly_imported_msrc_updates(system: System) -> None:
    """A rule approves, as soon as the catalog publishes them, the new updates it matches,
    for its groups and with its deadline; a rule created later waits until it is run."""
    pilot = await system.group("Pilot")
    rule = await system.rpc.call(
        a.CREATE_RULE,
        a.CreateRule(
            rule=a.RuleSpec(
                name="Windows security to pilots",
                products=["Windows"],
                classifications=["Security Updates"],
                groups=["Pilot"],
                deadline="one_week",
            )
        ),
    )
    before = datetime.now(UTC)
    await system.import_msrc(JAN)
    jan = await system.catalog_updates()
    wanted = {kb for kb, u in jan.items() if windows_security(u)}
    assert wanted, "January has Windows security updates"
    approved = await system.approvals_of("Pilot")
    assert set(approved) == wanted
    for state in approved.values():
        assert state.explicit is not None
        assert state.explicit.action == "required_install"
        assert state.explicit.approved_by == f"rule:{rule.rule_id}"
        assert state.explicit.deadline.kind == "one_week"
        assert state.explicit.deadline.at is not None
        assert before + timedelta(days=7) <= state.explicit.deadline.at
        assert state.explicit.deadline.at <= datetime.now(UTC) + timedelta(days=7)
    # Nothing else was approved anywhere: All computers has no approvals.
    assert await system.approvals_of(a.ROOT_GROUP_NAME) == {}
    changed = system.of(a.APPROVAL_CHANGED)
    assert {e["state"]["kb"] for e in changed if e["state"]["group_id"] == pilot.group_id} == wanted
    assert all(e["cause"] == f"rule:{rule.rule_id}" for e in changed)
    assert len(system.of(a.RULE_RAN)) == len(wanted)

    # A rule created now does not touch January's updates until it is run ...
    late = await system.rpc.call(
        a.CREATE_RULE,
        a.CreateRule(
            rule=a.RuleSpec(
                name="Everything critical", classifications=["Critical Updates"], groups=["Pilot"]
            )
        ),
    )
    critical = {kb for kb, u in jan.items() if u.classification == "Critical Updates"}
    assert not critical & set(await system.approvals_of("Pilot"))
    ran = await system.rpc.call(a.RUN_RULE, a.RunRule(rule=late.name))
    assert {jan[kb].update_id for kb in critical} == set(ran.updates_approved)

    # ... and February's new updates are approved as they arrive, the superseded ones not.
    await system.import_msrc(FEB)
    both = await system.catalog_updates()
    feb_new = {kb for kb, u in both.items() if kb not in jan and windows_security(u)}
    assert feb_new <= set(await system.approvals_of("Pilot"))
    assert all(not both[kb].superseded_by for kb in feb_new)


async def test_rule_runs_pick_the_superseding_update(system: System) -> None:
    """Run over January + February, a rule approves what replaces, never what is replaced."""
    await system.import_msrc(JAN, FEB)
    await system.group("Ring 1")
    updates = await system.catalog_updates()
    rule = await system.rpc.call(
        a.CREATE_RULE,
        a.CreateRule(
            rule=a.RuleSpec(
                name="all windows security",
                classifications=["Security Updates"],
                products=["windows"],
                groups=["Ring 1"],
            )
        ),
    )
    ran = await system.rpc.call(a.RUN_RULE, a.RunRule(rule=rule.rule_id))
    expected = {
        u.update_id for u in updates.values() if windows_security(u) and not u.superseded_by
    }
    assert set(ran.updates_approved) == expected
    superseded = {u.update_id for u in updates.values() if u.superseded_by}
    assert superseded
    assert not superseded & set(ran.updates_approved)
    again = await system.rpc.call(a.RUN_RULE, a.RunRule(rule=rule.name))
    assert again.updates_approved == [], "a second run finds everything already approved"


async def test_inheritance_through_three_levels_with_an_override(system: System) -> None:
    await system.import_msrc(JAN)
    kb = next(iter(sorted(await system.catalog_updates())))
    europe = await system.group("Europe")
    france = await system.group("France", parent="Europe")
    paris = await system.group("Paris", parent="France")
    lab = await system.group("Paris lab", parent="Paris")
    await system.settle()
    system.events.clear()

    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[kb],
            groups=[
                a.GroupChoice(
                    group="Europe",
                    action="required_install",
                    deadline=a.DeadlineChoice(kind="two_weeks"),
                )
            ],
        ),
    )
    for name in ("France", "Paris", "Paris lab"):
        state = (await system.approvals_of(name))[kb]
        assert state.explicit is None
        assert state.effective is not None
        assert state.effective.action == "required_install"
        assert state.effective.source_group_id == europe.group_id
        assert state.why == "inherited from Europe"
    assert (await system.approvals_of("Europe"))[kb].why == "explicit here"

    # An explicit uninstall on Paris overrides for Paris and below, not above.
    await system.rpc.call(
        a.APPROVE,
        a.Approve(updates=[kb], groups=[a.GroupChoice(group=paris.group_id, action="uninstall")]),
    )
    assert (await system.approvals_of("Paris"))[kb].why == "explicit here"
    lab_state = (await system.approvals_of("Paris lab"))[kb]
    assert lab_state.effective is not None
    assert (lab_state.effective.action, lab_state.why) == ("uninstall", "inherited from Paris")
    france_state = (await system.approvals_of("France"))[kb]
    assert france_state.effective is not None
    assert france_state.effective.action == "required_install"

    # Changing the parent changes every inheriting descendant, and only those.
    await system.settle()
    system.events.clear()
    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[kb],
            groups=[
                a.GroupChoice(
                    group="Europe",
                    action="required_install",
                    deadline=a.DeadlineChoice(kind="as_soon_as_possible"),
                )
            ],
        ),
    )
    await system.settle()
    touched = {e["state"]["group_name"] for e in system.of(a.APPROVAL_CHANGED)}
    assert touched == {"Europe", "France"}
    france_state = (await system.approvals_of("France"))[kb]
    assert france_state.effective is not None
    assert france_state.effective.deadline.kind == "as_soon_as_possible"

    # Back to inheriting: Paris and its lab follow Europe again.
    await system.rpc.call(
        a.APPROVE,
        a.Approve(updates=[kb], groups=[a.GroupChoice(group="Paris", action="inherit")]),
    )
    for name in ("Paris", "Paris lab"):
        state = (await system.approvals_of(name))[kb]
        assert state.effective is not None
        assert (state.effective.action, state.why) == ("required_install", "inherited from Europe")

    # Moving the lab under All computers drops what it inherited from Europe.
    await system.rpc.call(a.MOVE_GROUP, a.MoveGroup(group=lab.group_id, parent=a.ROOT_GROUP_NAME))
    assert kb not in await system.approvals_of("Paris lab")
    assert france.group_id != paris.group_id


async def test_decline_and_approve_again_and_expired_updates(system: System) -> None:
    await system.import_msrc(JAN)
    kbs = sorted(await system.catalog_updates())
    kb, other = kbs[0], kbs[1]
    await system.group("Servers")
    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[kb, other],
            groups=[a.GroupChoice(group=a.ROOT_GROUP_NAME, action="required_install")],
        ),
    )
    assert kb in await system.approvals_of("Servers")

    result = await system.rpc.call(a.DECLINE, a.Decline(updates=[f"KB{kb}"]))
    assert len(result.declined) == 1
    assert result.effective_changed == 2  # All computers and Servers
    assert kb not in await system.approvals_of("Servers")
    assert other in await system.approvals_of("Servers")
    default = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates())
    assert kb not in {u.kb for u in default.updates}
    declined = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(states=["declined"]))
    assert [u.kb for u in declined.updates] == [kb]
    await system.settle()
    assert [e["kb"] for e in system.of(a.UPDATE_DECLINED)] == [kb]
    removed = [e for e in system.of(a.APPROVAL_CHANGED) if e["cause"] == "decline"]
    assert len(removed) == 2
    assert all(e["state"]["effective"] is None for e in removed)

    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[kb], groups=[a.GroupChoice(group="Servers", action="available_install")]
        ),
    )
    approved = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(states=["approved"]))
    assert kb in {u.kb for u in approved.updates}

    # The catalog expires it: approval learns it from the event and refuses new approvals.
    await system.rpc.call(c.EXPIRE_UPDATE, c.ExpireUpdate(update=kb))

    async def expired() -> bool:
        return bool(
            await system.db.fetchval(
                "SELECT expired_at IS NOT NULL FROM approval.updates WHERE kb = $1", kb
            )
        )

    await eventually(expired, timeout=30, what="approval learning the expiry")
    with pytest.raises(RpcError) as refused:
        await system.rpc.call(
            a.APPROVE,
            a.Approve(updates=[kb], groups=[a.GroupChoice(group="Servers", action="uninstall")]),
        )
    assert refused.value.body.field == "updates[0]"
    assert "expired" in refused.value.body.message


async def test_computer_in_several_groups_resolves_each_update(system: System) -> None:
    await system.import_msrc(JAN)
    kb = sorted(await system.catalog_updates())[0]
    await register(system, "pc-1", "pc-2")
    for name in ("Ring 1", "Lab", "Retire"):
        await system.group(name)
    result = await system.rpc.call(
        a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-1"], group="Ring 1")
    )
    assert result.changed == 1
    for group in ("Lab", "Retire"):
        await system.rpc.call(
            a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["pc-1", "pc-2"], group=group)
        )
    now = datetime.now(UTC)
    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[kb],
            groups=[
                a.GroupChoice(
                    group="Ring 1",
                    action="required_install",
                    deadline=a.DeadlineChoice(kind="custom", at=now + timedelta(days=3)),
                ),
                a.GroupChoice(
                    group="Lab",
                    action="required_install",
                    deadline=a.DeadlineChoice(kind="two_weeks"),
                ),
                a.GroupChoice(
                    group="Retire",
                    action="uninstall",
                    deadline=a.DeadlineChoice(kind="as_soon_as_possible"),
                ),
            ],
        ),
    )
    pc1 = await system.rpc.call(a.COMPUTER_APPROVALS, a.ComputerApprovals(computer="pc-1"))
    assert [g.name for g in pc1.groups] == [
        a.ROOT_GROUP_NAME,
        *sorted(
            ["Ring 1", "Lab", "Retire"], key=lambda n: {g.name: g.group_id for g in pc1.groups}[n]
        ),
    ]
    (only,) = pc1.approvals
    assert only.action == "required_install"
    assert only.deadline.kind == "custom"  # three days beats two weeks
    assert sorted(only.from_groups) == ["Lab", "Ring 1"]
    assert only.conflict is not None
    assert "Retire" in only.conflict
    pc2 = await system.rpc.call(a.COMPUTER_APPROVALS, a.ComputerApprovals(computer="pc-2"))
    assert pc2.approvals[0].deadline.kind == "two_weeks"

    await system.settle()
    memberships = system.of(a.MEMBERSHIP_CHANGED)
    last = [e for e in memberships if e["computer_id"] == "pc-1"][-1]
    assert len(last["group_ids"]) == 4
    assert last["group_ids"][0] == a.ROOT_GROUP_ID

    # Groups with computers cannot be deleted; emptied ones can.
    with pytest.raises(RpcError) as refused:
        await system.rpc.call(a.DELETE_GROUP, a.DeleteGroup(group="Retire"))
    assert "computer" in refused.value.body.message
    await system.rpc.call(
        a.CHANGE_MEMBERSHIP,
        a.ChangeMembership(computers=["pc-1", "pc-2"], group="Retire", member=False),
    )
    await system.rpc.call(a.DELETE_GROUP, a.DeleteGroup(group="Retire"))
    pc1 = await system.rpc.call(a.COMPUTER_APPROVALS, a.ComputerApprovals(computer="pc-1"))
    assert pc1.approvals[0].conflict is None


class RawChoice(Contract):
    group: str
    action: str
    deadline: dict[str, Any]


class RawApprove(Contract):
    updates: list[str]
    groups: list[RawChoice]


RAW_APPROVE: CommandSpec[RawApprove, a.ApproveResult] = CommandSpec(
    type=a.APPROVE.type,
    request=RawApprove,
    reply=a.ApproveResult,
    handler="approval",
    summary="An approval request as an arbitrary client might send it.",
)


async def refused(system: System, spec: CommandSpec[Any, Any], request: BaseModel) -> RpcError:
    with pytest.raises(RpcError) as error:
        await system.rpc.call(spec, request)
    return error.value


async def test_bad_input_is_refused_naming_the_field_and_stores_nothing(system: System) -> None:
    await system.import_msrc(JAN)
    kb = sorted(await system.catalog_updates())[0]
    await system.group("Desktops")
    await system.group("Laptops", parent="Desktops")

    unknown_update = await refused(
        system,
        a.APPROVE,
        a.Approve(
            updates=[kb, "KB0000001"],
            groups=[a.GroupChoice(group="Desktops", action="required_install")],
        ),
    )
    assert unknown_update.body.field == "updates[1]"
    assert "KB0000001" in unknown_update.body.message
    unknown_group = await refused(
        system,
        a.APPROVE,
        a.Approve(
            updates=[kb],
            groups=[
                a.GroupChoice(group="Desktops", action="required_install"),
                a.GroupChoice(group="Nowhere", action="required_install"),
            ],
        ),
    )
    assert unknown_group.body.field == "groups[1].group"
    bad_action = await refused(
        system,
        RAW_APPROVE,
        RawApprove(
            updates=[kb], groups=[RawChoice(group="Desktops", action="install", deadline={})]
        ),
    )
    assert "action" in (bad_action.body.field or bad_action.body.message)
    assert "required_install" in bad_action.body.message
    bad_deadline = await refused(
        system,
        RAW_APPROVE,
        RawApprove(
            updates=[kb],
            groups=[
                RawChoice(
                    group="Desktops",
                    action="required_install",
                    deadline={"kind": "custom", "at": "next tuesday"},
                )
            ],
        ),
    )
    assert "deadline" in (bad_deadline.body.field or "") + bad_deadline.body.message
    assert "next tuesday" in bad_deadline.body.message
    deadline_on_do_not_install = await refused(
        system,
        a.APPROVE,
        a.Approve(
            updates=[kb],
            groups=[
                a.GroupChoice(
                    group="Desktops",
                    action="do_not_install",
                    deadline=a.DeadlineChoice(kind="one_week"),
                )
            ],
        ),
    )
    assert deadline_on_do_not_install.body.field == "groups[0].deadline"
    assert await system.db.fetchval("SELECT count(*) FROM approval.explicit_approvals") == 0
    assert await system.db.fetchval("SELECT count(*) FROM approval.effective_approvals") == 0

    cycle = await refused(system, a.MOVE_GROUP, a.MoveGroup(group="Desktops", parent="Laptops"))
    assert cycle.body.field == "parent"
    assert "cycle" in cycle.body.message
    parents = await system.db.fetch("SELECT name, parent_id FROM approval.groups ORDER BY name")
    assert len(parents) == 3
    duplicate = await refused(system, a.CREATE_GROUP, a.CreateGroup(name="laptops"))
    assert duplicate.body.field == "name"
    with_children = await refused(system, a.DELETE_GROUP, a.DeleteGroup(group="Desktops"))
    assert "Laptops" in with_children.body.message
    unknown_computer = await refused(
        system, a.CHANGE_MEMBERSHIP, a.ChangeMembership(computers=["ghost"], group="Laptops")
    )
    assert unknown_computer.body.field == "computers"

    class RawRule(Contract):
        rule: dict[str, Any]

    raw_create_rule: CommandSpec[RawRule, a.Rule] = CommandSpec(
        type=a.CREATE_RULE.type, request=RawRule, reply=a.Rule, handler="approval", summary="raw"
    )
    no_classification = await refused(
        system,
        raw_create_rule,
        RawRule(rule={"name": "r", "classifications": [], "groups": ["Desktops"]}),
    )
    assert (
        "classifications" in (no_classification.body.field or "") + no_classification.body.message
    )
    assert await system.db.fetchval("SELECT count(*) FROM approval.rules") == 0


async def test_malformed_catalog_event_goes_to_the_dead_letter_queue(system: System) -> None:
    """A catalog event approval cannot read is parked with the reason; the next is handled."""
    envelope = Envelope.new(source="lockgate/catalog", type=c.UPDATE_EXPIRED.type)
    bad = to_amqp(envelope, b'{"update_id": 42}')
    await system.bus.publish(bad, exchange=Exchange.EVENTS.value, routing_key=c.UPDATE_EXPIRED.type)
    await system.import_msrc(JAN)  # the next good events are handled

    channel = await system.bus.connection.channel()
    dlq = await channel.get_queue(dead_letter_queue_name("approval.updates"))
    parked = await dlq.get(timeout=10, fail=False)
    await channel.close()
    assert parked is not None
    assert parked.message_id == envelope.id
    headers = parked.headers or {}
    assert headers[REASON_CLASS_HEADER] == "InvalidMessage"
    assert "update_id" in str(headers[REASON_HEADER])


async def run_lockgate(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run `lockgate` as an operator would; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "lockgate"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return await process.wait(), out.decode(), err.decode()


async def lockgate(env: dict[str, str], *args: str) -> tuple[int, Any, str]:
    """Run the `lockgate` command with --json; (exit code, parsed stdout, stderr)."""
    code, out, err = await run_lockgate(env, "--json", *args)
    return code, json.loads(out) if out.strip() else None, err


async def test_operators_use_the_cli(system: System) -> None:
    """Groups, approvals, rules and their errors through `lockgate`, as an operator would."""
    await system.import_msrc(JAN)
    kb = sorted(await system.catalog_updates())[0]
    code, created, _ = await lockgate(system.cli, "groups", "create", "Accounting")
    assert code == 0
    assert created["path"] == [a.ROOT_GROUP_NAME, "Accounting"]
    code, result, _ = await lockgate(
        system.cli,
        "updates",
        "approve",
        f"KB{kb}",
        "--group",
        "Accounting",
        "--action",
        "required",
        "--deadline",
        "1w",
    )
    assert (code, result["explicit_changed"]) == (0, 1)
    code, listed, _ = await lockgate(system.cli, "groups", "show", "Accounting")
    (state,) = listed["approvals"]
    assert (state["kb"], state["why"]) == (kb, "explicit here")
    assert state["effective"]["deadline"]["kind"] == "one_week"
    code, tree, _ = await lockgate(system.cli, "groups", "list")
    assert [g["name"] for g in tree["groups"]] == [a.ROOT_GROUP_NAME, "Accounting"]

    code, rule, _ = await lockgate(
        system.cli,
        "rules",
        "create",
        "weekly",
        "--classification",
        "Updates",
        "--group",
        "Accounting",
        "--deadline",
        "1w",
    )
    assert (code, rule["deadline"]) == (0, "one_week")
    code, _, err = await lockgate(
        system.cli, "rules", "create", "no class", "--group", "Accounting"
    )
    assert code == 1
    assert "classifications" in err
    code, _, err = await lockgate(system.cli, "groups", "move", "Accounting", "Nowhere")
    assert code == 1
    assert "Nowhere" in err
    code, _, err = await lockgate(
        system.cli, "updates", "approve", kb, "--group", "Accounting", "--deadline", "soon"
    )
    assert code == 2
    assert "'soon' is not a deadline" in err
    code, shown, _ = await lockgate(system.cli, "updates", "show", kb)
    assert code == 0
    for key in ("id", "kb", "title", "classification", "products", "severity", "supersedes"):
        assert key in shown
    assert (shown["expired"], shown["declined"], shown["superseded_by"]) == (False, False, [])
    code, listing, _ = await lockgate(system.cli, "updates", "list", "--filter", "approved")
    assert [u["kb"] for u in listing["updates"]] == [kb]
    assert listing["updates"][0]["id"] == listing["updates"][0]["update_id"]
    code, searched, _ = await lockgate(system.cli, "updates", "list", "--search", kb[-4:])
    assert kb in [u["kb"] for u in searched["updates"]]


async def offered_here(system: System, kb: str) -> bool:
    return bool(await system.db.fetchval("SELECT offered FROM approval.updates WHERE kb = $1", kb))


async def test_settings_decide_what_can_be_approved(system: System) -> None:
    """Updates outside the catalog settings are hidden from the default list (a filter shows
    them), skipped by rules, and refused for approval naming the update, what it is and what
    is offered; withdrawing keeps earlier approvals, offering again allows approving."""
    await system.group("Office users")
    await system.rpc.call(
        a.CREATE_RULE,
        a.CreateRule(
            rule=a.RuleSpec(
                name="all security", classifications=["Security Updates"], groups=["Office users"]
            )
        ),
    )
    await system.import_msrc(JAN)
    jan = await system.catalog_updates()
    offered = {kb for kb, u in jan.items() if u.offered}
    sql = sorted(kb for kb, u in jan.items() if u.product_families == ["SQL Server"])
    office = sorted(kb for kb, u in jan.items() if u.product_families == ["Microsoft Office"])
    assert sql
    assert office
    assert not set(sql) & offered
    assert set(office) <= offered

    # The rule approved, as they arrived, the offered security updates only.
    rule_approved = set(await system.approvals_of("Office users"))
    assert rule_approved == {kb for kb in offered if jan[kb].classification == "Security Updates"}
    listed = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates())
    assert {u.kb for u in listed.updates} == offered
    hidden = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(states=["not_offered"]))
    assert {u.kb for u in hidden.updates} == set(jan) - offered
    assert all(not u.offered and u.not_offered_because for u in hidden.updates)

    refusal = await refused(
        system,
        a.APPROVE,
        a.Approve(
            updates=[office[0], f"KB{sql[0]}"],
            groups=[a.GroupChoice(group="Office users", action="required_install")],
        ),
    )
    assert refusal.body.field == "updates[1]"
    assert f"update KB{sql[0]} (" in refusal.body.message
    assert "SQL Server is not offered (offered products: Windows, Microsoft Office)" in (
        refusal.body.message
    )

    # The operator stops offering Office: approval learns it from the withdrawn events.
    await system.rpc.call(c.CHANGE_SETTINGS, c.ChangeSettings(products=["Windows"]))

    async def withdrawn() -> bool:
        return not any([await offered_here(system, kb) for kb in office])

    await eventually(withdrawn, timeout=30, what="approval learning the withdrawn updates")
    code, _, err = await lockgate(
        system.cli, "updates", "approve", f"KB{office[0]}", "--group", "Office users"
    )
    assert code == 1
    assert "HTTP 409" in err
    assert f"update KB{office[0]} (" in err
    assert "Microsoft Office is not offered (offered products: Windows)" in err
    # Its approvals stay (the scheduler stops planning it), listed when asked for.
    assert set(office) <= set(await system.approvals_of("Office users"))
    default = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates())
    assert not set(office) & {u.kb for u in default.updates}
    code, listing, _ = await lockgate(system.cli, "updates", "list", "--filter", "not-offered")
    assert code == 0
    shown = {u["kb"]: u["states"] for u in listing["updates"]}
    assert set(shown) == set(jan) - offered_in_windows(jan)
    assert shown[office[0]] == ["approved", "not_offered"]
    # A rule run skips what is not offered.
    await system.rpc.call(
        a.CREATE_RULE,
        a.CreateRule(
            rule=a.RuleSpec(
                name="office later",
                classifications=["Security Updates"],
                products=["Microsoft Office"],
                groups=[a.ROOT_GROUP_NAME],
            )
        ),
    )
    ran = await system.rpc.call(a.RUN_RULE, a.RunRule(rule="office later"))
    assert ran.updates_approved == []

    # Offered again: approvable again, and the run now approves them.
    await system.rpc.call(
        c.CHANGE_SETTINGS, c.ChangeSettings(products=["Windows", "Microsoft Office"])
    )

    async def offered_again() -> bool:
        return all([await offered_here(system, kb) for kb in office])

    await eventually(offered_again, timeout=30, what="approval learning the offered updates")
    ran = await system.rpc.call(a.RUN_RULE, a.RunRule(rule="office later"))
    assert set(ran.updates_approved) == {jan[kb].update_id for kb in office}


def offered_in_windows(updates: dict[str, c.UpdateSnapshot]) -> set[str]:
    return {
        kb
        for kb, u in updates.items()
        if "Windows" in u.product_families
        and u.classification
        in ("Critical Updates", "Security Updates", "Definition Updates", "Update Rollups")
    }


# The console's pages: previews before saving, sorted lists, one update's approvals.


async def stored_approvals(system: System) -> tuple[list[Any], list[Any], int]:
    """Every explicit and effective approval row, and the outbox size: what a dry run must
    leave exactly as it was."""
    explicit = await system.db.fetch(
        "SELECT * FROM approval.explicit_approvals ORDER BY update_id, group_id"
    )
    effective = await system.db.fetch(
        "SELECT * FROM approval.effective_approvals ORDER BY update_id, group_id"
    )
    outbox = await system.db.fetchval("SELECT count(*) FROM approval.outbox")
    return [tuple(r) for r in explicit], [tuple(r) for r in effective], outbox


async def console_call(
    system: System, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """One request to the console API as the admin (the CLI's environment names it)."""
    async with httpx.AsyncClient(
        base_url=system.cli["LOCKGATE_URL"] + PREFIX,
        headers={"Authorization": f"Bearer {system.cli['LOCKGATE_TOKEN']}"},
        timeout=60,
    ) as http:
        response = await http.request(method, path, json=body)
    return response.status_code, response.json()


async def approvable(system: System) -> list[a.UpdateView]:
    """Updates an approval accepts: offered, not declined (the default list), not expired."""
    found = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(limit=10_000))
    return [u for u in found.updates if not u.expired]


async def test_a_dry_run_approval_shows_what_each_group_would_inherit_and_writes_nothing(
    system: System,
) -> None:
    """The console's approve dialog shows, before saving, what every group below the chosen
    ones will have and why; nothing is stored or published until the real approval, which
    then changes exactly what the preview counted."""
    await system.import_msrc(JAN)
    kb, other = sorted(u.kb or u.update_id for u in await approvable(system))[:2]
    await system.group("Europe")
    await system.group("France", parent="Europe")
    await system.group("Paris", parent="France")
    await system.group("Asia")
    paris_says_no = a.GroupChoice(group="Paris", action="do_not_install")
    await system.rpc.call(a.APPROVE, a.Approve(updates=[kb], groups=[paris_says_no]))
    await system.settle()
    system.events.clear()
    before = await stored_approvals(system)

    europe = a.GroupChoice(
        group="Europe", action="required_install", deadline=a.DeadlineChoice(kind="one_week")
    )
    preview = await system.rpc.call(
        a.APPROVE, a.Approve(updates=[kb, other], groups=[europe], dry_run=True)
    )
    assert [(s.kb, s.group_name, s.why) for s in preview.preview] == [
        (kb, "Europe", "explicit here"),
        (kb, "France", "inherited from Europe"),
        (kb, "Paris", "explicit here"),
        (other, "Europe", "explicit here"),
        (other, "France", "inherited from Europe"),
        (other, "Paris", "inherited from Europe"),
    ]
    france = preview.preview[1]
    assert france.explicit is None
    assert france.effective is not None
    assert (france.effective.action, france.effective.source_group_name) == (
        "required_install",
        "Europe",
    )
    assert france.effective.deadline.kind == "one_week"
    paris = preview.preview[2]
    assert paris.effective is not None
    assert paris.effective.action == "do_not_install"
    # Europe on both updates; Europe and France on the first (Paris keeps its own), all
    # three on the second.
    assert (preview.explicit_changed, preview.effective_changed) == (2, 5)
    assert not preview.preview_truncated

    await system.settle()
    assert system.events == [], "a dry run publishes nothing"
    assert await stored_approvals(system) == before, "a dry run writes nothing"
    assert await system.approvals_of("Europe") == {}
    assert await system.approvals_of("France") == {}
    nothing = await system.rpc.call(a.UPDATE_APPROVALS, a.UpdateApprovals(update=other))
    assert nothing.groups == []
    listed = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(states=["approved"]))
    assert [u.kb for u in listed.updates] == [kb], "only Paris's decision is stored"

    # Saving changes what the preview said, and shows no preview.
    saved = await system.rpc.call(a.APPROVE, a.Approve(updates=[kb, other], groups=[europe]))
    assert (saved.explicit_changed, saved.effective_changed) == (2, 5)
    assert (saved.preview, saved.preview_truncated) == ([], False)
    assert (await system.approvals_of("France"))[other].why == "inherited from Europe"
    assert (await system.approvals_of("Paris"))[kb].why == "explicit here"

    # Through the console: a preview of `inherit` on Europe says the children lose it.
    code, body = await console_call(
        system,
        "POST",
        "/updates/approve",
        {"updates": [other], "groups": [{"group": "Europe", "action": "inherit"}], "dry_run": True},
    )
    assert code == 200, body
    assert [(s["group_name"], s["why"]) for s in body["preview"]] == [
        ("Europe", "not approved"),
        ("France", "not approved"),
        ("Paris", "not approved"),
    ]
    assert (body["explicit_changed"], body["effective_changed"]) == (1, 3)

    # A preview of many updates on All computers stops at 2000 rows and says so.
    everything = [u.update_id for u in await approvable(system)][:1000]
    groups = len((await system.rpc.call(a.LIST_GROUPS, a.ListGroups())).groups)
    for i in range(max(0, -(-(a.PREVIEW_LIMIT + 1) // len(everything)) - groups)):
        await system.group(f"Ring {i}")
    before = await stored_approvals(system)
    wide = await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=everything,
            groups=[a.GroupChoice(group=a.ROOT_GROUP_NAME, action="available_install")],
            dry_run=True,
        ),
    )
    assert len(wide.preview) == a.PREVIEW_LIMIT
    assert wide.preview_truncated
    assert wide.explicit_changed == len(everything)
    assert wide.preview[0].group_name == a.ROOT_GROUP_NAME
    assert await stored_approvals(system) == before


async def test_a_dry_run_rule_run_lists_what_it_would_approve_and_writes_nothing(
    system: System,
) -> None:
    """Before running a rule over the updates already known, the console shows which updates
    it would approve and the approvals it would write; the real run then does just that."""
    await system.import_msrc(JAN)
    await system.group("Ring 1")
    rule = await system.rpc.call(
        a.CREATE_RULE,
        a.CreateRule(
            rule=a.RuleSpec(
                name="windows security",
                products=["Windows"],
                classifications=["Security Updates"],
                groups=["Ring 1"],
                deadline="one_week",
            )
        ),
    )
    await system.settle()
    system.events.clear()
    before = await stored_approvals(system)

    preview = await system.rpc.call(a.RUN_RULE, a.RunRule(rule=rule.name, dry_run=True))
    assert preview.updates_approved
    assert preview.explicit_changed == len(preview.approvals) == len(preview.updates_approved)
    assert [s.update_id for s in preview.approvals] == preview.updates_approved
    assert not preview.approvals_truncated
    for state in preview.approvals:
        assert (state.group_name, state.why) == ("Ring 1", "explicit here")
        assert state.explicit is not None
        assert state.explicit.action == "required_install"
        assert state.explicit.approved_by == f"rule:{rule.rule_id}"
        assert state.explicit.deadline.kind == "one_week"
    await system.settle()
    assert system.events == [], "a dry run publishes nothing (no rule.ran, no approval.changed)"
    assert await stored_approvals(system) == before
    assert await system.approvals_of("Ring 1") == {}

    # The CLI's --dry-run goes through the console's POST /rules/{rule}/run {"dry_run": true}.
    code, ran, err = await lockgate(system.cli, "rules", "run", rule.name, "--dry-run")
    assert code == 0, err
    assert ran["updates_approved"] == preview.updates_approved
    assert await stored_approvals(system) == before

    # A run without a body (as before dry runs existed) approves for real.
    code, body = await console_call(system, "POST", f"/rules/{rule.rule_id}/run")
    assert code == 200, body
    assert body["updates_approved"] == preview.updates_approved
    assert (body["explicit_changed"], body["approvals"]) == (preview.explicit_changed, [])
    assert set(await system.approvals_of("Ring 1")) == {s.kb for s in preview.approvals}
    await system.settle()
    assert len(system.of(a.RULE_RAN)) == 1


SEVERITY_RANK = {"Low": 1, "Moderate": 2, "Important": 3, "Critical": 4}
SORT_KEYS: dict[str, Any] = {
    "release_date": lambda u: u.release_date,
    "title": lambda u: u.title.lower(),
    "kb": lambda u: (len(u.kb or ""), u.kb or ""),
    "classification": lambda u: u.classification,
    "severity": lambda u: SEVERITY_RANK.get(u.severity or "", 0),
    "approved_groups": lambda u: u.approved_groups,
}


async def test_the_update_list_sorts_both_ways_and_pages_stably(system: System) -> None:
    """Every sort of the console's update list, each way, ties broken by update id, pages
    that join into the whole list; the states the database filters on are the states the
    list shows."""
    assert set(SORT_KEYS) == set(a.UPDATE_SORTS)
    await system.import_msrc(JAN, FEB)
    await system.group("Pilot")
    listed = await approvable(system)
    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[u.update_id for u in listed[:3]],
            groups=[a.GroupChoice(group="Pilot", action="required_install")],
        ),
    )
    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[listed[0].update_id],
            groups=[a.GroupChoice(group=a.ROOT_GROUP_NAME, action="do_not_install")],
        ),
    )
    await system.rpc.call(a.DECLINE, a.Decline(updates=[listed[3].update_id]))
    every_state = list(a.UPDATE_STATES)

    async def page(**asked: Any) -> a.UpdateList:
        return await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(states=every_state, **asked))

    everything = (await page(limit=10_000)).updates
    assert len(everything) > 20
    for state in a.UPDATE_STATES:
        found = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(states=[state], limit=10_000))
        wanted = [u.update_id for u in everything if state in u.states]
        assert sorted(u.update_id for u in found.updates) == sorted(wanted), state
        assert found.total == len(wanted)
    default = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(limit=10_000))
    hidden = {"declined", "not_offered"}
    assert {u.update_id for u in default.updates} == {
        u.update_id for u in everything if not hidden & set(u.states)
    }
    assert any(u.approved_groups == 2 for u in everything)

    for sort, key in SORT_KEYS.items():
        for descending in (False, True):
            whole = (await page(sort=sort, descending=descending, limit=10_000)).updates
            expected = sorted(everything, key=lambda u: (key(u), u.update_id), reverse=descending)
            assert [u.update_id for u in whole] == [u.update_id for u in expected], (
                sort,
                descending,
            )

    titles = (await page(sort="title", descending=False, limit=10_000)).updates
    backwards = (await page(sort="title", descending=True, limit=10_000)).updates
    assert [u.update_id for u in backwards] == [u.update_id for u in reversed(titles)]
    for descending, whole in ((False, titles), (True, backwards)):
        joined: list[str] = []
        while len(joined) < len(whole):
            got = await page(sort="title", descending=descending, offset=len(joined), limit=7)
            assert got.total == len(whole)
            joined += [u.update_id for u in got.updates]
        assert joined == [u.update_id for u in whole]
    newest = await system.rpc.call(a.LIST_UPDATES, a.ListUpdates(limit=5))
    assert [u.update_id for u in newest.updates] == [
        u.update_id
        for u in sorted(default.updates, key=lambda u: (u.release_date, u.update_id), reverse=True)[
            :5
        ]
    ], "the default stays newest release first"


async def test_an_updates_approvals_list_every_group_it_reaches_in_tree_order(
    system: System,
) -> None:
    """The console's update page lists each group where the update is set or applies, with
    why, All computers first and the tree's order after it; other groups are left out."""
    await system.import_msrc(JAN)
    kb = sorted(u.kb or u.update_id for u in await approvable(system))[0]
    await system.group("Europe")
    await system.group("France", parent="Europe")
    await system.group("Paris", parent="France")
    await system.group("Spain", parent="Europe")
    await system.group("Asia")
    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[kb],
            groups=[
                a.GroupChoice(
                    group="Europe",
                    action="required_install",
                    deadline=a.DeadlineChoice(kind="two_weeks"),
                ),
                a.GroupChoice(group="France", action="do_not_install"),
            ],
        ),
    )
    found = await system.rpc.call(a.UPDATE_APPROVALS, a.UpdateApprovals(update=f"KB{kb}"))
    assert found.kb == kb
    tree = [g.name for g in (await system.rpc.call(a.LIST_GROUPS, a.ListGroups())).groups]
    reached = {
        "Europe": "explicit here",
        "France": "explicit here",
        "Paris": "inherited from France",
        "Spain": "inherited from Europe",
    }
    assert [(s.group_name, s.why) for s in found.groups] == [
        (name, reached[name]) for name in tree if name in reached
    ]
    spain = next(s for s in found.groups if s.group_name == "Spain")
    assert spain.explicit is None
    assert spain.effective is not None
    assert spain.effective.deadline.kind == "two_weeks"

    await system.rpc.call(
        a.APPROVE,
        a.Approve(
            updates=[kb],
            groups=[a.GroupChoice(group=a.ROOT_GROUP_NAME, action="available_install")],
        ),
    )
    code, body = await console_call(system, "GET", f"/updates/KB{kb}/approvals")
    assert code == 200, body
    reached |= {a.ROOT_GROUP_NAME: "explicit here", "Asia": f"inherited from {a.ROOT_GROUP_NAME}"}
    assert [(s["group_name"], s["why"]) for s in body["groups"]] == [
        (name, reached[name]) for name in tree if name in reached
    ]
    assert body["groups"][0]["group_id"] == a.ROOT_GROUP_ID

    unknown = await refused(system, a.UPDATE_APPROVALS, a.UpdateApprovals(update="KB0000001"))
    assert unknown.body.field == "update"
    code, _ = await console_call(system, "GET", "/updates/KB0000001/approvals")
    assert code == 404
