"""The pipeline's one check that an agent speaks only for itself, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from libs.bus.codec import InvalidMessage
from libs.contracts import Envelope
from libs.contracts.agents import AGENT_STATUS, AgentStatus
from libs.contracts.scheduler import COMPUTER_REGISTERED, ComputerRegistered
from libs.service import HandlerContext, On
from libs.service.pipeline import Pipeline, sender_of

NOW = datetime(2026, 2, 11, 20, 6, 15, tzinfo=UTC)
KEY = "agent.pc-a.status.v1"


async def _ignore(_: HandlerContext, __: Any) -> None:
    return None


STATUS = On(AGENT_STATUS, queue="agent-reports", handle=_ignore)


def _envelope(subject: str | None) -> Envelope:
    return Envelope.new(source="agent/pc-a", type=AGENT_STATUS.type, subject=subject, now=NOW)


def _status(computer_id: str) -> AgentStatus:
    return AgentStatus(computer_id=computer_id, reported_at=NOW)


@pytest.mark.parametrize(
    ("routing_key", "sender"),
    [
        ("agent.pc-a.status.v1", "pc-a"),
        ("agent.PC_0042.install-request.v1", "PC_0042"),
        ("computer.pc-a.plan.v1", None),
        ("agent.pc-a", None),
        ("agent.-pc.status.v1", None),
        ("", None),
    ],
)
def test_sender_of_reads_the_computer_id_of_an_agent_routing_key(
    routing_key: str, sender: str | None
) -> None:
    """The broker lets an agent publish only under `agent.<its id>.`: that is its identity."""
    assert sender_of(routing_key) == sender


@pytest.mark.parametrize("subject", ["pc-a", None])
def test_a_message_speaking_for_its_sender_passes_with_the_sender_as_subject(
    subject: str | None,
) -> None:
    """A matching (or absent) subject and body pass; handlers then read the subject."""
    checked = Pipeline.check_sender(STATUS, _envelope(subject), KEY, _status("pc-a"))
    assert checked.subject == "pc-a"


def test_a_body_speaking_for_another_computer_is_refused_naming_both_ids() -> None:
    """The subject may agree with the routing key while the body names someone else."""
    with pytest.raises(InvalidMessage) as caught:
        Pipeline.check_sender(STATUS, _envelope("pc-a"), KEY, _status("pc-b"))
    assert str(caught.value) == (
        "computer_id 'pc-b' in the body does not match 'pc-a' in the routing key: "
        "an agent may only speak for itself"
    )
    assert caught.value.field == "computer_id"


def test_a_subject_naming_another_computer_is_refused() -> None:
    """The ce-subject header is the agent's to write, so it is checked like the body."""
    with pytest.raises(InvalidMessage, match="subject 'pc-b' does not match the sender 'pc-a'"):
        Pipeline.check_sender(STATUS, _envelope("pc-b"), KEY, _status("pc-b"))


def test_a_service_event_is_not_an_agent_message_and_passes_unchanged() -> None:
    """Services' events are not checked against routing keys (their subject is free)."""
    route = On(COMPUTER_REGISTERED, queue="computers", handle=_ignore)
    envelope = Envelope.new(
        source="lockgate/scheduler", type=COMPUTER_REGISTERED.type, subject="pc-b", now=NOW
    )
    body = ComputerRegistered(computer_id="pc-b", hostname="h", timezone="UTC", registered_at=NOW)
    assert Pipeline.check_sender(route, envelope, COMPUTER_REGISTERED.type, body) is envelope
