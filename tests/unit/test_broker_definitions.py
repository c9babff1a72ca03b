"""deploy/rabbitmq/definitions.json: generated from the handler tables, committed, passwordless,
and each user's patterns cover what it needs and nothing of the others'."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from libs.bus.definitions import (
    AGENT_QUEUE_ARGUMENTS,
    agent_definitions,
    agent_queue_name,
    definitions,
    escape,
    password_hash,
    with_passwords,
)
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.settings import SERVICE_NAMES, ServiceName
from services.cli import broker_commands
from services.cli.main import main
from services.cli.service_registry import definition

COMMITTED = broker_commands.COMMITTED


def generated() -> dict[str, Any]:
    return definitions([definition(service) for service in SERVICE_NAMES])


def permission(document: dict[str, Any], user: str) -> dict[str, str]:
    (found,) = [p for p in document["permissions"] if p["user"] == user]
    return {key: str(value) for key, value in found.items()}


def topics(document: dict[str, Any], user: str) -> dict[str, dict[str, str]]:
    return {t["exchange"]: t for t in document["topic_permissions"] if t["user"] == user}


def allows(pattern: str, name: str, username: str = "") -> bool:
    """As RabbitMQ matches: unanchored search, `{username}` expanded as is."""
    return re.search(pattern.replace("{username}", username), name) is not None


def own_queues(service: ServiceName) -> set[str]:
    return set(definition(service).queues())


def test_committed_definitions_match_the_code() -> None:
    """A new queue or event must reach the broker's permissions (lockgate broker definitions)."""
    assert COMMITTED.read_text() == broker_commands.generated()


def test_the_cli_checks_and_writes_the_same_text(tmp_path: Path) -> None:
    assert main(["broker", "definitions", "--check", "--output", str(COMMITTED)]) == 0
    written = tmp_path / "definitions.json"
    assert main(["broker", "definitions", "--output", str(written)]) == 0
    assert written.read_text() == COMMITTED.read_text()
    written.write_text("{}\n")
    assert main(["broker", "definitions", "--check", "--output", str(written)]) == 2


def test_no_committed_user_has_a_usable_password() -> None:
    document = json.loads(COMMITTED.read_text())
    assert {u["name"] for u in document["users"]} == {
        f"lockgate-{name}" for name in [*SERVICE_NAMES, "console"]
    }
    for user in document["users"]:
        assert user["password_hash"] == ""
        assert user["tags"] == []


def test_passwords_go_only_to_a_deploy_time_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [*SERVICE_NAMES, "console"]:
        monkeypatch.setenv(f"LOCKGATE_BROKER_PASSWORD_{name.upper()}", f"secret-{name}")
    committed = tmp_path / "committed.json"
    monkeypatch.setattr(broker_commands, "COMMITTED", committed)
    assert main(["broker", "definitions", "--passwords-from-env", "--output", str(committed)]) == 1
    assert not committed.exists()
    target = tmp_path / "with-passwords.json"
    assert main(["broker", "definitions", "--passwords-from-env", "--output", str(target)]) == 0
    users = json.loads(target.read_text())["users"]
    assert all(len(u["password_hash"]) == 48 for u in users)
    monkeypatch.delenv("LOCKGATE_BROKER_PASSWORD_CONSOLE")
    assert main(["broker", "definitions", "--passwords-from-env", "--output", str(target)]) == 1


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_a_service_reaches_its_own_queues_and_no_other(service: ServiceName) -> None:
    document = generated()
    granted = permission(document, f"lockgate-{service}")
    mine = own_queues(service)
    theirs = {q for other in SERVICE_NAMES if other != service for q in own_queues(other)}
    for queue in mine:
        assert allows(granted["configure"], queue)
        assert allows(granted["configure"], dead_letter_queue_name(queue))
        assert allows(granted["write"], queue)  # binding it
        assert allows(granted["read"], queue)  # consuming it
        assert not allows(granted["read"], dead_letter_queue_name(queue))
    for queue in theirs:
        for kind in ("configure", "write", "read"):
            assert not allows(granted[kind], queue), (kind, queue)
            assert not allows(granted[kind], dead_letter_queue_name(queue)), (kind, queue)
    for exchange in Exchange:  # Bus.declare_exchanges declares all four at start
        assert allows(granted["configure"], exchange.value)
    assert allows(granted["write"], "amq.default")  # RPC replies
    assert allows(granted["write"], Exchange.DEAD_LETTERS.value)
    # Only a service that calls another's commands (approval: a rollout gate's counts) sends
    # any; the others send none.
    calls = bool(definition(service).calls)
    assert allows(granted["write"], Exchange.COMMANDS.value) == calls
    assert calls == (service == "approval")
    assert not allows(granted["read"], "amq.default")
    assert not allows(granted["write"], agent_queue_name("pc-1"))
    assert topics(document, f"lockgate-{service}")["lockgate.events"]["write"] == f"^{service}\\."


def test_only_the_scheduler_instructs_agents_and_nobody_binds_instructions() -> None:
    document = generated()
    for service in SERVICE_NAMES:
        user = f"lockgate-{service}"
        granted, topic = permission(document, user), topics(document, user)
        instructs = allows(granted["write"], Exchange.AGENTS.value)
        assert instructs == (service == "scheduler")
        if Exchange.AGENTS.value in topic:
            assert not allows(topic[Exchange.AGENTS.value]["read"], "computer.pc-1.#")
            assert not allows(topic[Exchange.AGENTS.value]["write"], "agent.pc-1.status.v1")
    scheduler = topics(document, "lockgate-scheduler")[Exchange.AGENTS.value]
    assert allows(scheduler["write"], "computer.pc-1.plan.v1")
    assert allows(scheduler["read"], "agent.*.checkin.v1")


