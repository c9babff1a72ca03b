"""How the dead-letter keeper reads a dead-lettered message, and what a replay sends."""

from __future__ import annotations

from datetime import UTC, datetime

from services.console.dead_letters import letter_of, replay_message

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
OWN = {"ce-id": "m-1", "ce-type": "agent.status.v1", "ce-subject": "pc-1"}
PROPERTIES = {"message_id": "m-1", "type": "agent.status.v1", "content_type": "application/json"}


def test_a_message_the_pipeline_parked_names_its_reason_origin_and_handler() -> None:
    headers = OWN | {
        "x-lockgate-reason-class": "InvalidInput",
        "x-lockgate-reason": "computer_id 'pc-1' is not registered",
        "x-lockgate-queue": "scheduler.agent-reports",
        "x-lockgate-handler": "agent-reports/record_status",
        "x-original-exchange": "lockgate.agents",
        "x-original-routing-key": "agent.pc-1.status.v1",
        "x-dead-lettered-at": "2026-12-06T07:59:00+00:00",
        "x-delivery-count": 3,
    }
    letter = letter_of(
        dead_letter_queue="scheduler.agent-reports.dlq",
        headers=headers,
        body=b"{}",
        properties=PROPERTIES,
        now=NOW,
    )
    assert (letter.queue, letter.handler) == (
        "scheduler.agent-reports",
        "agent-reports/record_status",
    )
    assert (letter.reason_class, letter.message_id) == ("InvalidInput", "m-1")
    assert (letter.original_exchange, letter.original_routing_key) == (
        "lockgate.agents",
        "agent.pc-1.status.v1",
    )
    assert letter.failed_at == datetime(2026, 12, 6, 7, 59, tzinfo=UTC)
    assert letter.headers == OWN  # the dead-letter headers and the delivery count are not kept


def test_a_message_the_broker_dead_lettered_is_read_from_x_death() -> None:
    died = datetime(2026, 12, 6, 7, 30, tzinfo=UTC)
    headers = OWN | {
        "x-death": [
            {
                "count": 1,
                "exchange": "lockgate.events",
                "queue": "approval.updates",
                "reason": "delivery_limit",
                "routing-keys": ["catalog.update.published.v1"],
                "time": died,
            }
        ],
        "x-first-death-reason": "delivery_limit",
    }
    letter = letter_of(
        dead_letter_queue="approval.updates.dlq",
        headers=headers,
        body=b"\xff\x00",
        properties={},
        now=NOW,
    )
    assert letter.reason_class == "broker:delivery_limit"
    assert "approval.updates" in letter.reason
    assert (letter.original_exchange, letter.original_routing_key) == (
        "lockgate.events",
        "catalog.update.published.v1",
    )
    assert (letter.failed_at, letter.message_id) == (died, "m-1")
    assert letter.headers == OWN


def test_a_message_without_dead_letter_headers_or_id_is_still_kept() -> None:
    letter = letter_of(
        dead_letter_queue="reporting.agent-reports.dlq",
        headers={"note": b"by hand\x00"},
        body=b"x",
        properties={},
        now=NOW,
    )
    assert (letter.queue, letter.reason_class, letter.failed_at) == (
        "reporting.agent-reports",
        "unknown",
        NOW,
    )
    assert letter.message_id.startswith("sha256:")
    assert letter.headers == {"note": "by hand\\x00"}  # storable: no NUL


def test_a_replay_keeps_the_message_id_and_own_headers() -> None:
    message = replay_message(OWN, PROPERTIES | {"timestamp": "2026-12-06T07:00:00+00:00"}, b"{}")
    assert (message.message_id, message.type) == ("m-1", "agent.status.v1")
    assert dict(message.headers) == OWN
    assert message.timestamp == datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
