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
    rollouts,
    scheduler,
    system,
    uploads,
    windows,
)
from libs.contracts.spec import CommandSpec, EventSpec

AnyEventSpec = EventSpec[Any]
AnyCommandSpec = CommandSpec[Any, Any]


class UnknownMessageType(LookupError):
    """A message carries a type no contract declares."""


class Registry:
    """Message specs by type; a spec is also found by the names it had before a rename
    (`formerly`), so a message still carrying an old name decodes with the new spec.

    Refuses two specs answering to one name, whether a type or an earlier name.
    """

    def __init__(self, events: Iterable[AnyEventSpec], commands: Iterable[AnyCommandSpec]) -> None:
        self.events: dict[str, AnyEventSpec] = {}
        """Event specs by their current type (each spec once)."""
        self.commands: dict[str, AnyCommandSpec] = {}
        """Command specs by their current type (each spec once)."""
        self._known: set[str] = set()
        self._former_events: dict[str, AnyEventSpec] = {}
        self._former_commands: dict[str, AnyCommandSpec] = {}
        for event in events:
            self._claim(event.accepted_types)
            self.events[event.type] = event
            self._former_events.update(dict.fromkeys(event.formerly, event))
        for command in commands:
            self._claim(command.accepted_types)
            self.commands[command.type] = command
            self._former_commands.update(dict.fromkeys(command.formerly, command))

    def _claim(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name in self._known:
                raise ValueError(f"message type {name!r} is declared twice")
            self._known.add(name)

    def event(self, message_type: str) -> AnyEventSpec:
        """The event spec of `message_type`, its current type or an earlier name."""
        found = self.events.get(message_type) or self._former_events.get(message_type)
        if found is None:
            raise UnknownMessageType(
                f"type {message_type!r} is not a known event; known: {sorted(self.events)}"
            )
        return found

    def command(self, message_type: str) -> AnyCommandSpec:
        """The command spec of `message_type`, its current type or an earlier name."""
        found = self.commands.get(message_type) or self._former_commands.get(message_type)
        if found is None:
            raise UnknownMessageType(
                f"type {message_type!r} is not a known command; known: {sorted(self.commands)}"
            )
        return found


REGISTRY = Registry(
    events=[
        *system.HEARTBEAT.values(),
        scheduler.AGENT_CHECKIN,
        scheduler.COMPUTER_REGISTERED,
        scheduler.COMPUTER_POLICY_CHANGED,
        catalog.UPDATE_PUBLISHED,
        catalog.UPDATE_REVISED,
        catalog.UPDATE_SUPERSEDED,
        catalog.UPDATE_EXPIRED,
        catalog.UPDATE_DELETED,
        catalog.UPDATE_OFFERED,
        catalog.UPDATE_WITHDRAWN,
        catalog.SETTINGS_CHANGED,
        *approval.EVENTS,
        *rollouts.EVENTS,
        *agents.EVENTS,
        *policies.EVENTS,
        *windows.EVENTS,
        reporting.COMPLIANCE_CHANGED,
    ],
    commands=[
        *system.PING.values(),
        reporting.LIST_SERVICE_INSTANCES,
        catalog.IMPORT_DOCUMENT,
        catalog.LIST_IMPORTS,
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
        uploads.LIST_UPLOADS,
        uploads.COMMIT_UPLOAD,
        uploads.CANCEL_UPLOAD,
        uploads.EDIT_UPDATE,
        uploads.DELETE_UPDATE,
        *approval.COMMANDS,
        *rollouts.COMMANDS,
        agents.GET_PLAN,
        *policies.COMMANDS,
        *windows.COMMANDS,
        *reporting.COMMANDS,
    ],
)
