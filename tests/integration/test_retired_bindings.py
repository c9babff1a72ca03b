"""Upgrading past a retired binding: scheduler and reporting used to keep their approval
copies from `approval.approval.changed.v1` (one message per group) and now follow
`approval.update-approval.changed.v1`. On a broker an earlier version set up, starting the
new services removes the old binding and still applies what the old version left queued,
instead of dead-lettering it (libs/service/handlers.py `On.bound`)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import asyncpg
import pytest

from libs.bus import Bus, to_amqp
from libs.bus.bus import Binding
from libs.contracts import approval as a
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, dead_letter_queue_name, queue_name
from libs.db.pool import drop_database, ensure_database
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.integration.test_approval import delete_queues
from tests.support.infra import Infra
from tests.support.messages import eventually

pytestmark = pytest.mark.integration

OLD = a.APPROVAL_CHANGED
QUEUES = (queue_name(SCHEDULER.name, "approvals"), queue_name(REPORTING.name, "approvals"))


def old_message(group_id: str, update_id: str) -> a.ApprovalChanged:
    """One group's approval as the earlier version published it."""
    example = OLD.example
    assert example is not None
    state = example.state.model_copy(update={"group_id": group_id, "update_id": update_id})
    return example.model_copy(update={"state": state})


async def publish_old(bus: Bus, event: a.ApprovalChanged) -> None:
    envelope = Envelope.new(source="approval", type=OLD.type, subject=event.state.update_id)
    message = to_amqp(envelope, event.model_dump_json().encode())
    await bus.publish(message, exchange=Exchange.EVENTS.value, routing_key=OLD.routing_key())


def bindings(vhost: str) -> set[tuple[str, str]]:
    """(queue, routing key) of every binding from lockgate.events in the vhost."""
    listed = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_bindings",
            "-p",
            vhost,
            "source_name",
            "destination_name",
            "routing_key",
            "--no-table-headers",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    rows = [line.split("\t") for line in listed if line.startswith(Exchange.EVENTS.value)]
    return {(row[1], row[2]) for row in rows if len(row) == 3}


async def test_old_bindings_are_removed_and_queued_messages_still_applied(
    infra: Infra, bus: Bus
) -> None:
    url = f"{infra.database_url}_retired"
    await ensure_database(url)
    # The earlier version's topology, with one old message waiting in each queue.
    for queue in QUEUES:
        await bus.declare_queue(queue, [Binding(Exchange.EVENTS, OLD.binding_key)])
    assert {(queue, OLD.binding_key) for queue in QUEUES} <= bindings(infra.vhost)
    group_id, update_id = str(uuid.uuid4()), str(uuid.uuid4())
    await publish_old(bus, old_message(group_id, update_id))

    settings = Settings(amqp_url=infra.amqp_url, database_url=url, heartbeat_seconds=60)
    processes = [
        ServiceProcess(SCHEDULER, settings, http_port=0),
        ServiceProcess(REPORTING, settings, http_port=0),
    ]
    db = await asyncpg.connect(url)
    try:
        for process in processes:
            await process.start()
        assert not {(queue, OLD.binding_key) for queue in QUEUES} & bindings(infra.vhost)
        assert {(queue, a.UPDATE_APPROVAL_CHANGED.binding_key) for queue in QUEUES} <= bindings(
            infra.vhost
        )

        async def applied() -> bool:
            query = "SELECT count(*) FROM {}.group_approvals WHERE group_id = $1 AND update_id = $2"
            found = [
                await db.fetchval(query.format(schema), uuid.UUID(group_id), uuid.UUID(update_id))
                for schema in (SCHEDULER.name, REPORTING.name)
            ]
            return found == [1, 1]

        await eventually(applied, timeout=30, what="the queued old messages applied")
        # Nothing was refused on the way.
        channel = await bus.connection.channel()
        try:
            for queue in QUEUES:
                declared = await channel.declare_queue(dead_letter_queue_name(queue), passive=True)
                assert declared.declaration_result.message_count == 0
        finally:
            await channel.close()
        # A later old-style message no longer reaches the queues.
        await publish_old(bus, old_message(str(uuid.uuid4()), update_id))
        await asyncio.sleep(0.5)
        counts = [
            await db.fetchval(f"SELECT count(*) FROM {schema}.group_approvals")
            for schema in (SCHEDULER.name, REPORTING.name)
        ]
        assert counts == [1, 1]
    finally:
        await db.close()
        for process in processes:
            await process.stop()
        await delete_queues(bus, (SCHEDULER, REPORTING))
        await drop_database(url)
