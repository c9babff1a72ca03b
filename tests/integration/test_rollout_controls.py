"""Pause, resume and roll back an update, and the Alertmanager webhook that pauses a bad
patch, end to end: the real catalog, approval and scheduler against real RabbitMQ and
PostgreSQL, the console API in the test's loop, and a hand-moved clock for the scheduler.

Agents are played by the test as in tests/integration/test_scheduler.py (Fleet, Agent).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import httpx
import pytest
import yaml

from libs.bus import Bus, RpcClient
from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts.api import PREFIX
from libs.contracts.names import Exchange
from libs.contracts.registry import REGISTRY
from services.console.alerts import PATH as WEBHOOK
from services.console.auth import BOOTSTRAP_NAME
from tests.integration.test_catalog_msrc import JAN, import_request
from tests.integration.test_scheduler import (
    Fleet,
    db_suffix,
    local,
    publish_update,
    scheduler_system,
    tool_update,
)
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.messages import eventually
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

ALERT = "LockgateUpdateFailureRateHigh"
PROMTOOL_CASES = ROOT / "deploy/prometheus/tests/lockgate_test.yml"


class Controlled(Fleet):
    """A fleet with the console's address and token, and every `approval.update.*` event."""

    url = ""
    token = ""
    events: list[tuple[str, dict[str, Any]]]

    async def tap(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        kind = str((message.headers or {})["ce-type"])
        REGISTRY.event(kind).model.model_validate_json(message.body)
        self.events.append((kind, json.loads(message.body)))
        await message.ack()

    def of(self, spec: Any) -> list[dict[str, Any]]:
        return [body for kind, body in self.events if kind == spec.type]

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {} if token == "" else {"Authorization": f"Bearer {token or self.token}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60)

    async def post(self, path: str, body: object, token: str | None = None) -> httpx.Response:
        async with self.http(token) as client:
            return await client.post(PREFIX + path, json=body)


@pytest.fixture
async def fleet(
    infra: Infra, bus: Bus, request: pytest.FixtureRequest
) -> AsyncIterator[Controlled]:
    async with scheduler_system(infra, bus, db_suffix(request, "rc")) as (settings, db, clock):
        found = Controlled(bus, RpcClient(bus, source="tests", timeout=60), db, clock)
        found.events = []
        found.channel = await bus.connection.channel()
        events = await found.channel.declare_queue("tests.rollout-controls", exclusive=True)
        await events.bind(Exchange.EVENTS.value, routing_key="approval.update.#")
        await events.consume(found.tap)
        try:
            async with running_console(settings) as console:
                found.url, found.token = console.url, console.admin_token
                found.cli = console.cli_env(infra.env())
                yield found
        finally:
            await found.channel.close()


async def two_updates(fleet: Fleet) -> tuple[c.UpdateSnapshot, c.UpdateSnapshot]:
    """Import January; two updates that always restart (nothing installs at once)."""
    await fleet.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    found = await fleet.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
    first, second = sorted(
        (u for u in found.updates if u.restart == "always" and u.kb), key=lambda u: u.kb or ""
    )[:2]

    async def known() -> bool:
        count = await fleet.db.fetchval(
            "SELECT (SELECT count(*) FROM approval.updates WHERE update_id = ANY ($1::uuid[]))"
            " + (SELECT count(*) FROM scheduler.updates WHERE update_id = ANY ($1::uuid[]))",
            [first.update_id, second.update_id],
        )
        return bool(count == 4)

    await eventually(known, timeout=30, what="approval and scheduler learning the updates")
    return first, second


def items_of(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["update_id"]: item for item in plan["items"]}


def installs_of(instruction: dict[str, Any]) -> list[tuple[str, str]]:
    return [(u["update_id"], u["action"]) for u in instruction["updates"]]


async def test_pause_holds_one_update_while_another_installs_then_resume_and_rollback(
    fleet: Controlled,
) -> None:
    paused, other = await two_updates(fleet)
    await fleet.policy(
        "Nightly",
        a.ROOT_GROUP_NAME,
        use_maintenance_window=False,
        scheduled_time="03:00",
        allow_immediate_install=False,
    )
    agent = await fleet.agent("pc-pause")
    for update in (paused, other):
        await fleet.approve(update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="none"))
    await fleet.quiet()
    window = local("2026-03-03T03:00")
    planned = items_of(agent.of(ag.PLAN)[-1])
    assert set(planned) == {paused.update_id, other.update_id}
    assert {datetime.fromisoformat(i["install_at"]) for i in planned.values()} == {window}

    # Pause fleet-wide through the API: who is the console's caller; a body cannot say.
    reason = "blue screens on the pilot machines"
    claimed = await fleet.post(
        f"/updates/KB{paused.kb}/pause", {"reason": reason, "requested_by": "someone-else"}
    )
    assert claimed.status_code == 422
    assert claimed.json()["field"] == "requested_by"
    response = await fleet.post(f"/updates/KB{paused.kb}/pause", {"reason": reason})
    assert response.status_code == 200, response.text
    reply = a.UpdateControlled.model_validate(response.json())
    assert (reply.verb, reply.changed, reply.group_id) == ("paused", True, None)
    assert reply.by == f"token:{BOOTSTRAP_NAME}"
    assert reply.effective_changed >= 1
    await fleet.quiet()
    (event,) = fleet.of(a.UPDATE_PAUSED)
    assert event["reason"] == "blue screens on the pilot machines"
    assert event["by"] == f"token:{BOOTSTRAP_NAME}"

    # The agent is told at its next check-in: the item is paused, with nothing to do.
    await agent.checkin()
    plans = await agent.wait_for(ag.PLAN, len(agent.of(ag.PLAN)) + 1)
    items = items_of(plans[-1])
    assert items[paused.update_id]["paused"]["reason"] == "blue screens on the pilot machines"
    assert items[paused.update_id]["install_at"] is None
    assert items[other.update_id]["paused"] is None

    # At the window only the other update installs.
    await fleet.advance(window - fleet.clock.now() + timedelta(seconds=1))
    (install,) = await agent.wait_for(ag.INSTALL)
    assert installs_of(install) == [(other.update_id, "required_install")]
    await agent.installed(other.update_id, 0)

    # Pausing again changes nothing and publishes nothing.
    again = await fleet.rpc.call(
        a.PAUSE_UPDATE, a.PauseUpdate(update=paused.update_id, reason="still bad")
    )
    assert not again.changed
    assert "blue screens" in (again.note or "")

    # Resume: it installs at the next window.
    resumed = await fleet.rpc.call(
        a.RESUME_UPDATE, a.ResumeUpdate(update=paused.update_id, reason="vendor re-released it")
    )
    assert resumed.changed
    await fleet.quiet()
    await agent.checkin()
    await fleet.quiet()
    assert items_of(agent.of(ag.PLAN)[-1])[paused.update_id]["paused"] is None
    await fleet.advance(timedelta(days=1))
    last = agent.of(ag.INSTALL)[-1]
    assert installs_of(last) == [(paused.update_id, "required_install")]
    await agent.installed(paused.update_id, 0)
    await fleet.quiet()

    # Roll back: the approval becomes uninstall, and the next window removes it.
    response = await fleet.post(
        f"/updates/{paused.update_id}/rollback", {"reason": "breaks printing"}
    )
    assert response.status_code == 200, response.text
    rolled = a.UpdateControlled.model_validate(response.json())
    assert rolled.groups == [a.ROOT_GROUP_NAME]
    await fleet.quiet()
    approvals = await fleet.rpc.call(a.UPDATE_APPROVALS, a.UpdateApprovals(update=paused.kb or ""))
    (root,) = [g for g in approvals.groups if g.group_id == a.ROOT_GROUP_ID]
    assert root.effective is not None
    assert root.effective.action == "uninstall"
    assert root.effective.approved_by == f"rollback:token:{BOOTSTRAP_NAME}"
    before = len(agent.of(ag.INSTALL))
    await fleet.advance(timedelta(days=1))
    removals = [installs_of(i) for i in agent.of(ag.INSTALL)[before:]]
    assert [(paused.update_id, "uninstall")] in removals
    assert [e["verb"] for e in fleet.of(a.UPDATE_ROLLED_BACK)] == ["rolled_back"]
    assert [e["verb"] for e in fleet.of(a.UPDATE_RESUMED)] == ["resumed"]


async def test_group_pause_holds_only_that_group_and_bad_input_is_named(fleet: Controlled) -> None:
    update, spare = await two_updates(fleet)
    await fleet.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Pilot"))
    await fleet.approve(update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="none"))
    reply = await fleet.rpc.call(
        a.PAUSE_UPDATE, a.PauseUpdate(update=update.update_id, group="Pilot", reason="pilot")
    )
    assert (reply.changed, reply.group_name) == (True, "Pilot")
    approvals = await fleet.rpc.call(a.UPDATE_APPROVALS, a.UpdateApprovals(update=update.update_id))
    paused = {g.group_name: g.effective.paused for g in approvals.groups if g.effective}
    assert paused[a.ROOT_GROUP_NAME] is None
    pilot = paused["Pilot"]
    assert pilot is not None
    assert (pilot.group_name, pilot.reason, pilot.paused_by) == ("Pilot", "pilot", "operator")

    async def problem(path: str, body: object) -> dict[str, Any]:
        response = await fleet.post(path, body)
        assert response.status_code in (404, 422), response.text
        found: dict[str, Any] = response.json()
        return found

    empty = await problem(f"/updates/{update.update_id}/pause", {"reason": "   "})
    assert empty["field"] == "reason"
    unknown = await problem("/updates/KB0000001/pause", {"reason": "x"})
    assert unknown["field"] == "update"
    assert "'KB0000001'" in unknown["detail"]
    no_group = await problem(
        f"/updates/{update.update_id}/resume", {"reason": "x", "group": "Nope"}
    )
    assert no_group["field"] == "group"
    nothing = await problem(f"/updates/{spare.update_id}/rollback", {"reason": "x"})
    assert "approved for install in no group" in nothing["detail"]


