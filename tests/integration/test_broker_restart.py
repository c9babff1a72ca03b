"""RabbitMQ itself restarted mid-stream (`rabbitmqctl stop_app` / `start_app` on a private
single node): the scheduler rides it out, every check-in counted once, nothing dead-lettered."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.bus import Bus
from libs.db.pool import drop_database, ensure_database
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.integration.test_outages import QUIET, counts, pending_events, until_status
from tests.support.faults import FaultResult, record
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_checkins
from tests.support.processes import ServiceRunner
from tests.support.servers import RabbitCluster, rabbitmq_cluster
from tests.support.workload import dead_letter_depths

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TOTAL = 2000
STOPPED_FOR = 5.0


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitCluster]:
    """One private RabbitMQ node for this module, removed at the end."""
    with rabbitmq_cluster(1) as cluster:
        yield cluster


@pytest.mark.timeout(600)
async def test_broker_stop_app_start_app_mid_stream(
    node: RabbitCluster, infra: Infra, log_dir: Path
) -> None:
    prefix = f"rmq-{uuid.uuid4().hex[:6]}-"
    database_url = f"{infra.database_url}_rmq"
    await ensure_database(database_url)
    amqp_url = node.amqp_url(0)
    scheduler = ServiceRunner(
        "scheduler",
        Infra(amqp_url, database_url, "/"),
        log_dir,
        **QUIET,
        LOCKGATE_PUBLISH_TIMEOUT_SECONDS="3",
    )
    scheduler.start()
    bus = await Bus.connect(amqp_url, name="lockgate-tests-broker-restart")
    try:
        await bus.declare_exchanges()
        await scheduler.wait_ready(timeout=60)
        await publish_checkins(bus, [checkin(f"{prefix}{n:05d}") for n in range(TOTAL)])

        async def a_third() -> bool:
            return (await counts(database_url, prefix))[0] >= TOTAL // 3

        await eventually(a_third, timeout=60, what="a third of the check-ins", every=0.02)
        stopped_at = (await counts(database_url, prefix))[0]
        await asyncio.to_thread(node.stop_app, 0)
        await asyncio.sleep(STOPPED_FOR)
        await until_status(scheduler, 503, timeout=30)
        await asyncio.to_thread(node.start_app, 0)
        back = time.monotonic()
        at_start = (await counts(database_url, prefix))[0]

        async def resumed() -> bool:
            return (await counts(database_url, prefix))[0] > at_start

        await eventually(resumed, timeout=120, what="a check-in handled after start_app")
        recovered = time.monotonic() - back

        async def all_handled() -> bool:
            return (await counts(database_url, prefix))[0] >= TOTAL

        await eventually(all_handled, timeout=300, what="every check-in handled", every=0.2)
        await until_status(scheduler, 200, timeout=60)

        async def relayed() -> bool:
            return await pending_events(database_url) == 0

        await eventually(relayed, timeout=120, what="the outbox relayed after the restart")
        computers, counted, wrong = await counts(database_url, prefix)
        dead_letters = await dead_letter_depths(bus, [SCHEDULER])
        assert await asyncio.to_thread(scheduler.terminate) == 0, scheduler.log()
    finally:
        scheduler.stop_quietly()
        await bus.close()
        await drop_database(database_url)
    lost, duplicated = TOTAL - computers, counted - computers + wrong
    record(
        FaultResult(
            fault="RabbitMQ stop_app / start_app mid-stream (single node)",
            workload=f"{TOTAL:,} agent check-ins into the scheduler",
            sent=TOTAL,
            effects=counted,
            lost=lost,
            duplicated=duplicated,
            dead_lettered=sum(dead_letters.values()),
            recover_seconds=round(recovered, 1),
            test="tests/integration/test_broker_restart.py::"
            "test_broker_stop_app_start_app_mid_stream",
            note=f"stopped after {stopped_at:,} of {TOTAL:,} were handled, for "
            f"{STOPPED_FOR:g} s; /readyz red meanwhile and green again without a restart; "
            "recover = start_app to the first check-in handled after it",
        )
    )
    assert stopped_at < TOTAL, "the stop must land mid-stream"
    assert (lost, duplicated, wrong) == (0, 0, 0)
    assert dead_letters == dict.fromkeys(dead_letters, 0), dead_letters
