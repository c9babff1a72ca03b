"""Every message type Lockgate knows, in one table, looked up by CloudEvents type."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from libs.contracts import (
    agents,
    approval,
    catalog,
    policies,
    reporting,
    scheduler,
    system,
    uploads,
)
from libs.contracts.spec import CommandSpec, EventSpec

AnyEventSpec = EventSpec[Any]
AnyCommandSpec = CommandSpec[Any, Any]


class UnknownMessageType(LookupError):
    """A message carries a type no contract declares."""


class Registry:
    """Message specs by type; refuses two specs with one type."""

    def __init__(self, events: Iterable[AnyEventSpec], commands: Iterable[AnyCommandSpec]) -> None:
        self.events: dict[str, AnyEventSpec] = {}
        self.commands: dict[str, AnyCommandSpec] = {}
        for event in events:
            self._add(self.events, event.type, event)
        for command in commands:
            self._add(self.commands, command.type, command)

    def _add(self, table: dict[str, Any], message_type: str, spec: object) -> None:
        if message_type in self.events or message_type in self.commands:
            raise ValueError(f"message type {message_type!r} is declared twice")
        table[message_type] = spec

    def event(self, message_type: str) -> AnyEventSpec:
        try:
            return self.events[message_type]
        except KeyError:
            raise UnknownMessageType(
                f"type {message_type!r} is not a known event; known: {sorted(self.events)}"
            ) from None

    def command(self, message_type: str) -> AnyCommandSpec:
        try:
            return self.commands[message_type]
        except KeyError:
            raise UnknownMessageType(
                f"type {message_type!r} is not a known command; known: {sorted(self.commands)}"
            ) from None


REGISTRY = Registry(
    events=[
        *system.HEARTBEAT.values(),
        scheduler.AGENT_CHECKIN,
        scheduler.COMPUTER_REGISTERED,
        catalog.UPDATE_PUBLISHED,
        catalog.UPDATE_REVISED,
        catalog.UPDATE_SUPERSEDED,
        catalog.UPDATE_EXPIRED,
        catalog.UPDATE_DELETED,
        catalog.SETTINGS_CHANGED,
        *approval.EVENTS,
        *agents.EVENTS,
        *policies.EVENTS,
        reporting.COMPLIANCE_CHANGED,
    ],
    commands=[
        *system.PING.values(),
        reporting.LIST_SERVICE_INSTANCES,
        catalog.IMPORT_DOCUMENT,
        catalog.GET_UPDATE,
        catalog.LIST_UPDATES,
        catalog.EXPIRE_UPDATE,
        catalog.GET_SETTINGS,
        catalog.CHANGE_SETTINGS,
        uploads.START_UPLOAD,
        uploads.SEND_CHUNK,
        uploads.DESCRIBE,
        uploads.SET_REQUIREMENTS,
        uploads.SET_DETECTION,
        uploads.SET_PREREQUISITES,
        uploads.SET_COMMAND_LINE,
        uploads.SET_RETURN_CODES,
        uploads.GET_UPLOAD,
        uploads.COMMIT_UPLOAD,
        uploads.EDIT_UPDATE,
        uploads.DELETE_UPDATE,
        *approval.COMMANDS,
        agents.GET_PLAN,
        *policies.COMMANDS,
        *reporting.COMMANDS,
    ],
)