def test_a_service_answering_agents_refusals_may_publish_their_rejections() -> None:
    """`sends_rejected` on a route is what lets its service publish computer.<id>.rejected.v1
    (reporting, whose routes do not set it, may not)."""
    reporting = definition("reporting")
    answering = dataclasses.replace(
        reporting,
        events=tuple(
            dataclasses.replace(route, sends_rejected=True)
            if route.spec.exchange == Exchange.AGENTS
            else route
            for route in reporting.events
        ),
    )
    for service, may in ((reporting, False), (answering, True)):
        document = definitions([service])
        granted = permission(document, "lockgate-reporting")
        topic = topics(document, "lockgate-reporting")[Exchange.AGENTS.value]
        assert allows(granted["write"], Exchange.AGENTS.value) == may
        assert allows(topic["write"], "computer.pc-1.rejected.v1") == may


def test_the_console_sends_commands_and_keeps_dead_letters() -> None:
    """Commands; and for its dead-letter keeper: read every `<queue>.dlq` and replay on
    `lockgate.replay` only (to the queue a message failed in); no event, no agent message,
    nothing declared."""
    granted = permission(generated(), "lockgate-console")
    assert granted["configure"] == "^$"
    assert allows(granted["read"], "scheduler.agent-checkins.dlq")
    assert not allows(granted["read"], "scheduler.agent-checkins")  # never a work queue
    for exchange in (Exchange.COMMANDS, Exchange.REPLAY):
        assert allows(granted["write"], exchange.value)
    for exchange in (Exchange.EVENTS, Exchange.AGENTS, Exchange.DEAD_LETTERS):
        assert not allows(granted["write"], exchange.value)
    assert not allows(granted["write"], "amq.default")
    assert topics(generated(), "lockgate-console") == {}


def test_every_service_queue_may_bind_the_replay_exchange() -> None:
    for service in SERVICE_NAMES:
        assert allows(permission(generated(), f"lockgate-{service}")["read"], "lockgate.replay")
    for user in ("pc-1",):
        granted = permission(agent_definitions([user], vhost="v"), user)
        assert not allows(granted["write"], Exchange.REPLAY.value)


def test_an_agent_may_speak_and_listen_only_for_itself() -> None:
    document = agent_definitions(["pc-1", "pc-10"], vhost="v")
    granted = permission(document, "pc-1")
    assert granted["configure"] == "^$"  # declares nothing: no exchange to feed its queue
    assert allows(granted["read"], "agent.pc-1")
    assert not allows(granted["read"], "agent.pc-10")
    assert not allows(granted["write"], "lockgate.events")
    assert not allows(granted["write"], "amq.default")
    topic = topics(document, "pc-1")[Exchange.AGENTS.value]
    assert allows(topic["write"], "agent.pc-1.status.v1", username="pc-1")
    assert not allows(topic["write"], "agent.pc-10.status.v1", username="pc-1")
    assert not allows(topic["write"], "computer.pc-1.plan.v1", username="pc-1")
    assert allows(topic["read"], "computer.pc-1.#", username="pc-1")
    assert not allows(topic["read"], "computer.pc-10.#", username="pc-1")
    assert not allows(topic["read"], "#", username="pc-1")
    assert document["queues"] == [
        {
            "name": "agent.pc-1",
            "vhost": "v",
            "durable": True,
            "auto_delete": False,
            "arguments": AGENT_QUEUE_ARGUMENTS,
        },
        {
            "name": "agent.pc-10",
            "vhost": "v",
            "durable": True,
            "auto_delete": False,
            "arguments": AGENT_QUEUE_ARGUMENTS,
        },
    ]
    assert [(b["destination"], b["routing_key"]) for b in document["bindings"]] == [
        ("agent.pc-1", "computer.pc-1.#"),
        ("agent.pc-10", "computer.pc-10.#"),
    ]


@pytest.mark.parametrize("computer_id", ["", "pc.1", "pc 1", "-pc", "pc{1}", "a" * 65, "pc*"])
def test_computer_ids_outside_the_contract_are_refused(computer_id: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        agent_definitions([computer_id])


def test_an_agent_never_overwrites_another_broker_user() -> None:
    with pytest.raises(ValueError, match="other broker users"):
        agent_definitions(["lockgate-catalog"], reserved=["lockgate-catalog"])
    with pytest.raises(ValueError, match="other broker users"):
        agent_definitions(["guest"])
    with pytest.raises(ValueError, match="named twice"):
        agent_definitions(["pc-1", "pc-1"])
    assert main(["broker", "agents", "lockgate-console"]) == 1


def test_the_password_hash_is_rabbitmqs() -> None:
    """The example of RabbitMQ's passwords guide: salt 908DC60A, password test12."""
    salt = bytes.fromhex("908DC60A")
    assert password_hash("test12", salt) == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    assert password_hash("x") != password_hash("x")  # a fresh salt each time
    with pytest.raises(ValueError, match="blank"):
        password_hash("")


def test_with_passwords_copies_and_names_unknown_users() -> None:
    document = agent_definitions(["pc-1"])
    hashed = with_passwords(document, {"pc-1": "secret"})
    assert document["users"][0]["password_hash"] == ""
    assert len(hashed["users"][0]["password_hash"]) == 48
    with pytest.raises(ValueError, match="pc-2"):
        with_passwords(document, {"pc-2": "secret"})


def test_escape_keeps_names_literal() -> None:
    assert escape("lockgate.dead-letters") == r"lockgate\.dead-letters"
    assert re.fullmatch(escape("a.b*c(d)"), "a.b*c(d)")
