"""Outages are waited out, not dead-lettered (issue 17): the database stopped mid-stream, a
service started before its database or broker, the broker connection cut mid-stream.

Everything runs against a private PostgreSQL cluster (tests/support/servers.py) and a
private vhost on the shared broker; the shared servers are never stopped.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from libs.bus import Bus
from libs.contracts.names import dead_letter_queue_name
from libs.contracts.scheduler import AGENT_CHECKIN
from libs.db.pool import ensure_database
from tests.support.faults import FaultResult, record
from tests.support.infra import Infra
from tests.support.messages import (
    checkin,
    dead_lettered,
    eventually,
    publish_as_agent,
    publish_checkins,
)
from tests.support.processes import ServiceRunner, free_port, readyz
from tests.support.proxy import TcpProxy
from tests.support.servers import PgCluster, postgres_cluster

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CHECKINS_QUEUE = "scheduler.agent-checkins"
DATABASE = "lockgate_outages"
QUIET = {"LOCKGATE_HEARTBEAT_SECONDS": "60", "LOCKGATE_METRICS_SAMPLE_SECONDS": "60"}


@dataclass(frozen=True)
class Private:
    """A private PostgreSQL cluster and a private vhost on the shared broker."""

    cluster: PgCluster
    amqp_url: str
    vhost: str

    @property
    def database_url(self) -> str:
        return self.cluster.primary_url(DATABASE)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "LOCKGATE_DATABASE_URL": self.database_url,
            "LOCKGATE_AMQP_URL": self.amqp_url,
            **QUIET,
            **extra,
        }


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


@pytest.fixture(scope="module")
def private(infra: Infra) -> Iterator[Private]:
    """A private PostgreSQL 15 cluster and vhost for this module, removed at the end."""
    vhost = f"lockgate-outages-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(infra.amqp_url)
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
        with postgres_cluster() as cluster:
            amqp = urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))
            made = Private(cluster, amqp, vhost)
            asyncio.run(ensure_database(made.database_url))
            yield made
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
async def private_bus(private: Private) -> AsyncIterator[Bus]:
    connected = await Bus.connect(private.amqp_url, name="lockgate-tests-outages")
    await connected.declare_exchanges()
    yield connected
    await connected.close()


async def dead_letter_depths(bus: Bus, vhost: str) -> dict[str, int]:
    """Messages in every `.dlq` of the vhost: names from rabbitmqctl, counts by passive
    declare (rabbitmqctl's counts of quorum queues lag by seconds)."""
    out = await asyncio.to_thread(
        _rabbitmqctl, "list_queues", "-p", vhost, "--no-table-headers", "name"
    )
    depths: dict[str, int] = {}
    for name in sorted({line.strip() for line in out.splitlines()}):
        if name.endswith(".dlq"):
            state = await bus.queue_state(name, timeout=10)
            assert state is not None, f"{name} did not answer"
            depths[name] = state[0]
    return depths


async def counts(url: str, prefix: str) -> tuple[int, int, int]:
    """(computers, check-ins counted, computers counted other than once) for `prefix`."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS computers, coalesce(sum(checkins_total), 0) AS checkins,"
            "       count(*) FILTER (WHERE checkins_total <> 1) AS wrong"
            " FROM scheduler.computers WHERE computer_id LIKE $1 || '%'",
            prefix,
        )
        assert row is not None
        return int(row["computers"]), int(row["checkins"]), int(row["wrong"])
    finally:
        await conn.close()


async def unplanned(url: str, prefix: str) -> int:
    """Computers of `prefix` whose plan the planner (a periodic task) has yet to compute."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM scheduler.computers"
                " WHERE computer_id LIKE $1 || '%' AND plan_dirty_at IS NOT NULL",
                prefix,
            )
        )
    finally:
        await conn.close()


async def pending_events(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM scheduler.outbox WHERE published_at IS NULL")
        )
    finally:
        await conn.close()


