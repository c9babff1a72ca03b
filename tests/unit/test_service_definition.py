"""ServiceDefinition.queues: which handler listens on which queue, and what is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from libs.contracts.reporting import (
    LIST_SERVICE_INSTANCES,
    ListServiceInstances,
    ServiceInstances,
)
from libs.contracts.scheduler import (
    AGENT_CHECKIN,
    COMPUTER_REGISTERED,
    AgentCheckin,
    ComputerRegistered,
)
from libs.contracts.system import HEARTBEAT, PING, Ping, Pong, ServiceHeartbeat
from libs.service.handlers import Answer, HandlerContext, On, ServiceDefinition

MIGRATIONS = Path("unused-in-these-tests")


async def record_heartbeat(_ctx: HandlerContext, _message: ServiceHeartbeat) -> None:
    """Stands in for a real heartbeat handler."""


async def count_heartbeat(_ctx: HandlerContext, _message: ServiceHeartbeat) -> None:
    """A second heartbeat handler, for the duplicate checks."""


async def record_checkin(_ctx: HandlerContext, _message: AgentCheckin) -> None:
    """Stands in for the scheduler's check-in handler."""


async def place_computer(_ctx: HandlerContext, _message: ComputerRegistered) -> None:
    """Stands in for approval's "new computer" handler."""


async def answer_ping(_ctx: HandlerContext, _request: Ping) -> Pong:
    """Stands in for the ping handler; never called here."""
    raise NotImplementedError


async def list_instances(_ctx: HandlerContext, _request: ListServiceInstances) -> ServiceInstances:
    """Stands in for reporting's query handler; never called here."""
    return ServiceInstances(instances=[])


def test_queues_groups_events_by_service_and_queue() -> None:
    """Events sharing a queue purpose are consumed from one `<service>.<queue>` queue."""
    catalog_beat = On(HEARTBEAT["catalog"], "heartbeats", record_heartbeat)
    approval_beat = On(HEARTBEAT["approval"], "heartbeats", record_heartbeat)
    registered = On(COMPUTER_REGISTERED, "computers", place_computer)
    definition = ServiceDefinition(
        name="reporting", migrations=MIGRATIONS, events=[catalog_beat, registered, approval_beat]
    )
    assert definition.queues() == {
        "reporting.heartbeats": [catalog_beat, approval_beat],
        "reporting.computers": [registered],
    }


def test_queues_puts_commands_on_the_service_commands_queue() -> None:
    """Callers address a command by type; the service answers all of them from one queue."""
    ping = Answer(PING["reporting"], answer_ping)
    listing = Answer(LIST_SERVICE_INSTANCES, list_instances)
    definition = ServiceDefinition(
        name="reporting", migrations=MIGRATIONS, commands=[ping, listing]
    )
    assert definition.queues() == {"reporting.commands": [ping, listing]}


def test_queues_keeps_events_and_commands_apart() -> None:
    """A slow query must not sit in front of events, so each gets its own queue."""
    checkin = On(AGENT_CHECKIN, "checkins", record_checkin)
    ping = Answer(PING["scheduler"], answer_ping)
    definition = ServiceDefinition(
        name="scheduler", migrations=MIGRATIONS, events=[checkin], commands=[ping]
    )
    assert definition.queues() == {
        "scheduler.checkins": [checkin],
        "scheduler.commands": [ping],
    }


def test_queues_refuses_a_command_answered_by_the_wrong_service() -> None:
    """Catalog's ping is routed to catalog; reporting answering it would never be reached."""
    definition = ServiceDefinition(
        name="reporting", migrations=MIGRATIONS, commands=[Answer(PING["catalog"], answer_ping)]
    )
    with pytest.raises(ValueError, match=r"reporting cannot answer catalog\.service\.ping\.v1"):
        definition.queues()


def test_queues_refuses_two_handlers_for_one_event_type_on_one_queue() -> None:
    """Both would share one inbox key space and ack each other's deliveries."""
    definition = ServiceDefinition(
        name="reporting",
        migrations=MIGRATIONS,
        events=[
            On(HEARTBEAT["catalog"], "heartbeats", record_heartbeat),
            On(HEARTBEAT["catalog"], "heartbeats", count_heartbeat),
        ],
    )
    with pytest.raises(ValueError, match=re.escape("queue reporting.heartbeats has two handlers")):
        definition.queues()


def test_queues_refuses_two_answers_to_one_command() -> None:
    """One command gets one reply; two handlers would race to answer it."""
    definition = ServiceDefinition(
        name="reporting",
        migrations=MIGRATIONS,
        commands=[Answer(PING["reporting"], answer_ping), Answer(PING["reporting"], answer_ping)],
    )
    with pytest.raises(ValueError, match=re.escape("queue reporting.commands has two handlers")):
        definition.queues()


def test_queues_allows_one_event_type_on_two_queues() -> None:
    """Separate queues are separate consumers, each with its own copy of the event."""
    first = On(HEARTBEAT["catalog"], "heartbeats", record_heartbeat)
    second = On(HEARTBEAT["catalog"], "liveness", count_heartbeat)
    definition = ServiceDefinition(name="reporting", migrations=MIGRATIONS, events=[first, second])
    assert definition.queues() == {
        "reporting.heartbeats": [first],
        "reporting.liveness": [second],
    }


def test_queues_refuses_a_bad_queue_purpose() -> None:
    """Queue names are derived from the service and purpose; a dot would fake a hierarchy."""
    definition = ServiceDefinition(
        name="reporting",
        migrations=MIGRATIONS,
        events=[On(HEARTBEAT["catalog"], "heart.beats", record_heartbeat)],
    )
    with pytest.raises(ValueError, match=re.escape("queue purpose 'heart.beats' is not allowed")):
        definition.queues()
