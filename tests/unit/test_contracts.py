"""Message contracts: type naming, renames, examples, agent routing, the registry, field docs
and the envelope."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from libs.contracts import (
    REGISTRY,
    AgentEventSpec,
    CommandSpec,
    Contract,
    Envelope,
    EventSpec,
    Registry,
    UnknownMessageType,
    approval,
    dead_letter_queue_name,
    queue_name,
    reporting,
)
from libs.contracts.scheduler import AGENT_CHECKIN, AgentCheckin
from libs.contracts.spec import InstructionSpec, command, event, major_version, message_type
from libs.contracts.system import PING, Ping

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)

BAD_TYPES = [
    pytest.param("catalog.update.published", id="no-major-version"),
    pytest.param("catalog.update.published.v0", id="major-zero"),
    pytest.param("catalog.update.published.V1", id="upper-case-version"),
    pytest.param("Catalog.update.published.v1", id="upper-case-service"),
    pytest.param("catalog.v1", id="no-name-between-service-and-version"),
    pytest.param("catalog..published.v1", id="empty-segment"),
    pytest.param("catalog.update_published.v1", id="underscore"),
    pytest.param("catalog.update.published.v1\n", id="trailing-newline"),
    pytest.param("", id="empty"),
]


class Sample(Contract):
    """A throw-away body for specs built in these tests."""

    note: str = "sample"


def _event(message_type: str, formerly: tuple[str, ...] = ()) -> EventSpec[Sample]:
    return EventSpec(
        type=message_type, model=Sample, producer="catalog", summary="test", formerly=formerly
    )


def _command(
    message_type: str, handler: str = "catalog", formerly: tuple[str, ...] = ()
) -> CommandSpec[Sample, Sample]:
    return CommandSpec(
        type=message_type,
        request=Sample,
        reply=Sample,
        handler=handler,
        summary="test",
        formerly=formerly,
    )


def _checkin(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "computer_id": "pc-0042",
        "hostname": "reception-01",
        "timezone": "Europe/Paris",
        "checked_in_at": NOW.isoformat(),
    }
    body.update(overrides)
    return body


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """Pydantic models named anywhere inside a field annotation (lists, optionals...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _reachable_models() -> list[type[BaseModel]]:
    roots: list[type[BaseModel]] = [spec.model for spec in REGISTRY.events.values()]
    for asked in REGISTRY.commands.values():
        roots += [asked.request, asked.reply]
    seen: list[type[BaseModel]] = []
    while roots:
        model = roots.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            roots += _models_in(field.annotation)
    return sorted(seen, key=lambda model: model.__qualname__)


REACHABLE_MODELS = _reachable_models()
REGISTERED_TYPES = sorted([*REGISTRY.events, *REGISTRY.commands])
EVENT_SPECS = sorted(REGISTRY.events.values(), key=lambda spec: spec.type)


# --- message type naming ---------------------------------------------------------------


@pytest.mark.parametrize("message_type", BAD_TYPES)
def test_event_spec_refuses_a_badly_formed_type(message_type: str) -> None:
    """A type that breaks the naming rule would make routing keys and versions ambiguous."""
    with pytest.raises(ValueError, match="is not allowed"):
        _event(message_type)


@pytest.mark.parametrize("message_type", BAD_TYPES)
def test_command_spec_refuses_a_badly_formed_type(message_type: str) -> None:
    """Commands follow the same naming rule as events, so one parser serves both."""
    with pytest.raises(ValueError, match="is not allowed"):
        _command(message_type)


def test_event_spec_accepts_a_well_formed_type() -> None:
    """The rule must let real types through, or no service could declare an event."""
    assert _event("catalog.update-file.published.v12").type == "catalog.update-file.published.v12"


def test_command_spec_refuses_a_type_not_prefixed_by_its_handler_service() -> None:
    """Commands are routed to `<handler>.commands`; a foreign prefix would mislead callers."""
    with pytest.raises(ValueError, match=re.escape("use 'approval.<aggregate>.<verb>.v<major>'")):
        _command("catalog.update.approve.v1", handler="approval")


def test_command_spec_refuses_a_handler_that_is_only_a_prefix_of_the_service() -> None:
    """`cat` must not answer `catalog.*`: the prefix check stops at the dot."""
    with pytest.raises(ValueError, match=re.escape("use 'cat.<aggregate>.<verb>.v<major>'")):
        _command("catalog.update.list.v1", handler="cat")


def test_event_spec_refuses_a_type_of_another_service() -> None:
    """A service publishes under its own name only: the broker lets it write nothing else."""
    with pytest.raises(ValueError, match=re.escape("'approval.group.created.v1' is not allowed")):
        _event("approval.group.created.v1")


@pytest.mark.parametrize(
    "message_type",
    [
        pytest.param("approval.changed.v1", id="no-aggregate"),
        pytest.param("reporting.summary.v1", id="no-verb"),
        pytest.param("catalog.ping.v1", id="ping-without-aggregate"),
        pytest.param("catalog.update.file.published.v1", id="two-aggregates"),
    ],
)
def test_a_spec_whose_type_breaks_service_aggregate_verb_is_refused_naming_it(
    message_type: str,
) -> None:
    """`<service>.<aggregate>.<verb>.v<N>` is the one rule: a consumer binding
    `<service>.<aggregate>.*.v1` must see every verb of that aggregate, and nothing else."""
    service = message_type.split(".", 1)[0]
    with pytest.raises(ValueError, match=re.escape(f"message type {message_type!r}")):
        EventSpec(type=message_type, model=Sample, producer=service, summary="x")
    with pytest.raises(ValueError, match=re.escape(f"message type {message_type!r}")):
        CommandSpec(type=message_type, request=Sample, reply=Sample, handler=service, summary="x")


def test_message_type_joins_service_aggregate_verb_and_major() -> None:
    """The factories name every service message this one way."""
    assert message_type("catalog", "update-file", "published") == "catalog.update-file.published.v1"
    assert message_type("reporting", "compliance", "summary", major=3) == (
        "reporting.compliance.summary.v3"
    )


@pytest.mark.parametrize(
    ("service", "aggregate", "verb", "label"),
    [
        pytest.param("Catalog", "update", "published", "service", id="upper-case"),
        pytest.param("catalog", "update.file", "published", "aggregate", id="dot"),
        pytest.param("catalog", "", "published", "aggregate", id="empty"),
        pytest.param("catalog", "update", "re_published", "verb", id="underscore"),
        pytest.param("catalog", "update", "1st", "verb", id="leading-digit"),
        pytest.param("catalog", "update", "published\n", "verb", id="trailing-newline"),
        pytest.param("catalog", "upd*", "published", "aggregate", id="wildcard"),
    ],
)
def test_message_type_refuses_a_bad_word_naming_it(
    service: str, aggregate: str, verb: str, label: str
) -> None:
    """A dot or wildcard inside one word would shift every word after it in binding keys."""
    with pytest.raises(ValueError, match=f"message type {label} "):
        message_type(service, aggregate, verb)


def test_message_type_refuses_major_zero() -> None:
    """Versions start at 1, as the type rule says (`v0` is refused everywhere)."""
    with pytest.raises(ValueError, match="major version 0"):
        message_type("catalog", "update", "published", major=0)


def test_event_factory_names_the_spec_and_its_producer() -> None:
    """`event()` derives the type and the producer from the same service word."""
    spec = event(
        "catalog",
        "update",
        "published",
        Sample,
        summary="x",
        example=Sample(),
        major=2,
        formerly=("catalog.published.v1",),
    )
    assert (spec.type, spec.producer) == ("catalog.update.published.v2", "catalog")
    assert spec.accepted_types == ("catalog.update.published.v2", "catalog.published.v1")
    assert spec.binding_keys == ("catalog.update.published.v2", "catalog.published.v1")


def test_command_factory_names_the_spec_and_its_handler() -> None:
    """`command()` derives the type and the answering service from the same word."""
    spec = command("reporting", "compliance", "summary", Sample, Sample, summary="x")
    assert (spec.type, spec.handler, spec.routing_key) == (
        "reporting.compliance.summary.v1",
        "reporting",
        "reporting.compliance.summary.v1",
    )
    assert spec.accepted_types == ("reporting.compliance.summary.v1",)


def test_a_former_name_must_itself_be_a_well_formed_type() -> None:
    """An earlier name is bound and matched like a type; garbage would bind nothing."""
    with pytest.raises(ValueError, match=re.escape("'catalog.Published' is not allowed")):
        _event("catalog.update.published.v1", formerly=("catalog.Published",))


def test_major_version_reads_the_number_after_the_last_v() -> None:
    """Consumers pick an upcaster by major version; multi-digit versions must parse whole."""
    assert major_version("catalog.v2-report.published.v13") == 13


# --- agent routing -------------------------------------------------------------------


def test_agent_event_routing_key_carries_the_computer_id() -> None:
    """The broker routes an agent's message by the computer id in its routing key."""
    assert AGENT_CHECKIN.routing_key("pc-0042") == "agent.pc-0042.checkin.v1"


def test_agent_event_binding_key_matches_any_computer() -> None:
    """The scheduler binds once for every computer, not once per computer."""
    assert AGENT_CHECKIN.binding_key == "agent.*.checkin.v1"


@pytest.mark.parametrize(
    "computer_id",
    [
        pytest.param("pc.42", id="dot"),
        pytest.param("pc#", id="hash"),
        pytest.param("*", id="star"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
        pytest.param("-pc42", id="leading-dash"),
        pytest.param("x" * 65, id="too-long"),
        pytest.param("pc-42\n", id="trailing-newline"),
    ],
)
def test_agent_event_routing_key_refuses_a_bad_computer_id(computer_id: str | None) -> None:
    """A dot or wildcard in the id would let one agent's message match another's binding."""
    with pytest.raises(ValueError, match="is not a computer id"):
        AGENT_CHECKIN.routing_key(computer_id)


def test_agent_event_spec_refuses_a_type_outside_the_agent_prefix() -> None:
    """Agent messages live under `agent.`; anything else would escape the agent bindings."""
    with pytest.raises(ValueError, match=re.escape("must be 'agent.<kind>.v<major>'")):
        AgentEventSpec(type="scheduler.checkin.v1", model=Sample, producer="agent", summary="x")


def test_agent_event_spec_refuses_more_than_one_kind_word() -> None:
    """The computer id goes between `agent.` and the kind: a second word would shift it."""
    with pytest.raises(ValueError, match=re.escape("must be 'agent.<kind>.v<major>'")):
        AgentEventSpec(type="agent.status.full.v1", model=Sample, producer="agent", summary="x")


def test_agent_event_spec_refuses_a_model_without_its_computer_id_field() -> None:
    """The pipeline checks the body's computer id against the routing key: the spec must say
    which field holds it, and the model must have that field."""
    with pytest.raises(ValueError, match=re.escape("Sample has no field 'computer_id'")):
        AgentEventSpec(type="agent.sample.v1", model=Sample, producer="agent", summary="x")


def test_agent_event_spec_reads_the_computer_id_from_the_field_it_names() -> None:
    """A model may hold the computer id under another name; the spec names the field."""
    spec = AgentEventSpec(
        type="agent.sample.v1",
        model=Sample,
        producer="agent",
        summary="x",
        computer_id_field="note",
    )
    assert spec.computer_id_of(Sample(note="pc-0042")) == "pc-0042"


@pytest.mark.parametrize(
    "spec",
    [spec for spec in REGISTRY.events.values() if isinstance(spec, AgentEventSpec)],
    ids=lambda spec: spec.type,
)
def test_every_agent_message_names_the_computer_it_speaks_for(spec: AgentEventSpec[Any]) -> None:
    """Every agent message type carries the computer id the pipeline checks (its example
    speaks for the example computer)."""
    assert spec.example is not None
    assert spec.computer_id_of(spec.example) == "pc-0042"


def test_instruction_spec_refuses_a_type_outside_the_computer_prefix() -> None:
    """Agents bind `computer.<own id>.#`; an instruction elsewhere would never reach them."""
    with pytest.raises(ValueError, match=re.escape("must be 'computer.<kind>.v<major>'")):
        InstructionSpec(type="scheduler.plan.v1", model=Sample, producer="scheduler", summary="x")


def test_event_spec_refuses_an_example_of_another_model() -> None:
    """The documented example must be what consumers receive, not some other body."""
    with pytest.raises(ValueError, match="the example is not a Sample"):
        EventSpec(
            type="catalog.update.published.v1",
            model=Sample,
            producer="catalog",
            summary="x",
            example=Ping(),  # the wrong model on purpose
        )


# --- registry ------------------------------------------------------------------------


def test_registry_refuses_two_events_with_one_type() -> None:
    """Two models under one type would make decoding depend on registration order."""
    with pytest.raises(ValueError, match="declared twice"):
        Registry(events=[_event("catalog.x.made.v1"), _event("catalog.x.made.v1")], commands=[])


def test_registry_refuses_an_event_and_a_command_sharing_a_type() -> None:
    """A type names one message whichever exchange it travels on."""
    with pytest.raises(ValueError, match="declared twice"):
        Registry(events=[_event("catalog.x.made.v1")], commands=[_command("catalog.x.made.v1")])


def test_registry_unknown_event_lists_the_known_types() -> None:
    """The error must show what would have been accepted, so the sender can fix its type."""
    registry = Registry(
        events=[_event("catalog.a.made.v1"), _event("catalog.b.made.v1")], commands=[]
    )
    with pytest.raises(UnknownMessageType) as caught:
        registry.event("catalog.c.made.v1")
    assert "'catalog.c.made.v1'" in str(caught.value)
    assert "['catalog.a.made.v1', 'catalog.b.made.v1']" in str(caught.value)


def test_registry_unknown_command_lists_the_known_types() -> None:
    """Same as for events: a caller with a typo sees the right command name."""
    registry = Registry(events=[], commands=[_command("catalog.a.list.v1")])
    with pytest.raises(UnknownMessageType, match=re.escape("['catalog.a.list.v1']")):
        registry.command("catalog.b.list.v1")


def test_registry_finds_a_registered_event_by_type() -> None:
    """Lookup is how a consumer picks the model to decode a body with."""
    spec = _event("catalog.a.made.v1")
    assert Registry(events=[spec], commands=[]).event("catalog.a.made.v1") is spec


def test_registry_resolves_a_former_name_to_the_renamed_spec() -> None:
    """A message published before a rename still decodes, with the new spec."""
    renamed = _event("catalog.update.made.v1", formerly=("catalog.made.v1",))
    asked = _command("catalog.update.get.v1", formerly=("catalog.get.v1",))
    registry = Registry(events=[renamed], commands=[asked])
    assert registry.event("catalog.made.v1") is renamed
    assert registry.command("catalog.get.v1") is asked
    assert list(registry.events) == ["catalog.update.made.v1"]  # listed once, by its type


def test_registry_does_not_find_an_event_by_a_command_s_former_name() -> None:
    """Earlier names stay on their own side: an event type never decodes as a command."""
    registry = Registry(
        events=[], commands=[_command("catalog.update.get.v1", formerly=("catalog.get.v1",))]
    )
    with pytest.raises(UnknownMessageType):
        registry.event("catalog.get.v1")


@pytest.mark.parametrize(
    ("events", "commands"),
    [
        pytest.param(
            [
                _event("catalog.update.made.v1"),
                _event("catalog.x.y.v1", ("catalog.update.made.v1",)),
            ],
            [],
            id="former-name-is-another-event-type",
        ),
        pytest.param(
            [_event("catalog.a.made.v1", ("catalog.made.v1",))],
            [_command("catalog.b.get.v1", formerly=("catalog.made.v1",))],
            id="two-specs-share-a-former-name",
        ),
        pytest.param(
            [_event("catalog.a.made.v1")],
            [_command("catalog.b.get.v1", formerly=("catalog.a.made.v1",))],
            id="command-former-name-is-an-event-type",
        ),
    ],
)
def test_registry_refuses_a_name_claimed_twice_across_types_and_former_names(
    events: list[EventSpec[Sample]], commands: list[CommandSpec[Sample, Sample]]
) -> None:
    """One name must decode one way, whether it is a type or an earlier name."""
    with pytest.raises(ValueError, match="declared twice"):
        Registry(events=events, commands=commands)


@pytest.mark.parametrize(
    ("old", "spec"),
    [
        pytest.param("approval.changed.v1", approval.APPROVAL_CHANGED, id="approval-changed"),
        pytest.param("reporting.summary.v1", reporting.SUMMARY, id="reporting-summary"),
        *(
            pytest.param(f"{service}.ping.v1", spec, id=f"{service}-ping")
            for service, spec in PING.items()
        ),
    ],
)
def test_the_renamed_types_are_still_accepted_under_their_old_names(
    old: str, spec: EventSpec[Any] | CommandSpec[Any, Any]
) -> None:
    """Renamed in issue 14; callers and queued messages using the old name keep working
    until v2."""
    assert old in spec.accepted_types
    found = REGISTRY.event(old) if isinstance(spec, EventSpec) else REGISTRY.command(old)
    assert found is spec
    assert major_version(spec.type) == 1


@pytest.mark.parametrize("spec", EVENT_SPECS, ids=lambda spec: spec.type)
def test_every_event_has_an_example_that_round_trips_through_json(spec: EventSpec[Any]) -> None:
    """The AsyncAPI document shows each event's example: it must be a message its own model
    reads back unchanged from the wire."""
    assert spec.example is not None, f"{spec.type} has no example"
    assert isinstance(spec.example, spec.model)
    text = spec.example.model_dump_json()
    assert spec.model.model_validate_json(text) == spec.example
    assert spec.model.model_validate(json.loads(text)) == spec.example


def test_contracts_import_nothing_from_libs_settings() -> None:
    """Contracts are what other teams and the agent build against: importing them must not
    pull in a service's settings (nor anything else of libs)."""
    probe = textwrap.dedent(
        """
        import json, sys
        import libs.contracts, libs.contracts.api, libs.contracts.asyncapi
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("libs"))))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    assert [m for m in loaded if m != "libs" and not m.startswith("libs.contracts")] == []


@pytest.mark.parametrize("model", REACHABLE_MODELS, ids=lambda model: model.__qualname__)
def test_every_field_of_a_registered_model_has_a_description(model: type[BaseModel]) -> None:
    """Field descriptions are the published contract (AsyncAPI); a blank one documents nothing."""
    undocumented = [
        name
        for name, field in model.model_fields.items()
        if not (field.description and field.description.strip())
    ]
    assert undocumented == []


def test_registry_reaches_nested_reply_models() -> None:
    """The description check must also cover models nested inside replies."""
    names = {model.__qualname__ for model in REACHABLE_MODELS}
    assert {"ServiceInstances", "ServiceInstance", "AgentCheckin", "Ping", "Pong"} <= names


@pytest.mark.parametrize("message_type", REGISTERED_TYPES)
def test_every_registered_type_ends_with_its_major_version(message_type: str) -> None:
    """Versioned types let old and new consumers coexist during a rollout."""
    suffix = message_type.rsplit(".", 1)[1]
    assert re.fullmatch(r"v[1-9][0-9]*", suffix)
    assert major_version(message_type) == int(suffix[1:])


# --- contract bodies -----------------------------------------------------------------


def test_contract_refuses_an_unknown_field() -> None:
    """A misspelled field must fail loudly instead of being silently dropped."""
    with pytest.raises(ValidationError) as caught:
        Ping.model_validate({"echo": "hi", "ecko": "typo"})
    assert [error["type"] for error in caught.value.errors()] == ["extra_forbidden"]
    assert caught.value.errors()[0]["loc"] == ("ecko",)


def test_contract_is_immutable() -> None:
    """A handler must not alter a message another handler may also read."""
    ping = Ping(echo="hi")
    with pytest.raises(ValidationError, match="frozen"):
        ping.echo = "changed"  # type: ignore[misc]  # assigning to a frozen model on purpose


def test_agent_checkin_refuses_an_unknown_timezone_naming_it() -> None:
    """Deadlines are computed in the computer's local time; the agent must learn its mistake."""
    with pytest.raises(ValidationError) as caught:
        AgentCheckin.model_validate(_checkin(timezone="Mars/Olympus_Mons"))
    assert caught.value.errors()[0]["loc"] == ("timezone",)
    assert "'Mars/Olympus_Mons'" in str(caught.value)


def test_agent_checkin_accepts_a_known_timezone() -> None:
    """The timezone check must not refuse real IANA names."""
    assert AgentCheckin.model_validate(_checkin()).timezone == "Europe/Paris"


# --- envelope ------------------------------------------------------------------------


def _envelope(**overrides: Any) -> Envelope:
    fields: dict[str, Any] = {
        "id": "0d9b2a4e-5d0e-4c55-9a43-54f5f7e3e0a1",
        "source": "lockgate/scheduler",
        "type": "scheduler.computer.registered.v1",
        "time": NOW,
    }
    fields.update(overrides)
    return Envelope(**fields)


def test_envelope_headers_carry_the_cloudevents_attributes() -> None:
    """Consumers in any language read these headers (CloudEvents AMQP binding)."""
    assert _envelope().headers() == {
        "ce-id": "0d9b2a4e-5d0e-4c55-9a43-54f5f7e3e0a1",
        "ce-source": "lockgate/scheduler",
        "ce-type": "scheduler.computer.registered.v1",
        "ce-time": "2025-03-14T09:26:53+00:00",
        "ce-specversion": "1.0",
    }


def test_envelope_headers_include_subject_when_set() -> None:
    """The subject is how a consumer knows which computer an event is about."""
    assert _envelope(subject="pc-0042").headers()["ce-subject"] == "pc-0042"


def test_envelope_headers_omit_subject_when_unset() -> None:
    """An empty ce-subject header would read as a subject that is the empty string."""
    assert "ce-subject" not in _envelope(subject=None).headers()


def test_envelope_header_time_is_converted_to_utc() -> None:
    """Inside Lockgate time is UTC; a local offset on the wire would confuse comparisons."""
    paris = timezone(timedelta(hours=1))
    envelope = _envelope(time=datetime(2025, 3, 14, 10, 26, 53, tzinfo=paris))
    assert envelope.headers()["ce-time"] == "2025-03-14T09:26:53+00:00"


def test_envelope_refuses_a_naive_time() -> None:
    """A time without a zone cannot be ordered against other services' times."""
    with pytest.raises(ValidationError, match="timezone"):
        _envelope(time=datetime(2025, 3, 14, 9, 26, 53))  # noqa: DTZ001 - naive on purpose


def test_envelope_new_stamps_a_fresh_id_each_time() -> None:
    """The id is the dedupe key; two messages must never share it."""
    first = Envelope.new(source="lockgate/catalog", type="catalog.x.v1", now=NOW)
    second = Envelope.new(source="lockgate/catalog", type="catalog.x.v1", now=NOW)
    assert first.id != second.id


# --- queue names ---------------------------------------------------------------------


def test_queue_name_joins_service_and_purpose() -> None:
    """Queue names are derived, never typed twice, so producers and consumers agree."""
    assert queue_name("reporting", "agent-status") == "reporting.agent-status"


@pytest.mark.parametrize(
    ("service", "purpose", "label"),
    [
        pytest.param("Reporting", "status", "service", id="upper-case-service"),
        pytest.param("reporting", "agent.status", "purpose", id="dot-in-purpose"),
        pytest.param("reporting", "", "purpose", id="empty-purpose"),
        pytest.param("2reporting", "status", "service", id="leading-digit"),
        pytest.param("reporting", "status#", "purpose", id="hash"),
        pytest.param("reporting\n", "status", "service", id="trailing-newline"),
    ],
)
def test_queue_name_refuses_a_bad_part_naming_it(service: str, purpose: str, label: str) -> None:
    """A dot or odd character would break the `<service>.<purpose>` convention."""
    with pytest.raises(ValueError, match=f"queue {label} "):
        queue_name(service, purpose)


def test_dead_letter_queue_name_appends_dlq() -> None:
    """Operators find a queue's dead letters next to it, under `<queue>.dlq`."""
    assert dead_letter_queue_name("reporting.agent-status") == "reporting.agent-status.dlq"


# --- text PostgreSQL can store and UTF-8 can encode ----------------------------------------------

PLAN_WITH = (
    '{"computer_id": "pc-1", "policy_id": null, "policy_name": "no policy",'
    ' "policy_conflict": null, "settings": {}, "timezone": "UTC", "next_window": null,'
    ' "items": [{"update_id": "u1", "kb": "%s", "title": "t", "action": "required_install",'
    ' "deadline": null, "state": "needed", "install_at": null, "restart": "never",'
    ' "command_line": null, "return_codes": []}], "computed_at": "2026-01-01T00:00:00Z"}'
)


@pytest.mark.parametrize(
    ("kb", "refused"),
    [
        ("5034441", None),
        ("caf\u00e9", None),
        ("\\ud83d\\ude00", None),  # an escaped surrogate pair is one character: fine
        ("50\\u0000", "NUL"),
        ("\\ud800", "JSON"),  # a lone escaped surrogate
    ],
)
def test_nested_text_is_checked_from_json(kb: str, refused: str | None) -> None:
    from libs.contracts.agents import ComputerPlan  # noqa: PLC0415 - keeps the table above short

    text = PLAN_WITH % kb
    if refused is None:
        assert ComputerPlan.model_validate_json(text).items[0].kb is not None
        return
    with pytest.raises(ValidationError, match=refused):
        ComputerPlan.model_validate_json(text)


def test_nested_text_is_checked_from_python_values_and_str_json() -> None:
    from libs.contracts.agents import ComputerPlan  # noqa: PLC0415

    plan = json.loads(PLAN_WITH % "5034441")
    plan["items"][0]["title"] = "bad\x00title"
    with pytest.raises(ValidationError, match=r"items\[0\]\.title: NUL"):
        ComputerPlan.model_validate(plan)
    with pytest.raises(ValidationError):  # a str carrying a raw lone surrogate
        ComputerPlan.model_validate_json(PLAN_WITH % "\ud800")
