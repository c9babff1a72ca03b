"""Dead letters as a tool (issue 17 item 6), against the real scheduler, broker and database:
messages the scheduler really dead-letters are kept by the console's keeper, listed and shown
with their reason and origin, counted on the gauge, replayed through the normal path (once,
or back with one more attempt when they fail again) and purged; a viewer reads but does not
replay; the CLI does the same over HTTP."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from libs.bus import Bus
from libs.contracts import agents as ag
from libs.contracts.api import PREFIX
from libs.contracts.names import Exchange
from libs.db.pool import drop_database, ensure_database
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.integration.test_approval import delete_queues, lockgate
from tests.support.console import ConsoleUnderTest, running_console
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_as_agent, publish_checkins

pytestmark = pytest.mark.integration

CHECKINS = "scheduler.agent-checkins"
REPORTS = "scheduler.agent-reports"


@dataclass(frozen=True)
class Keeping:
    console: ConsoleUnderTest
    bus: Bus
    db: asyncpg.Connection
    cli: dict[str, str]

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.console.url + PREFIX,
            headers={"Authorization": f"Bearer {token or self.console.admin_token}"},
            timeout=60,
        )


@pytest.fixture
async def keeping(infra: Infra, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Keeping]:
    """The scheduler and the console with its dead-letter keeper, on a database of their own."""
    url = f"{infra.database_url}_dlq{abs(hash(request.node.name)) % 100_000}"
    await ensure_database(url)
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=url, heartbeat_seconds=60, rpc_timeout_seconds=5
    )
    scheduler = ServiceProcess(SCHEDULER, settings, http_port=0)
    await scheduler.start()
    db = await asyncpg.connect(url)
    try:
        async with running_console(settings, dead_letter_keeper=True) as console:
            yield Keeping(console, bus, db, console.cli_env(infra.env()))
    finally:
        await db.close()
        await scheduler.stop()
        await delete_queues(bus, (SCHEDULER,))
        await drop_database(url)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def kept(http: httpx.AsyncClient, message_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Wait until the keeper stored these messages (any state); them, by message id."""
    found: dict[str, dict[str, Any]] = {}

    async def stored() -> bool:
        page = ok(await http.get("/dead-letters", params={"state": "all", "limit": 1000}))
        found.clear()
        found.update(
            {d["message_id"]: d for d in page["dead_letters"] if d["message_id"] in message_ids}
        )
        return set(found) == message_ids

    await eventually(stored, timeout=20, what=f"{sorted(message_ids)} in the dead-letter store")
    return found


async def gauge(console: ConsoleUnderTest, queue: str) -> float | None:
    """lockgate_dead_letters_waiting of one dead-letter queue, as the console exposes it."""
    async with httpx.AsyncClient(base_url=console.url) as plain:
        text = (await plain.get("/metrics")).text
    found = re.search(
        rf'^lockgate_dead_letters_waiting\{{queue="{re.escape(queue)}"\}} (\S+)$', text, re.M
    )
    return None if found is None else float(found.group(1))


async def waiting(http: httpx.AsyncClient, queue: str) -> int:
    page = ok(await http.get("/dead-letters", params={"limit": 1}))
    return sum(q["waiting"] for q in page["queues"] if q["queue"] == queue)


async def gauge_agrees(keeping: Keeping, http: httpx.AsyncClient, queue: str) -> None:
    async def agrees() -> bool:
        return await gauge(keeping.console, queue + ".dlq") == await waiting(http, queue)

    await eventually(agrees, timeout=20, what=f"the gauge of {queue}.dlq to match the store")