def promtool_alert() -> tuple[dict[str, str], dict[str, str]]:
    """The labels (with alertname) and annotations the alert rule's own promtool case
    expects when LockgateUpdateFailureRateHigh fires."""
    cases = yaml.safe_load(PROMTOOL_CASES.read_text())
    for case in cases["tests"]:
        for check in case.get("alert_rule_test", []):
            if check["alertname"] == ALERT and check["exp_alerts"]:
                (expected,) = check["exp_alerts"]
                labels = {"alertname": ALERT, **expected["exp_labels"]}
                return labels, expected["exp_annotations"]
    raise AssertionError(f"{PROMTOOL_CASES} has no firing case of {ALERT}")


def payload(status: str, labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    """Alertmanager's webhook JSON (version 4) for one alert."""
    return {
        "version": "4",
        "groupKey": '{}/{alertname="LockgateUpdateFailureRateHigh"}:{update="'
        + labels.get("update", "")
        + '"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "lockgate-console",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-03-02T09:25:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-02T10:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "5f2d7c0e9a1b3c4d",
            }
        ],
    }


async def test_the_failure_rate_alert_pauses_its_update_everywhere(fleet: Controlled) -> None:
    labels, annotations = promtool_alert()
    kb = labels["update"].removeprefix("KB")
    update = tool_update().model_copy(
        update={"kb": kb, "title": f"Bad patch (KB{kb})", "restart": "always"}
    )
    await publish_update(fleet, update)
    await fleet.rpc.call(a.CREATE_GROUP, a.CreateGroup(name="Broad"))
    await fleet.approve(update.update_id, a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="none"))
    agent = await fleet.agent("pc-alerted")
    await fleet.quiet()

    # Without a token, or with a viewer's, the webhook does nothing.
    firing = payload("firing", labels, annotations)
    assert (await fleet.post(WEBHOOK.removeprefix(PREFIX), firing, token="")).status_code == 401
    async with fleet.http() as client:
        made = await client.post(f"{PREFIX}/tokens", json={"name": "watcher", "role": "viewer"})
    viewer = made.json()["token"]
    assert (await fleet.post(WEBHOOK.removeprefix(PREFIX), firing, token=viewer)).status_code == 403
    assert fleet.of(a.UPDATE_PAUSED) == []

    response = await fleet.post(WEBHOOK.removeprefix(PREFIX), firing)
    assert response.status_code == 200, response.text
    (outcome,) = response.json()["outcomes"]
    assert (outcome["done"], outcome["update"]) == ("paused", labels["update"])
    await fleet.quiet()
    (event,) = fleet.of(a.UPDATE_PAUSED)
    assert event["by"] == f"alert:{ALERT}"
    assert ALERT in event["reason"]
    assert annotations["summary"] in event["reason"]
    assert event["group_id"] is None

    # Paused everywhere: every group's approval, and the computer's plan.
    rows = await fleet.db.fetch(
        "SELECT group_id::text, paused_by FROM approval.effective_approvals"
        " WHERE update_id = $1::uuid",
        update.update_id,
    )
    assert len(rows) == 2
    assert {r["paused_by"] for r in rows} == {f"alert:{ALERT}"}
    await agent.checkin()
    await fleet.quiet()
    (item,) = agent.of(ag.PLAN)[-1]["items"]
    assert item["paused"]["paused_by"] == f"alert:{ALERT}"
    assert item["install_at"] is None
    assert agent.of(ag.INSTALL) == []

    # Alertmanager repeating the alert changes nothing; resolving does not resume; another
    # alert is accepted and ignored.
    repeated = await fleet.post(WEBHOOK.removeprefix(PREFIX), firing)
    assert [o["done"] for o in repeated.json()["outcomes"]] == ["already_paused"]
    resolved = await fleet.post(
        WEBHOOK.removeprefix(PREFIX), payload("resolved", labels, annotations)
    )
    assert resolved.status_code == 200
    assert [o["done"] for o in resolved.json()["outcomes"]] == ["ignored"]
    other = payload("firing", {"alertname": "LockgateServiceDown", "job": "scheduler"}, {})
    ignored = await fleet.post(WEBHOOK.removeprefix(PREFIX), other)
    assert ignored.status_code == 200
    assert ignored.json()["outcomes"][0]["done"] == "ignored"
    await fleet.quiet()
    await asyncio.sleep(0.5)
    assert len(fleet.of(a.UPDATE_PAUSED)) == 1
    assert fleet.of(a.UPDATE_RESUMED) == []
    still = await fleet.db.fetchval(
        "SELECT count(*) FROM approval.effective_approvals WHERE update_id = $1::uuid"
        " AND paused_by IS NOT NULL",
        update.update_id,
    )
    assert still == 2

    # The audit log keeps every call with the token that made it.
    async with fleet.http() as client:
        audit = await client.get(
            f"{PREFIX}/audit", params={"command": "console.alertmanager.notify"}
        )
    entries = audit.json()["entries"]
    assert {(e["status"], e["token_name"]) for e in entries} >= {
        (401, "anonymous"),
        (403, "watcher"),
        (200, BOOTSTRAP_NAME),
    }
