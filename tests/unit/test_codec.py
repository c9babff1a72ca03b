"""Envelope <-> AMQP codec: ce-* headers, AMQP property fallback and error descriptions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from libs.bus.codec import (
    InvalidMessage,
    describe_validation_error,
    field_path,
    first_field,
    from_amqp,
    stored_properties,
    to_amqp,
)
from libs.contracts import Envelope
from libs.contracts.reporting import ServiceInstances
from libs.contracts.scheduler import AgentCheckin

NOW = datetime(2025, 3, 14, 9, 26, 53, 250000, tzinfo=UTC)


@dataclass
class Incoming:
    """The attributes of an incoming aio-pika message that `from_amqp` reads."""

    headers: dict[str, object] | None = field(default_factory=dict)
    message_id: str | None = None
    app_id: str | None = None
    type: str | None = None
    timestamp: datetime | None = None
    correlation_id: str | None = None

    def as_message(self) -> AbstractIncomingMessage:
        return cast("AbstractIncomingMessage", self)


def _ce_headers(**overrides: object) -> dict[str, object]:
    headers: dict[str, object] = {
        "ce-id": "id-from-header",
        "ce-source": "lockgate/catalog",
        "ce-type": "catalog.update.published.v1",
        "ce-time": "2025-03-14T09:26:53.250000+00:00",
        "ce-specversion": "1.0",
    }
    headers.update(overrides)
    return headers


def _envelope(**overrides: object) -> Envelope:
    fields: dict[str, object] = {
        "id": "6f1c1f9e-3b5a-4a57-8d0c-7b1c9f2d1e00",
        "source": "lockgate/scheduler",
        "type": "scheduler.computer.registered.v1",
        "time": NOW,
        "subject": "pc-0042",
        "correlation_id": "req-17",
    }
    fields.update(overrides)
    return Envelope.model_validate(fields)


def _checkin_error(**body: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        AgentCheckin.model_validate(body)
    return caught.value


# --- from_amqp -----------------------------------------------------------------------


def test_from_amqp_reads_the_ce_headers() -> None:
    """Binary-mode CloudEvents puts every attribute in a `ce-*` header."""
    message = Incoming(headers=_ce_headers(**{"ce-subject": "pc-0042"}), correlation_id="req-9")
    assert from_amqp(message.as_message()) == Envelope(
        id="id-from-header",
        source="lockgate/catalog",
        type="catalog.update.published.v1",
        time=NOW,
        subject="pc-0042",
        correlation_id="req-9",
    )


def test_from_amqp_prefers_headers_over_amqp_properties() -> None:
    """When both are present the ce-* header is the CloudEvents attribute of record."""
    message = Incoming(
        headers=_ce_headers(),
        message_id="id-from-property",
        app_id="lockgate/other",
        type="other.thing.v1",
        timestamp=datetime(2020, 1, 1, tzinfo=UTC),
    )
    envelope = from_amqp(message.as_message())
    assert (envelope.id, envelope.source, envelope.type, envelope.time) == (
        "id-from-header",
        "lockgate/catalog",
        "catalog.update.published.v1",
        NOW,
    )


def test_from_amqp_decodes_bytes_headers() -> None:
    """The AMQP client may hand long-string headers over as bytes."""
    message = Incoming(headers=_ce_headers(**{"ce-subject": b"pc-0042"}))
    assert from_amqp(message.as_message()).subject == "pc-0042"


def test_from_amqp_falls_back_to_amqp_properties_without_headers() -> None:
    """Publishers that only set standard AMQP properties must still be understood."""
    message = Incoming(
        headers=None,
        message_id="id-from-property",
        app_id="lockgate/agent",
        type="agent.checkin.v1",
        timestamp=NOW,
    )
    envelope = from_amqp(message.as_message())
    assert (envelope.id, envelope.source, envelope.type, envelope.time, envelope.subject) == (
        "id-from-property",
        "lockgate/agent",
        "agent.checkin.v1",
        NOW,
        None,
    )


def test_from_amqp_reads_a_naive_amqp_timestamp_as_utc() -> None:
    """AMQP timestamps carry no zone; they are UTC seconds and must become aware datetimes."""
    message = Incoming(
        headers=None,
        message_id="m-1",
        app_id="lockgate/agent",
        type="agent.checkin.v1",
        timestamp=datetime(2025, 3, 14, 9, 26, 53),  # noqa: DTZ001 - naive, as the wire gives it
    )
    assert from_amqp(message.as_message()).time == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "attribute"),
    [
        pytest.param("ce-id", "id", id="id"),
        pytest.param("ce-source", "source", id="source"),
        pytest.param("ce-type", "type", id="type"),
        pytest.param("ce-time", "time", id="time"),
    ],
)
def test_from_amqp_refuses_a_missing_attribute_naming_it(header: str, attribute: str) -> None:
    """A message without id, source, type or time can never be handled; say which is missing."""
    headers = _ce_headers()
    del headers[header]
    with pytest.raises(InvalidMessage) as caught:
        from_amqp(Incoming(headers=headers).as_message())
    assert f"['{attribute}']" in str(caught.value)
    assert f"ce-{attribute} header" in str(caught.value)


def test_from_amqp_refuses_a_bad_time_naming_attribute_and_value() -> None:
    """A malformed time must be reported with the value sent, not as a generic failure."""
    message = Incoming(headers=_ce_headers(**{"ce-time": "yesterday"}))
    with pytest.raises(InvalidMessage, match=r"attribute time='yesterday' is not allowed"):
        from_amqp(message.as_message())


def test_from_amqp_refuses_an_unknown_specversion() -> None:
    """Only CloudEvents 1.0 is understood; another version must not be read as if it were."""
    message = Incoming(headers=_ce_headers(**{"ce-specversion": "0.3"}))
    with pytest.raises(InvalidMessage, match=re.escape("attribute specversion='0.3'")):
        from_amqp(message.as_message())


# --- to_amqp -------------------------------------------------------------------------


def _read_back(envelope: Envelope) -> Envelope:
    sent = to_amqp(envelope, b"{}")
    received = Incoming(
        headers=dict(sent.headers),
        message_id=sent.message_id,
        app_id=sent.app_id,
        type=sent.type,
        timestamp=sent.timestamp,
        correlation_id=sent.correlation_id,
    )
    return from_amqp(received.as_message())


def test_to_amqp_then_from_amqp_gives_the_same_envelope() -> None:
    """What a publisher sends is exactly what the consumer reads, subject and correlation too."""
    envelope = _envelope()
    assert _read_back(envelope) == envelope


def test_to_amqp_then_from_amqp_keeps_an_absent_subject_absent() -> None:
    """An event about nothing in particular must not gain a subject on the way."""
    envelope = _envelope(subject=None, correlation_id=None)
    assert _read_back(envelope) == envelope


def test_to_amqp_sets_the_amqp_properties_from_the_envelope() -> None:
    """Tools that ignore ce-* headers (management UI, shovels) still see id, type and source."""
    envelope = _envelope()
    sent = to_amqp(envelope, b"{}", reply_to="amq.rabbitmq.reply-to")
    assert (sent.message_id, sent.type, sent.app_id, sent.correlation_id, sent.reply_to) == (
        envelope.id,
        envelope.type,
        envelope.source,
        "req-17",
        "amq.rabbitmq.reply-to",
    )


# --- describe_validation_error -------------------------------------------------------


def test_describe_validation_error_names_field_value_and_problem() -> None:
    """A dead-letter reason must tell the sender which field, what it sent and what is wrong."""
    error = _checkin_error(computer_id="pc-1", hostname="", checked_in_at=NOW.isoformat())
    described = describe_validation_error(error, "agent.checkin.v1")
    assert described.startswith("agent.checkin.v1: ")
    assert "field 'hostname' = ''" in described
    assert "at least 1 character" in described


def test_describe_validation_error_locates_a_list_item_with_brackets() -> None:
    """A bad item deep in a list must be located precisely, as a JSON path (`instances[0].x`)."""
    with pytest.raises(ValidationError) as caught:
        ServiceInstances.model_validate({"instances": [{"service": "nope"}]})
    described = describe_validation_error(caught.value, "reporting.service-instances.list.v1")
    assert "field 'instances[0].service' = 'nope'" in described


@pytest.mark.parametrize(
    ("location", "path"),
    [
        (("hostname",), "hostname"),
        (("installs", 0, "return_code"), "installs[0].return_code"),
        (("matrix", 1, 2), "matrix[1][2]"),
        ((), ""),
    ],
)
def test_field_path_writes_list_indexes_in_brackets(
    location: tuple[int | str, ...], path: str
) -> None:
    """The path an agent reads in a rejection is the one it would write to reach the field."""
    assert field_path(location) == path


def test_first_field_names_the_first_bad_field() -> None:
    """A rejection names one field: the first one validation found wrong."""
    with pytest.raises(ValidationError) as caught:
        ServiceInstances.model_validate({"instances": [{"service": "nope"}]})
    assert first_field(caught.value) == "instances[0].service"


def test_first_field_is_none_for_a_body_that_is_not_an_object() -> None:
    """Invalid JSON or a list instead of an object has no field to name."""
    with pytest.raises(ValidationError) as caught:
        AgentCheckin.model_validate_json(b'{"computer_id": ')
    assert first_field(caught.value) is None


def test_invalid_message_carries_the_field_at_fault() -> None:
    """The pipeline passes the field on to the agent's rejection; without one it is None."""
    assert InvalidMessage("bad", field="hostname").field == "hostname"
    assert InvalidMessage("bad").field is None


