"""Message specifications: which model travels under which type, exchange and routing key."""

from __future__ import annotations

import builtins
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from libs.contracts.names import Exchange


class Contract(BaseModel):
    """Base of every message body: immutable, unknown fields refused, text storable (no
    NUL character, no lone surrogate)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:  # noqa: ANN401 - any input, checked then passed on
        """Text PostgreSQL cannot store (NUL) or UTF-8 cannot encode (lone surrogates) is
        refused here, naming the field, rather than failing deep inside a handler."""
        if not _CHECKED.get():
            _refuse_unstorable(data, "")
        return data

    @classmethod
    def model_validate_json(
        cls,
        json_data: str | bytes | bytearray,
        **options: Any,  # noqa: ANN401 - pydantic's keyword options, passed through
    ) -> Self:
        """JSON text can only carry NUL or a lone surrogate as a `\\u` escape: text without
        one is storable as it stands, so the walk over the parsed values is skipped."""
        raw = (
            json_data.encode("utf-8", "surrogatepass")
            if isinstance(json_data, str)
            else bytes(json_data)
        )
        if _SUSPECT_ESCAPE.search(raw):
            return super().model_validate_json(json_data, **options)
        token = _CHECKED.set(True)
        try:
            return super().model_validate_json(json_data, **options)
        finally:
            _CHECKED.reset(token)


_CHECKED: ContextVar[bool] = ContextVar("lockgate_contract_checked", default=False)
"""Set while validating JSON already screened: the walk over parsed values is skipped at
every nesting level (it ran once per level, and dominated validating a stored plan)."""
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\x00|\xed[\xa0-\xbf]")
"""A `\\u0000` or surrogate escape, or a raw NUL or surrogate (a str given with one): then
the full check runs and decides (a surrogate pair is fine)."""


def _refuse_unstorable(value: object, where: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where or 'text'}: NUL characters (\\x00) are not allowed")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    f"{where or 'text'}: not valid Unicode text (a lone surrogate)"
                ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):  # keys are text too (named by repr: it may hold a NUL)
                _refuse_unstorable(key, f"key {key!r}" + (f" of {where}" if where else ""))
            _refuse_unstorable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_unstorable(item, f"{where}[{index}]")


M = TypeVar("M", bound=Contract)
Req = TypeVar("Req", bound=Contract)
Rep = TypeVar("Rep", bound=Contract)

_WORD = re.compile(r"^[a-z][a-z0-9-]*$")
_TYPE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+\.v[1-9][0-9]*$")
_SERVICE_TYPE = re.compile(r"^([a-z][a-z0-9-]*)\.[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*\.v[1-9][0-9]*$")
SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def message_type(service: str, aggregate: str, verb: str, major: int = 1) -> str:
    """`<service>.<aggregate>.<verb>.v<major>`: the one way a service's message type is
    named (events: `catalog.update.published.v1`; commands: `approval.group.create.v1`)."""
    for label, word in (("service", service), ("aggregate", aggregate), ("verb", verb)):
        if not _WORD.fullmatch(word):
            raise ValueError(
                f"message type {label} {word!r} is not allowed: "
                "use one lower-case word (letters, digits and '-', starting with a letter)"
            )
    if major < 1:
        raise ValueError(f"message type major version {major} is not allowed: use 1 or more")
    return f"{service}.{aggregate}.{verb}.v{major}"


def _check_type(message_type: str) -> None:
    if not _TYPE.fullmatch(message_type):
        raise ValueError(
            f"message type {message_type!r} is not allowed: "
            "use '<service>.<name>[.<name>...].v<major>' in lower case"
        )


def _check_service_type(message_type: str, service: str) -> None:
    """A service's events and commands: `<service>.<aggregate>.<verb>.v<major>`."""
    found = _SERVICE_TYPE.fullmatch(message_type)
    if found is None or found.group(1) != service:
        raise ValueError(
            f"message type {message_type!r} is not allowed: "
            f"use '{service}.<aggregate>.<verb>.v<major>' (see message_type())"
        )


def major_version(message_type: str) -> int:
    """The major version carried at the end of a message type (`...v2` -> 2)."""
    return int(message_type.rsplit(".v", 1)[1])


@dataclass(frozen=True, kw_only=True)
class EventSpec(Generic[M]):
    """A domain event on `lockgate.events`; its routing key is its type."""

    type: str
    model: builtins.type[M]
    producer: str
    summary: str
    subject: str = ""
    """What the CloudEvents `subject` holds for this event (empty: no subject)."""
    example: M | None = None
    """A realistic message, shown in the AsyncAPI document (every event has one)."""
    formerly: tuple[str, ...] = ()
    """Earlier names of this type, still accepted from the queues for one major version so
    that messages published before a rename are handled, not dead-lettered."""

    exchange = Exchange.EVENTS

    def __post_init__(self) -> None:
        self._check_name()
        for old in self.formerly:
            _check_type(old)
        if self.example is not None and not isinstance(self.example, self.model):
            raise ValueError(f"{self.type}: the example is not a {self.model.__name__}")

    def _check_name(self) -> None:
        _check_service_type(self.type, self.producer)

    @property
    def accepted_types(self) -> tuple[str, ...]:
        """Its type, then the earlier names consumers still accept."""
        return (self.type, *self.formerly)

    def routing_key(self, subject: str | None = None) -> str:  # noqa: ARG002 - same signature as AgentEventSpec
        """Routing key of one message of this type."""
        return self.type

    @property
    def binding_key(self) -> str:
        """Binding key that selects every message of this type."""
        return self.type

    @property
    def binding_keys(self) -> tuple[str, ...]:
        """Binding keys of its type and of its earlier names."""
        return (self.binding_key, *self.formerly)