async def status(port: int) -> int:
    return await asyncio.to_thread(readyz, port)


async def until_status(runner: ServiceRunner, wanted: int, *, timeout: float) -> None:
    """Poll /readyz until it answers `wanted`; the process must stay up meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        assert runner.process is not None
        assert runner.process.poll() is None, f"{runner.service} exited: {runner.log()}"
        if await status(runner.port) == wanted:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{runner.service} /readyz never {wanted}: {runner.log()}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(600)  # headroom on a loaded machine
async def test_database_stopped_mid_stream_is_waited_out(
    private: Private, private_bus: Bus, log_dir: Path
) -> None:
    """2,000 check-ins while the database stops for 15 s: /readyz red during the outage and
    green after without a restart; every check-in counted once, nothing dead-lettered, and a
    malformed check-in sent during the outage still reaches the DLQ."""
    prefix = f"db-{uuid.uuid4().hex[:6]}-"
    total = 2000
    messages = [checkin(f"{prefix}{n:05d}") for n in range(total)]
    # A dead first host: the multi-host URL must carry every step past it.
    dead = free_port()
    multi = (
        private.cluster.primary_url(DATABASE).replace(
            "@127.0.0.1:", f"@127.0.0.1:{dead},127.0.0.1:", 1
        )
        + "?target_session_attrs=read-write"
    )
    scheduler = ServiceRunner(
        "scheduler",
        Infra(private.amqp_url, multi, private.vhost),
        log_dir,
        **private.env(LOCKGATE_DATABASE_URL=multi),
    )
    scheduler.start()
    try:
        await scheduler.wait_ready(timeout=60)
        pid = scheduler.process.pid if scheduler.process else 0
        await publish_checkins(private_bus, messages[:600])

        async def some_handled() -> bool:
            return (await counts(private.database_url, prefix))[1] >= 200

        await eventually(some_handled, timeout=60, what="some check-ins handled", every=0.05)
        await asyncio.to_thread(private.cluster.stop_primary, "fast")
        stopped = time.monotonic()
        # Messages keep arriving while the database is away, one of them malformed.
        await publish_checkins(private_bus, messages[600:1600])
        bad_sender = f"{prefix}bad"
        bad_id = await publish_as_agent(
            private_bus, bad_sender, AGENT_CHECKIN.type, b'{"computer_id": 42}'
        )
        await until_status(scheduler, 503, timeout=20)
        red_seen = True
        await asyncio.sleep(max(0.0, 15 - (time.monotonic() - stopped)))
        await asyncio.to_thread(private.cluster.start_primary)
        back = time.monotonic()
        await until_status(scheduler, 200, timeout=60)
        ready_after = time.monotonic() - back
        await publish_checkins(private_bus, messages[1600:])

        async def all_handled() -> bool:
            return (await counts(private.database_url, prefix))[1] >= total

        await eventually(all_handled, timeout=300, what="every check-in handled", every=0.2)

        async def relayed() -> bool:
            return await pending_events(private.database_url) == 0

        async def planned() -> bool:
            return await unplanned(private.database_url, prefix) == 0

        # The planner is a periodic task: it must have resumed by itself after the outage.
        await eventually(planned, timeout=120, what="the planner to plan every computer")
        await eventually(relayed, timeout=120, what="the outbox relayed after the outage")
        headers = await dead_lettered(private_bus, dead_letter_queue_name(CHECKINS_QUEUE), bad_id)
        assert scheduler.process is not None
        assert scheduler.process.pid == pid
        assert scheduler.process.poll() is None
        assert scheduler.terminate() == 0, scheduler.log()
    finally:
        scheduler.stop_quietly()

    computers, counted, wrong = await counts(private.database_url, prefix)
    dead_letters = await dead_letter_depths(private_bus, private.vhost)
    lost, duplicated = total - computers, counted - computers + wrong
    record(
        FaultResult(
            fault="PostgreSQL stopped 15 s mid-stream (pg_ctlcluster stop -m fast)",
            workload=f"{total:,} agent check-ins into the scheduler",
            sent=total,
            effects=counted,
            lost=lost,
            duplicated=duplicated,
            dead_lettered=sum(dead_letters.values()),
            recover_seconds=round(ready_after, 1),
            test="tests/integration/test_outages.py::test_database_stopped_mid_stream_is_waited_out",
            note="consumers wait at the process's gate (no nack, no delivery counted); /readyz "
            "was red during the outage and green again without a restart; the planner and the "
            "outbox relay resumed by themselves (every computer planned, every event sent); "
            "the URL named a "
            "dead first host (multi-host); a malformed check-in sent during the outage was "
            "still dead-lettered with its reason",
        )
    )
    assert red_seen
    assert headers.get("x-lockgate-reason-class") == "InvalidMessage"
    assert (lost, duplicated, wrong) == (0, 0, 0)
    assert counted == total
    assert dead_letters == dict.fromkeys(dead_letters, 0), dead_letters


async def test_services_started_before_their_database_or_broker_wait_for_them(
    private: Private, log_dir: Path
) -> None:
    """The scheduler and the console started while the database is down, and the approval
    service while nothing listens at its broker address: each serves a red /readyz, stays
    up, and becomes ready by itself once the dependency answers. A service told to stop
    while it waits (SIGTERM) exits cleanly."""
    await asyncio.to_thread(private.cluster.stop_primary, "fast")
    infra = Infra(private.amqp_url, private.database_url, private.vhost)
    waiting = [
        ServiceRunner("scheduler", infra, log_dir, **private.env()),
        ServiceRunner("console", infra, log_dir, **private.env()),
    ]
    broker = urlsplit(private.amqp_url)
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    proxy.port = free_port()
    late_broker = urlunsplit(
        (
            broker.scheme,
            f"{broker.netloc.split('@')[0]}@127.0.0.1:{proxy.port}",
            broker.path,
            "",
            "",
        )
    )
    approval = ServiceRunner(
        "approval", infra, log_dir, **private.env(LOCKGATE_AMQP_URL=late_broker)
    )
    quitter = ServiceRunner("reporting", infra, log_dir, **private.env())
    try:
        for runner in waiting:
            runner.start()
        quitter.start()
        for runner in (*waiting, quitter):
            await until_status(runner, 503, timeout=30)
        # SIGTERM while waiting for the database ends the process at once, cleanly.
        assert await asyncio.to_thread(quitter.terminate) == 0, quitter.log()
        await asyncio.sleep(3)  # a few retries: still up, still red
        for runner in waiting:
            await until_status(runner, 503, timeout=5)
        await asyncio.to_thread(private.cluster.start_primary)
        back = time.monotonic()
        await asyncio.gather(*(runner.wait_ready(timeout=60) for runner in waiting))
        db_ready_after = time.monotonic() - back

        approval.start()
        await until_status(approval, 503, timeout=30)
        await asyncio.sleep(2)
        await until_status(approval, 503, timeout=5)
        await proxy.start(proxy.port)
        opened = time.monotonic()
        await approval.wait_ready(timeout=60)
        broker_ready_after = time.monotonic() - opened
        for runner in (*waiting, approval):
            # uvicorn ends the console by re-raising the SIGTERM it handled, after a clean
            # shutdown; the services exit 0.
            clean = (0, -signal.SIGTERM) if runner.service == "console" else (0,)
            # In a thread: the broker's TCP front runs on this event loop.
            assert await asyncio.to_thread(runner.terminate) in clean, runner.log()
    finally:
        for runner in (*waiting, approval, quitter):
            runner.stop_quietly()
        await proxy.stop()
    record(
        FaultResult(
            fault="services started while PostgreSQL was down / the broker port was closed",
            workload="scheduler and console started before the database; approval before "
            "its broker address listened",
            sent=3,
            effects=3,
            lost=0,
            duplicated=0,
            dead_lettered=0,
            recover_seconds=round(max(db_ready_after, broker_ready_after), 1),
            test="tests/integration/test_outages.py::"
            "test_services_started_before_their_database_or_broker_wait_for_them",
            note=f"ready {db_ready_after:.1f} s after the database started and "
            f"{broker_ready_after:.1f} s after the broker port opened; none exited; one "
            "sent SIGTERM while waiting exited 0",
        )
    )


@pytest.mark.timeout(600)  # headroom on a loaded machine
async def test_broker_connection_cut_mid_stream_loses_and_doubles_nothing(
    private: Private, private_bus: Bus, log_dir: Path
) -> None:
    """The scheduler's broker connection cut for 3 s mid-stream (a broker restart as the
    client sees it): every check-in counted once, every event relayed, nothing dead-lettered."""
    prefix = f"cut-{uuid.uuid4().hex[:6]}-"
    total = 1000
    broker = urlsplit(private.amqp_url)
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    await proxy.start()
    proxied = urlunsplit(
        (
            broker.scheme,
            f"{broker.netloc.split('@')[0]}@127.0.0.1:{proxy.port}",
            broker.path,
            "",
            "",
        )
    )
    infra = Infra(proxied, private.database_url, private.vhost)
    scheduler = ServiceRunner(
        "scheduler",
        infra,
        log_dir,
        **private.env(LOCKGATE_AMQP_URL=proxied, LOCKGATE_PUBLISH_TIMEOUT_SECONDS="3"),
    )
    scheduler.start()
    try:
        await scheduler.wait_ready(timeout=60)
        await publish_checkins(private_bus, [checkin(f"{prefix}{n:05d}") for n in range(total)])

        async def a_third() -> bool:
            return (await counts(private.database_url, prefix))[0] >= total // 3

        await eventually(a_third, timeout=60, what="a third of the check-ins", every=0.02)
        cut_at = (await counts(private.database_url, prefix))[0]
        await proxy.cut(down_for=3.0)
        back = time.monotonic()
        await until_status(scheduler, 200, timeout=60)
        ready_after = time.monotonic() - back

        async def all_handled() -> bool:
            return (await counts(private.database_url, prefix))[0] >= total

        await eventually(all_handled, timeout=300, what="every check-in handled", every=0.2)

        async def relayed() -> bool:
            return await pending_events(private.database_url) == 0

        await eventually(relayed, timeout=120, what="the outbox relayed after the cut")
        # In a thread: the broker's TCP front runs on this event loop.
        assert await asyncio.to_thread(scheduler.terminate) == 0, scheduler.log()
    finally:
        scheduler.stop_quietly()
        await proxy.stop()
    computers, counted, wrong = await counts(private.database_url, prefix)
    dead_letters = await dead_letter_depths(private_bus, private.vhost)
    lost, duplicated = total - computers, counted - computers + wrong
    record(
        FaultResult(
            fault="broker connection cut 3 s mid-stream (TCP proxy)",
            workload=f"{total:,} agent check-ins into the scheduler",
            sent=total,
            effects=counted,
            lost=lost,
            duplicated=duplicated,
            dead_lettered=sum(dead_letters.values()),
            recover_seconds=round(ready_after, 1),
            test="tests/integration/test_outages.py::"
            "test_broker_connection_cut_mid_stream_loses_and_doubles_nothing",
            note=f"cut after {cut_at:,} of {total:,} were handled; unacked deliveries came "
            "back from the broker and the inbox skipped the ones already committed",
        )
    )
    assert cut_at < total, "the cut must land mid-stream"
    assert (lost, duplicated, wrong) == (0, 0, 0)
    assert dead_letters == dict.fromkeys(dead_letters, 0), dead_letters