async def test_dead_letters_are_kept_shown_replayed_and_purged(keeping: Keeping) -> None:
    base = uuid.uuid4().hex[:8]
    bad_sender, ghost = f"{base}-bad", f"{base}-ghost"
    # A check-in the pipeline refuses before any handler (hostname is not text) ...
    broken, key = checkin(bad_sender)
    data = json.loads(broken.body)
    broken.body = json.dumps(data | {"hostname": 42}).encode()
    broken_id = broken.message_id or ""
    await publish_checkins(keeping.bus, [(broken, key)])
    # ... and a status report its handler refuses: the computer has not checked in yet.
    status = ag.AgentStatus(computer_id=ghost, reported_at=datetime.now(UTC), user_logged_on=True)
    status_id = await publish_as_agent(
        keeping.bus, ghost, ag.AGENT_STATUS.type, status.model_dump_json().encode()
    )

    async with keeping.client() as http:
        found = await kept(http, {broken_id, status_id})
        refused, failed = found[broken_id], found[status_id]
        assert refused["reason_class"] == "InvalidMessage"
        assert "field 'hostname' = 42" in refused["reason"]
        assert refused["queue"] == CHECKINS
        assert refused["dead_letter_queue"] == CHECKINS + ".dlq"
        assert refused["original_exchange"] == Exchange.AGENTS.value
        assert refused["original_routing_key"] == f"agent.{bad_sender}.checkin.v1"
        assert refused["message_type"] == "agent.checkin.v1"
        assert (refused["attempts"], refused["state"]) == (1, "waiting")
        assert failed["reason_class"] == "InvalidInput"
        assert "is not registered" in failed["reason"]
        assert failed["queue"] == REPORTS
        assert failed["handler"] == "agent-reports/record_status"
        assert failed["original_routing_key"] == f"agent.{ghost}.status.v1"
        assert failed["attempts"] == 1
        assert failed["first_failed_at"] == failed["last_failed_at"]

        shown = ok(await http.get(f"/dead-letters/{refused['dead_letter_id']}"))
        assert json.loads(shown["body_text"])["hostname"] == 42
        assert shown["headers"]["ce-type"] == "agent.checkin.v1"
        assert not {"x-lockgate-reason", "x-original-routing-key", "x-delivery-count"} & set(
            shown["headers"]
        )
        await gauge_agrees(keeping, http, CHECKINS)
        assert await gauge(keeping.console, CHECKINS + ".dlq") == await waiting(http, CHECKINS) > 0

        # A viewer reads, and is refused replay and purge.
        viewer = ok(await http.post("/tokens", json={"name": "watcher", "role": "viewer"}), 201)
        async with keeping.client(viewer["token"]) as watching:
            listed = ok(await watching.get("/dead-letters", params={"queue": REPORTS + ".dlq"}))
            assert status_id in {d["message_id"] for d in listed["dead_letters"]}
            ok(await watching.get(f"/dead-letters/{failed['dead_letter_id']}"))
            denied = await watching.post(f"/dead-letters/{failed['dead_letter_id']}/replay")
            assert denied.status_code == 403, denied.text
            denied = await watching.delete(f"/dead-letters/{failed['dead_letter_id']}")
            assert denied.status_code == 403, denied.text

        # Fixed (the computer checks in), the report replays through the normal path, once.
        await publish_checkins(keeping.bus, [checkin(ghost)])

        async def registered() -> bool:
            return bool(
                await keeping.db.fetchval(
                    "SELECT count(*) FROM scheduler.computers WHERE computer_id = $1", ghost
                )
            )

        await eventually(registered, timeout=20, what=f"{ghost} to check in")
        replayed = ok(await http.post(f"/dead-letters/{failed['dead_letter_id']}/replay"))
        assert replayed == {"replayed": [failed["dead_letter_id"]], "failed": []}

        async def took_effect() -> bool:
            return bool(
                await keeping.db.fetchval(
                    "SELECT user_logged_on FROM scheduler.computers WHERE computer_id = $1", ghost
                )
            )

        await eventually(took_effect, timeout=20, what="the replayed report to take effect")
        handled = await keeping.db.fetchval(
            "SELECT count(*) FROM scheduler.inbox WHERE message_id = $1", status_id
        )
        assert handled == 1
        again = await http.post(f"/dead-letters/{failed['dead_letter_id']}/replay")
        assert again.status_code == 409, again.text
        after = ok(await http.get(f"/dead-letters/{failed['dead_letter_id']}"))
        assert (after["state"], after["attempts"]) == ("replayed", 1)
        assert after["replayed_at"] is not None

        # The CLI lists and replays a queue's: the broken check-in fails again, attempts 2.
        code, printed, err = await lockgate(keeping.cli, "dlq", "list", "--queue", CHECKINS)
        assert code == 0, err
        assert broken_id in {d["message_id"] for d in printed["dead_letters"]}
        code, printed, err = await lockgate(
            keeping.cli, "dlq", "replay", "--all", "--queue", CHECKINS + ".dlq"
        )
        assert code == 0, err
        assert refused["dead_letter_id"] in printed["replayed"]
        assert failed["dead_letter_id"] not in printed["replayed"]  # another queue's, replayed

        async def back() -> bool:
            letter = ok(await http.get(f"/dead-letters/{refused['dead_letter_id']}"))
            return bool(letter["attempts"] == 2 and letter["state"] == "waiting")

        await eventually(back, timeout=20, what="the replayed check-in to fail again")
        letter = ok(await http.get(f"/dead-letters/{refused['dead_letter_id']}"))
        assert letter["last_failed_at"] > letter["first_failed_at"]
        assert "field 'hostname' = 42" in letter["reason"]

        # Purge: one by id (CLI), a queue's (API); asking for neither names the field.
        code, printed, err = await lockgate(
            keeping.cli, "dlq", "purge", str(refused["dead_letter_id"])
        )
        assert (code, printed) == (0, {"purged": 1}), err
        gone = await http.get(f"/dead-letters/{refused['dead_letter_id']}")
        assert gone.status_code == 404, gone.text
        purged = ok(await http.delete("/dead-letters", params={"queue": REPORTS}))
        assert purged["purged"] >= 1
        listed = ok(await http.get("/dead-letters", params={"state": "all"}))
        assert not {broken_id, status_id} & {d["message_id"] for d in listed["dead_letters"]}
        unnamed = await http.delete("/dead-letters")
        assert (unnamed.status_code, unnamed.json()["field"]) == (422, "queue"), unnamed.text
        unknown = await http.get("/dead-letters", params={"queue": "nowhere"})
        assert unknown.status_code == 422, unknown.text
        assert "nowhere" in unknown.json()["detail"]
        await gauge_agrees(keeping, http, CHECKINS)
        await gauge_agrees(keeping, http, REPORTS)
