"""The AsyncAPI document: generated from code, committed, and internally consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from libs.contracts import REGISTRY, approval, reporting
from libs.contracts.asyncapi import _ident, build, render
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
