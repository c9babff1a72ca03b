"""No loss, no double effect: kill -9 mid-stream, duplicate deliveries, broker connection cuts."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from libs.bus import BrokerUnavailable, Bus, RpcClient, RpcTimeout
from libs.contracts.names import Exchange
from libs.contracts.scheduler import COMPUTER_REGISTERED
from libs.contracts.system import PING, Ping
from tests.support.infra import Infra
from tests.support.messages import Collector, bind_test_queue, checkin, eventually, publish_checkins
from tests.support.processes import ServiceRunner
from tests.support.proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

MESSAGES = 5000
COMPUTERS = 1000  # each checks in MESSAGES / COMPUTERS times


async def stats(db: asyncpg.Connection, prefix: str) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT count(*) AS computers, coalesce(sum(checkins_total), 0) AS checkins,"
        "       count(*) FILTER (WHERE checkins_total <> $2) AS wrong"
        " FROM scheduler.computers WHERE computer_id LIKE $1 || '%'",
        prefix,
        MESSAGES // COMPUTERS,
    )
    assert row is not None
    return row


async def outbox_state(db: asyncpg.Connection, prefix: str) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT count(*) AS events, count(*) FILTER (WHERE published_at IS NULL) AS pending,"
        "       array_agg(id::text) AS ids"
        " FROM scheduler.outbox WHERE envelope->>'subject' LIKE $1 || '%'"
        " AND routing_key = $2",
        prefix,
        COMPUTER_REGISTERED.routing_key(),
    )
    assert row is not None
    return row


async def test_kill_9_mid_stream_loses_nothing_and_doubles_nothing(
    infra: Infra, bus: Bus, db: asyncpg.Connection, log_dir: Path
) -> None:
    """5,000 check-ins, the consumer killed -9 mid-stream and restarted: every check-in counted
    exactly once, every registration event written once and published."""
    prefix = f"k9-{uuid.uuid4().hex[:6]}-"
    events = Collector()
    queue = await bind_test_queue(
        bus, f"test.registered.{prefix}", Exchange.EVENTS, COMPUTER_REGISTERED.routing_key()
    )
    await queue.consume(events)
    scheduler = ServiceRunner("scheduler", infra, log_dir, LOCKGATE_HEARTBEAT_SECONDS="60")
    scheduler.start()
    try:
        await scheduler.wait_ready()
        rounds = MESSAGES // COMPUTERS
        await publish_checkins(
            bus, [checkin(f"{prefix}{n:05d}") for _ in range(rounds) for n in range(COMPUTERS)]
        )

        async def some_handled() -> bool:
            return int((await stats(db, prefix))["checkins"]) >= MESSAGES // 5

        await eventually(some_handled, timeout=60, what="a fifth of the check-ins", every=0.02)
        scheduler.kill()
        killed_at = int((await stats(db, prefix))["checkins"])
        assert killed_at < MESSAGES, "the kill must land mid-stream"

        scheduler.start()
        started = time.monotonic()

        async def all_handled() -> bool:
            return int((await stats(db, prefix))["checkins"]) >= MESSAGES

        await eventually(all_handled, timeout=120, what="every check-in to be handled")
        await events.wait_for(COMPUTERS, timeout=60)
        drained = time.monotonic() - started
        assert scheduler.terminate() == 0, scheduler.log()
    finally:
        scheduler.stop_quietly()

    final = await stats(db, prefix)
    assert final["computers"] == COMPUTERS
    assert final["checkins"] == MESSAGES, "each check-in counted exactly once"
    assert final["wrong"] == 0
    outbox = await outbox_state(db, prefix)
    assert outbox["events"] == COMPUTERS, "one registration event per computer"
    assert outbox["pending"] == 0, "outbox fully published"
    assert set(events.ids) == set(outbox["ids"])
    print(  # the figures for the closing note (pytest -s shows them)
        f"\nkill -9 figures: killed after {killed_at}/{MESSAGES} handled; remaining drained in "
        f"{drained:.1f} s after restart; {len(events.ids)} deliveries of {COMPUTERS} events "
        f"({len(events.ids) - COMPUTERS} duplicate deliveries)"
    )


async def test_outbox_relay_survives_broker_connection_cuts(
    infra: Infra, bus: Bus, db: asyncpg.Connection, log_dir: Path
) -> None:
    """The scheduler's broker connection is cut three times while it works: nothing is lost."""
    prefix = f"cut-{uuid.uuid4().hex[:6]}-"
    total = 2000
    broker = urlsplit(infra.amqp_url)
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
    events = Collector()
    queue = await bind_test_queue(
        bus, f"test.registered.{prefix}", Exchange.EVENTS, COMPUTER_REGISTERED.routing_key()
    )
    await queue.consume(events)
    scheduler = ServiceRunner(
        "scheduler",
        infra,
        log_dir,
        LOCKGATE_AMQP_URL=proxied,
        LOCKGATE_HEARTBEAT_SECONDS="60",
        LOCKGATE_PUBLISH_TIMEOUT_SECONDS="3",
    )
    scheduler.start()
    try:
        await scheduler.wait_ready()
        await publish_checkins(bus, [checkin(f"{prefix}{n:05d}") for n in range(total)])
        for done_at in (total // 5, total // 2, 4 * total // 5):

            async def reached(target: int = done_at) -> bool:
                return int((await stats(db, prefix))["computers"]) >= target

            await eventually(reached, timeout=90, what=f"{done_at} computers", every=0.02)
            await proxy.cut(down_for=1.0)
        await events.wait_for(total, timeout=120)
        assert scheduler.terminate() == 0, scheduler.log()
    finally:
        scheduler.stop_quietly()
        await proxy.stop()

    row = await db.fetchrow(
        "SELECT count(*) AS computers, coalesce(sum(checkins_total), 0) AS checkins"
        " FROM scheduler.computers WHERE computer_id LIKE $1 || '%'",
        prefix,
    )
    assert row is not None
    assert (row["computers"], row["checkins"]) == (total, total)
    outbox = await outbox_state(db, prefix)
    assert (outbox["events"], outbox["pending"]) == (total, 0)
    assert set(events.ids) == set(outbox["ids"])
    assert proxy.cuts == 3
    print(
        f"\nbroker-cut figures: {total} events, {len(events.ids)} deliveries, "
        f"{len(events.ids) - total} duplicates after 3 cuts"
    )


async def test_relay_of_a_killed_process_is_taken_over(
    infra: Infra, bus: Bus, db: asyncpg.Connection, log_dir: Path
) -> None:
    """Two replicas: the one relaying the outbox dies, the other takes the relay over."""
    prefix = f"ha-{uuid.uuid4().hex[:6]}-"
    events = Collector()
    queue = await bind_test_queue(
        bus, f"test.registered.{prefix}", Exchange.EVENTS, COMPUTER_REGISTERED.routing_key()
    )
    await queue.consume(events)
    replicas = [
        ServiceRunner(
            "scheduler",
            infra,
            log_dir,
            LOCKGATE_HEARTBEAT_SECONDS="60",
            LOCKGATE_OUTBOX_POLL_SECONDS="0.2",
        )
        for _ in range(2)
    ]
    for replica in replicas:
        replica.start()
    try:
        await asyncio.gather(*(replica.wait_ready() for replica in replicas))
        await publish_checkins(bus, [checkin(f"{prefix}{n:04d}") for n in range(200)])
        await events.wait_for(200, timeout=60)
        # Whoever holds the relay lock, kill -9 one replica, then send more.
        replicas[0].kill()
        await publish_checkins(bus, [checkin(f"{prefix}{n:04d}") for n in range(200, 400)])
        await events.wait_for(400, timeout=60)
    finally:
        for replica in replicas:
            replica.stop_quietly()
    outbox = await outbox_state(db, prefix)
    assert (outbox["events"], outbox["pending"]) == (400, 0)


async def test_rpc_client_recovers_after_its_connection_is_cut(infra: Infra, log_dir: Path) -> None:
    """A long-lived caller (the console) keeps working after its broker connection drops:
    calls during the outage fail fast with BrokerUnavailable, later calls succeed."""
    broker = urlsplit(infra.amqp_url)
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
    catalog = ServiceRunner("catalog", infra, log_dir, LOCKGATE_HEARTBEAT_SECONDS="60").start()
    client_bus = await Bus.connect(proxied, name="lockgate-tests-rpc", publish_timeout=3)
    try:
        await catalog.wait_ready()
        rpc = RpcClient(client_bus, source="tests", timeout=3)
        assert (await rpc.call(PING["catalog"], Ping())).service == "catalog"
        await proxy.cut(down_for=1.0)
        outcomes: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                await rpc.call(PING["catalog"], Ping())
            except (BrokerUnavailable, RpcTimeout) as error:
                outcomes.append(type(error).__name__)
                await asyncio.sleep(0.5)
            else:
                outcomes.append("ok")
                break
        assert outcomes[-1] == "ok", outcomes
        assert (await rpc.call(PING["catalog"], Ping())).service == "catalog"
    finally:
        await client_bus.close()
        catalog.stop_quietly()
        await proxy.stop()