@dataclass(frozen=True, kw_only=True)
class AgentEventSpec(EventSpec[M]):
    """An agent's message on `lockgate.agents`: routing key `agent.<computer_id>.<rest>`."""

    computer_id_field: str = "computer_id"
    """The body field naming the computer the message speaks for. The pipeline refuses a
    message whose field differs from the computer id of its routing key (an agent may only
    speak for itself), before any handler runs."""

    exchange = Exchange.AGENTS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.computer_id_field not in self.model.model_fields:
            raise ValueError(
                f"{self.type}: {self.model.__name__} has no field {self.computer_id_field!r} "
                "to hold the computer id (set computer_id_field)"
            )

    def computer_id_of(self, body: M) -> str:
        """The computer id the body speaks for (the `computer_id_field`)."""
        return str(getattr(body, self.computer_id_field))

    def _check_name(self) -> None:
        """`agent.<kind>.v<major>`: the computer id goes into the routing key, not the type."""
        _check_type(self.type)
        if not self.type.startswith("agent.") or self.type.count(".") != 2:
            raise ValueError(f"agent message type {self.type!r} must be 'agent.<kind>.v<major>'")

    def routing_key(self, subject: str | None = None) -> str:
        """`agent.<computer_id>.<rest of type>`; the computer id is the message's subject."""
        if subject is None or not SUBJECT.fullmatch(subject):
            raise ValueError(
                f"subject {subject!r} is not a computer id: "
                "use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
            )
        return f"agent.{subject}.{self.type.removeprefix('agent.')}"

    @property
    def binding_key(self) -> str:
        return f"agent.*.{self.type.removeprefix('agent.')}"


@dataclass(frozen=True, kw_only=True)
class InstructionSpec(EventSpec[M]):
    """An instruction to one computer on `lockgate.agents`: `computer.<computer_id>.<rest>`.

    Each agent's queue binds `computer.<its id>.#`; the subject is the computer id.
    """

    exchange = Exchange.AGENTS

    def _check_name(self) -> None:
        """`computer.<kind>.v<major>`: the computer id goes into the routing key."""
        _check_type(self.type)
        if not self.type.startswith("computer.") or self.type.count(".") != 2:
            raise ValueError(f"instruction type {self.type!r} must be 'computer.<kind>.v<major>'")

    def routing_key(self, subject: str | None = None) -> str:
        """`computer.<computer_id>.<rest of type>`."""
        if subject is None or not SUBJECT.fullmatch(subject):
            raise ValueError(f"subject {subject!r} is not a computer id")
        return f"computer.{subject}.{self.type.removeprefix('computer.')}"

    @property
    def binding_key(self) -> str:
        return f"computer.*.{self.type.removeprefix('computer.')}"


def event(
    service: str,
    aggregate: str,
    verb: str,
    model: builtins.type[M],
    *,
    summary: str,
    example: M,
    subject: str = "",
    major: int = 1,
    formerly: tuple[str, ...] = (),
) -> EventSpec[M]:
    """A service's domain event on `lockgate.events`, named by message_type()."""
    return EventSpec(
        type=message_type(service, aggregate, verb, major),
        model=model,
        producer=service,
        summary=summary,
        subject=subject,
        example=example,
        formerly=formerly,
    )


def command(
    service: str,
    aggregate: str,
    verb: str,
    request: builtins.type[Req],
    reply: builtins.type[Rep],
    *,
    summary: str,
    major: int = 1,
    formerly: tuple[str, ...] = (),
) -> CommandSpec[Req, Rep]:
    """A command or query `service` answers on `lockgate.commands`, named by message_type()."""
    return CommandSpec(
        type=message_type(service, aggregate, verb, major),
        request=request,
        reply=reply,
        handler=service,
        summary=summary,
        formerly=formerly,
    )


@dataclass(frozen=True, kw_only=True)
class CommandSpec(Generic[Req, Rep]):
    """A command or query on `lockgate.commands`, answered over RPC with `reply`."""

    type: str
    request: builtins.type[Req]
    reply: builtins.type[Rep]
    handler: str
    """The service that answers it."""
    summary: str
    formerly: tuple[str, ...] = ()
    """Earlier names still answered for one major version (callers not yet moved)."""

    exchange = Exchange.COMMANDS

    def __post_init__(self) -> None:
        _check_service_type(self.type, self.handler)
        for old in self.formerly:
            _check_type(old)

    @property
    def routing_key(self) -> str:
        return self.type

    @property
    def accepted_types(self) -> tuple[str, ...]:
        """Its type, then the earlier names still answered."""
        return (self.type, *self.formerly)