def test_describe_validation_error_hides_a_whole_object_value() -> None:
    """Dumping a whole body into the reason would bloat logs and could leak other fields."""
    error = _checkin_error(computer_id={"nested": "object"})
    assert "field 'computer_id' = {...}" in describe_validation_error(error, "agent.checkin.v1")


def test_describe_validation_error_counts_errors_beyond_five() -> None:
    """The reason stays one readable line, yet says that more fields are wrong."""
    error = _checkin_error(
        computer_id="pc.1",
        hostname="",
        os_version="x" * 101,
        timezone="Nowhere/Land",
        agent_version="y" * 51,
        checked_in_at="not a time",
        extra_field=1,
    )
    described = describe_validation_error(error, "agent.checkin.v1")
    assert error.error_count() == 7
    assert described.count("field '") == 5
    assert described.endswith(" (+2 more)")


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope(id="e1", source="lockgate/probe", type="probe.counter.counted.v1", time=NOW),
        Envelope(
            id="e2",
            source="lockgate/scheduler",
            type="scheduler.computer.install.v1",
            time=NOW.astimezone(timezone(timedelta(hours=-5))),
            subject="pc-0001",
            correlation_id="c'1\\",
        ),
    ],
    ids=["plain", "subject-correlation-offset"],
)
def test_the_relay_sends_what_to_amqp_sends(envelope: Envelope) -> None:
    """The relay reads back the envelope JSON it stored and builds the same AMQP properties
    as to_amqp (headers included) without validating it again."""
    # What the outbox column gives back: jsonb reorders keys and respaces.
    stored = json.dumps(json.loads(envelope.model_dump_json()), sort_keys=True)
    fast, slow = stored_properties(stored), to_amqp(envelope, b"{}").properties
    assert fast == slow
    assert fast.headers == slow.headers
