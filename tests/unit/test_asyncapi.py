"""The AsyncAPI document: generated from code, committed, and internally consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.contracts import REGISTRY, approval, reporting
from libs.contracts.agents import REJECTED
from libs.contracts.asyncapi import _ident, build, render
from libs.contracts.names import AGENT_QUEUE_ARGUMENTS, DEFAULT_VHOST, Exchange
from libs.contracts.spec import AgentEventSpec, InstructionSpec
from libs.service.runner import lockgate_version
from services.cli.service_registry import subscriptions

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def generated() -> dict[str, Any]:
    return build(REGISTRY, subscriptions(), lockgate_version())


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in refs(item)]
    return []


def resolve(document: dict[str, Any], ref: str) -> object:
    node: object = document
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict), ref
        node = node[part]
    return node


def test_committed_document_matches_the_code() -> None:
    """Consumers read docs/asyncapi.yaml: it must never drift from the models (make asyncapi)."""
    assert COMMITTED.read_text() == render(generated())


def test_every_reference_resolves() -> None:
    """A dangling $ref makes the document useless to code generators and viewers."""
    document = yaml.safe_load(COMMITTED.read_text())
    for ref in refs(document):
        resolve(document, ref)


def test_every_registered_message_has_a_channel_and_a_sender_or_answerer() -> None:
    """Each event says who publishes it and each command who answers it."""
    document = generated()
    operations = document["operations"]
    for event in REGISTRY.events.values():
        channel = event.type.replace(".", "_").replace("-", "_")
        assert channel in document["channels"]
        assert f"{event.producer}_sends_{channel}" in operations
    for command in REGISTRY.commands.values():
        channel = command.type.replace(".", "_").replace("-", "_")
        assert operations[f"{command.handler}_answers_{channel}"]["reply"]


def test_subscriptions_come_from_handler_tables() -> None:
    """Receive operations list which service consumes what, read from the handler tables."""
    operations = generated()["operations"]
    assert "reporting_receives_catalog_service_heartbeat_v1" in operations
    assert "approval_receives_scheduler_computer_registered_v1" in operations
    assert "scheduler_receives_agent_checkin_v1" in operations


def test_payload_schemas_keep_field_descriptions() -> None:
    """Field descriptions are the documentation other teams read; they must reach the doc."""
    schemas = generated()["components"]["schemas"]
    checkin = schemas["AgentCheckin"]["properties"]
    assert all(field.get("description") for field in checkin.values())


def test_every_event_carries_a_valid_example() -> None:
    """Other systems integrate on the events (approval's above all): each is documented with
    an example that its own model accepts."""
    document = generated()
    assert approval.APPROVAL_CHANGED in REGISTRY.events.values()
    for event in REGISTRY.events.values():
        assert event.example is not None, event.type
        (example,) = document["components"]["messages"][_ident(event.type)]["examples"]
        assert event.model.model_validate(example["payload"]) == event.example


def test_a_renamed_message_names_its_earlier_name_until_the_next_major_version() -> None:
    """Integrators still sending or binding the old name learn it works, and until when."""
    document = generated()
    earlier = "Earlier name, still accepted until v2: `approval.changed.v1`."
    channel = _ident(approval.APPROVAL_CHANGED.type)
    assert document["components"]["messages"][channel]["description"] == earlier
    assert document["channels"][channel]["description"].endswith(earlier)
    summary = _ident(reporting.SUMMARY.type)
    assert "`reporting.summary.v1`" in document["components"]["messages"][summary]["description"]
    assert "description" not in document["components"]["messages"][summary + "_reply"]


def test_a_message_never_renamed_has_no_earlier_name() -> None:
    """No empty or misleading 'earlier name' text on messages that kept theirs."""
    messages = generated()["components"]["messages"]
    renamed = {_ident(spec.type) for spec in REGISTRY.events.values() if spec.formerly} | {
        _ident(spec.type) for spec in REGISTRY.commands.values() if spec.formerly
    }
    assert renamed == {
        "approval_approval_changed_v1",
        "reporting_compliance_summary_v1",
        "approval_service_ping_v1",
        "catalog_service_ping_v1",
        "reporting_service_ping_v1",
        "scheduler_service_ping_v1",
    }
    described = {name for name, message in messages.items() if "description" in message}
    assert described == renamed


AGENT_SPECS = [
    spec for spec in REGISTRY.events.values() if isinstance(spec, AgentEventSpec | InstructionSpec)
]


def agent_messages(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every message an agent sends or receives, by name, from the agent channels."""
    names = {
        name
        for channel in document["channels"].values()
        if str(channel.get("address")).startswith(("agent.", "computer."))
        for name in channel["messages"]
    }
    return {name: document["components"]["messages"][name] for name in names}


def undescribed(document: dict[str, Any], node: object, where: str, seen: set[str]) -> list[str]:
    """Paths of the properties under `node` (following $refs) that have no description."""
    if isinstance(node, list):
        return [p for item in node for p in undescribed(document, item, where, seen)]
    if not isinstance(node, dict):
        return []
    found: list[str] = []
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        seen.add(ref)
        found += undescribed(document, resolve(document, ref), ref.rsplit("/", 1)[-1], seen)
    for name, schema in node.get("properties", {}).items():
        if not (isinstance(schema, dict) and str(schema.get("description", "")).strip()):
            found.append(f"{where}.{name}")
        found += undescribed(document, schema, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf"):
        found += undescribed(document, node.get(key), where, seen)
    return found


def test_every_field_of_every_agent_message_is_described() -> None:
    """An agent is written from the document alone: every payload field and every header of
    every message it sends or receives says what it is."""
    document = generated()
    messages = agent_messages(document)
    assert {_ident(spec.type) for spec in AGENT_SPECS} <= set(messages)
    missing = [
        path
        for name, message in sorted(messages.items())
        for part in ("payload", "headers")
        for path in undescribed(document, message[part], f"{name}.{part}", set())
    ]
    assert missing == []


def test_the_walk_finds_an_undescribed_field() -> None:
    """The check above would see a field without a description, however deep."""
    document = {
        "components": {
            "schemas": {
                "Inner": {"properties": {"bare": {"type": "string"}}},
                "Outer": {
                    "properties": {
                        "items": {
                            "description": "Some.",
                            "items": {"$ref": "#/components/schemas/Inner"},
                        }
                    }
                },
            }
        }
    }
    assert undescribed(document, {"$ref": "#/components/schemas/Outer"}, "x", set()) == [
        "Inner.bare"
    ]


@pytest.mark.parametrize("spec", AGENT_SPECS, ids=lambda spec: spec.type)
def test_every_agent_message_has_an_example_with_its_headers(
    spec: AgentEventSpec[Any] | InstructionSpec[Any],
) -> None:
    """Each message an agent sends or receives shows a whole message: headers and body."""
    message = generated()["components"]["messages"][_ident(spec.type)]
    (example,) = message["examples"]
    assert spec.model.model_validate(example["payload"]) == spec.example
    headers = example["headers"]
    assert headers["ce-type"] == spec.type
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-subject"] == example["payload"]["computer_id"]
    source = "agent/pc-0042" if isinstance(spec, AgentEventSpec) else f"lockgate/{spec.producer}"
    assert headers["ce-source"] == source
    (_, fixed) = message["headers"]["allOf"]
    assert fixed["properties"]["ce-type"]["const"] == spec.type


def test_every_cloudevents_header_has_its_format_and_value() -> None:
    """ce-specversion is 1.0, ce-time an RFC 3339 date-time, ce-id a UUID; each says what
    falls back to which AMQP property."""
    headers = generated()["components"]["schemas"]["CloudEventsHeaders"]["properties"]
    assert headers["ce-specversion"]["const"] == "1.0"
    assert headers["ce-time"]["format"] == "date-time"
    assert "RFC 3339" in headers["ce-time"]["description"]
    assert headers["ce-id"]["format"] == "uuid"
    for header, amqp in {
        "ce-id": "message_id",
        "ce-type": "type",
        "ce-time": "timestamp",
        "ce-source": "app_id",
    }.items():
        assert f"AMQP `{amqp}`" in headers[header]["description"], header
    assert "agent/<computer_id>" in headers["ce-source"]["description"]


def test_the_correlation_id_is_the_amqp_property() -> None:
    """No message carries a correlation_id header: every message points at the property."""
    document = generated()
    (name,) = document["components"]["correlationIds"]
    correlation = document["components"]["correlationIds"][name]
    assert correlation["x-amqp-property"] == "correlation_id"
    assert "the check-in's `ce-id`" in correlation["description"]
    for message in document["components"]["messages"].values():
        assert message["correlationId"] == {"$ref": f"#/components/correlationIds/{name}"}


def test_the_agent_queue_and_what_it_receives_are_documented() -> None:
    """The queue an agent consumes: name, binding, expiry, and a receive operation per
    instruction (the rejection included)."""
    document = generated()
    queue = document["channels"]["agent_queue"]
    assert queue["address"] == "agent.{computer_id}"
    assert queue["bindings"]["amqp"]["queue"]["vhost"] == DEFAULT_VHOST
    assert queue["x-queue-arguments"] == AGENT_QUEUE_ARGUMENTS
    assert queue["x-binding"] == {
        "exchange": Exchange.AGENTS.value,
        "key": "computer.{computer_id}.#",
    }
    assert "expire after 60 minutes" in queue["description"]
    instructions = [s for s in REGISTRY.events.values() if isinstance(s, InstructionSpec)]
    assert REJECTED in instructions
    for spec in instructions:
        operation = document["operations"][f"agent_receives_{_ident(spec.type)}"]
        assert operation["action"] == "receive"
        assert operation["channel"] == {"$ref": "#/channels/agent_queue"}


def test_the_server_names_its_vhost_and_how_agents_log_in() -> None:
    """An agent needs the vhost and its credentials' shape before it can connect."""
    document = generated()
    (server,) = document["servers"].values()
    assert server["pathname"] == f"/{DEFAULT_VHOST}"
    schemes = document["components"]["securitySchemes"]
    assert [resolve(document, ref["$ref"]) for ref in server["security"]] == list(schemes.values())
    assert all(scheme["type"] == "userPassword" for scheme in schemes.values())
    assert "computer id" in schemes["agentUser"]["description"]
