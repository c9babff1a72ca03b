"""The four services as real processes: ready, answering, talking to each other, stopping."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from libs.bus import Bus, RpcClient, to_amqp
from libs.contracts import Envelope
from libs.contracts.names import Exchange
from libs.contracts.reporting import LIST_SERVICE_INSTANCES, ListServiceInstances
from libs.contracts.system import HEARTBEAT, ServiceHeartbeat
from libs.settings import SERVICE_NAMES
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_checkins
from tests.support.processes import ROOT, ServiceRunner

pytestmark = pytest.mark.integration


@pytest.fixture
async def system(infra: Infra, log_dir: Path) -> AsyncIterator[dict[str, ServiceRunner]]:
    """All four services started as `python -m services.<name>`, ready."""
    runners: dict[str, ServiceRunner] = {
        name: ServiceRunner(
            name,
            infra,
            log_dir,
            LOCKGATE_HEARTBEAT_SECONDS="0.5",
            LOCKGATE_METRICS_SAMPLE_SECONDS="1",
        )
        for name in SERVICE_NAMES
    }
    for runner in runners.values():
        runner.start()
    try:
        await asyncio.gather(*(runner.wait_ready() for runner in runners.values()))
        yield runners
    finally:
        for runner in runners.values():
            runner.stop_quietly()


def cli(
    infra: Infra, runners: dict[str, ServiceRunner], *args: str
) -> subprocess.CompletedProcess[str]:
    ports = {f"LOCKGATE_{name.upper()}_HTTP_PORT": str(r.port) for name, r in runners.items()}
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "--json", *args],
        cwd=ROOT,
        env=infra.env(**ports),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_every_service_is_ready_and_answers_ping(
    infra: Infra, system: dict[str, ServiceRunner]
) -> None:
    """`lockgate ping` reaches each service over RabbitMQ and each answers from its database."""
    result = await asyncio.to_thread(cli, infra, system, "ping", "all")
    assert result.returncode == 0, result.stderr
    pongs = json.loads(result.stdout)
    assert sorted(pongs) == sorted(SERVICE_NAMES)
    assert all(pong["service"] == name for name, pong in pongs.items())
    assert all(pong["database_time"] for pong in pongs.values())


@pytest.mark.usefixtures("system")
async def test_heartbeats_flow_from_every_service_to_reporting(bus: Bus) -> None:
    """Each service's heartbeat crosses the broker through its outbox and reporting counts it."""
    rpc = RpcClient(bus, source="tests", timeout=5)
    await rpc.start()

    async def all_seen() -> bool:
        reply = await rpc.call(LIST_SERVICE_INSTANCES, ListServiceInstances())
        live = {i.service for i in reply.instances if i.heartbeats_total >= 2}
        return live >= set(SERVICE_NAMES)

    await eventually(all_seen, timeout=20, what="two heartbeats from every service", every=0.3)


@pytest.mark.usefixtures("system")
async def test_agent_checkin_reaches_approval_through_scheduler(
    bus: Bus, db: asyncpg.Connection
) -> None:
    """A first check-in registers the computer and approval puts it in its computer list."""
    computer = f"sys-{uuid.uuid4().hex[:8]}"
    await publish_checkins(bus, [checkin(computer)])

    async def known_to_approval() -> bool:
        return bool(
            await db.fetchval("SELECT 1 FROM approval.computers WHERE computer_id = $1", computer)
        )

    await eventually(known_to_approval, timeout=15, what="approval to learn the computer")


@pytest.mark.usefixtures("system")
async def test_service_queues_are_quorum_with_a_dead_letter_queue(
    infra: Infra,
) -> None:
    """Every service queue is a quorum queue with a delivery limit and its own <queue>.dlq."""
    listing = await asyncio.to_thread(
        subprocess.run,
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            infra.vhost,
            "name",
            "type",
            "arguments",
            "--formatter",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    queues = {q["name"]: q for q in json.loads(listing.stdout)}
    mine = {name: q for name, q in queues.items() if name.split(".")[0] in SERVICE_NAMES}
    assert {
        "scheduler.agent-checkins",
        "reporting.service-heartbeats",
        "approval.computers",
        "catalog.commands",
    } <= set(mine)
    assert {q["type"] for q in mine.values()} == {"quorum"}
    for name, queue in mine.items():
        if name.endswith(".dlq"):
            continue
        assert f"{name}.dlq" in mine, f"{name} has no dead-letter queue"
        args = {name: value for name, _kind, value in queue["arguments"]}
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-delivery-limit"] >= 1


async def test_metrics_and_health_endpoints(system: dict[str, ServiceRunner]) -> None:
    """Prometheus can scrape handler metrics and orchestrators can probe liveness."""
    port = system["reporting"].port

    def get(path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()

    async def heartbeat_metric() -> bool:
        status, body = await asyncio.to_thread(get, "/metrics")
        return status == 200 and (
            'lockgate_messages_handled_total{handler="service-heartbeats/record_heartbeat"}' in body
        )

    await eventually(heartbeat_metric, timeout=15, what="the handled-messages metric")

    async def queue_metrics() -> bool:
        """Sampled from start, then every LOCKGATE_METRICS_SAMPLE_SECONDS: each service
        reports its own queues and dead-letter queues."""
        _, body = await asyncio.to_thread(get, "/metrics")
        return (
            'lockgate_queue_consumers{queue="reporting.service-heartbeats"} 1.0' in body
            and 'lockgate_queue_messages{queue="reporting.service-heartbeats.dlq"}' in body
        )

    await eventually(queue_metrics, timeout=30, what="the queue depth and consumer gauges")
    status, body = await asyncio.to_thread(get, "/healthz")
    assert (status, json.loads(body)["status"]) == (200, "alive")
    status, body = await asyncio.to_thread(get, "/readyz")
    assert json.loads(body)["checks"] == {"database": True, "broker": True}


async def test_sigterm_stops_each_service_cleanly(system: dict[str, ServiceRunner]) -> None:
    """SIGTERM drains and closes: exit code 0, outbox flushed, within the grace period."""
    for runner in system.values():
        assert await asyncio.to_thread(runner.terminate, 30) == 0, runner.log()
        log = runner.log()
        assert '"service.outbox_flushed"' in log
        assert '"service.stopped"' in log


@pytest.mark.usefixtures("system")
async def test_instances_that_stop_beating_turn_stale(bus: Bus) -> None:
    """Operators must tell a dead instance from a live one: 3 missed intervals make it stale."""
    instance = f"gone-{uuid.uuid4().hex[:6]}"
    heartbeat = ServiceHeartbeat(
        service="catalog",
        instance_id=instance,
        version="0.0.1",
        started_at=datetime.now(UTC),
        sequence=1,
        interval_seconds=0.2,
    )
    envelope = Envelope.new(
        source="lockgate/catalog", type=HEARTBEAT["catalog"].type, subject=instance
    )
    await bus.publish(
        to_amqp(envelope, heartbeat.model_dump_json().encode()),
        exchange=Exchange.EVENTS.value,
        routing_key=HEARTBEAT["catalog"].type,
    )
    rpc = RpcClient(bus, source="tests", timeout=5)
    await rpc.start()

    async def stale() -> bool:
        everyone = await rpc.call(LIST_SERVICE_INSTANCES, ListServiceInstances(include_stale=True))
        mine = [i for i in everyone.instances if i.instance_id == instance]
        return bool(mine) and not mine[0].alive

    await eventually(stale, timeout=15, what="the silent instance to turn stale")
    live = await rpc.call(LIST_SERVICE_INSTANCES, ListServiceInstances())
    assert instance not in {i.instance_id for i in live.instances}
