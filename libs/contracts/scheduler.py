"""Agent check-ins and the scheduler's computer events."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Literal
from zoneinfo import available_timezones

from pydantic import AwareDatetime, Field, field_validator

from libs.contracts.spec import SUBJECT, AgentEventSpec, Contract, event

COMPUTER_ID_PATTERN = SUBJECT.pattern


@cache
def iana_timezones() -> frozenset[str]:
    """IANA zone names, without the host-relative `localtime` and the posix/right copies."""
    return frozenset(
        name
        for name in available_timezones()
        if name != "localtime" and not name.startswith(("posix/", "right/"))
    )


class AgentCheckin(Contract):
    """An agent says it is alive; the first check-in of a computer registers it."""

    computer_id: str = Field(
        pattern=COMPUTER_ID_PATTERN,
        description="Stable id of the computer; also the routing key segment and the subject.",
    )
    hostname: str = Field(min_length=1, max_length=255, description="Computer's host name.")
    os_version: str = Field(
        default="", max_length=100, description="Windows version and build, e.g. `10.0.26100`."
    )
    timezone: str = Field(
        default="UTC", description="IANA time zone of the computer, e.g. `Europe/Paris`."
    )
    agent_version: str = Field(default="", max_length=50, description="Agent software version.")
    checked_in_at: AwareDatetime = Field(description="Agent's clock at check-in.")
    hardware_id: str = Field(default="", max_length=200, description="Hardware id (SMBIOS UUID).")
    architecture: Literal["x86", "x64", "arm64"] = Field(
        default="x64", description="Processor architecture."
    )
    operating_system: str = Field(
        default="",
        max_length=100,
        description="Operating system product, as requirements name it, e.g. `Windows 11`; "
        "empty: unknown (any operating-system requirement then counts as met).",
    )
    free_disk_bytes: int | None = Field(
        default=None, ge=0, description="Free space on the system drive; null: unknown."
    )
    memory_bytes: int | None = Field(
        default=None, ge=0, description="Physical memory; null: unknown."
    )
    user_logged_on: bool = Field(
        default=False, description="A user is logged on (restarts then follow the policy)."
    )
    reason: Literal["start", "periodic", "restart"] = Field(
        default="periodic",
        description="Why it checks in: agent start, the detection frequency, or after a restart.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if value not in iana_timezones():
            raise ValueError(
                f"timezone {value!r} is not an IANA time zone (e.g. 'Europe/Paris'); "
                f"{len(iana_timezones())} names are allowed"
            )
        return value


class ComputerRegistered(Contract):
    """A computer checked in for the first time; approval puts it in "All computers"."""

    computer_id: str = Field(pattern=COMPUTER_ID_PATTERN, description="Id of the computer.")
    hostname: str = Field(description="Host name at registration.")
    timezone: str = Field(description="IANA time zone of the computer.")
    registered_at: AwareDatetime = Field(description="When the scheduler registered it.")


class ComputerPolicyChanged(Contract):
    """The policy in force for a computer changed (or was first decided at its registration):
    assigned to one of its groups or an ancestor, unassigned, or deleted; or its deadline
    spread changed (docs/product.md section 1)."""

    computer_id: str = Field(pattern=COMPUTER_ID_PATTERN, description="Id of the computer.")
    policy_id: str | None = Field(
        description="Id of the policy in force; null: no policy (the recommended values apply)."
    )
    policy_name: str = Field(
        description="Name of the policy in force; `no policy` when none of its groups (nor "
        "their ancestors) carries one."
    )
    changed_at: AwareDatetime = Field(
        description="When the scheduler found the change (the newest one wins)."
    )
    deadline_spread_hours: int = Field(
        default=0,
        ge=0,
        le=24,
        description="The policy's `deadline_spread_hours`: the computer's own deadline is an "
        "approved one moved later by its share of this spread (libs/domain/deadline_spread.py), "
        "and it is past its deadline only from then. Announced again when it changes; absent "
        "from events of earlier versions (read as 0).",
    )


AGENT_CHECKIN: AgentEventSpec[AgentCheckin] = AgentEventSpec(
    type="agent.checkin.v1",
    model=AgentCheckin,
    producer="agent",
    summary="An agent checks in; routing key agent.<computer_id>.checkin.v1.",
    subject="the computer id",
    example=AgentCheckin(
        computer_id="pc-0042",
        hostname="reception-01",
        os_version="10.0.26200",
        timezone="Europe/Paris",
        agent_version="1.4.2",
        checked_in_at=datetime(2026, 2, 11, 7, 42, 5, tzinfo=UTC),
        hardware_id="4C4C4544-0042-3510-8052-B4C04F4D4E31",
        architecture="x64",
        operating_system="Windows 11",
        free_disk_bytes=48_318_382_080,
        memory_bytes=17_179_869_184,
        user_logged_on=True,
        reason="start",
    ),
)

COMPUTER_REGISTERED = event(
    "scheduler",
    "computer",
    "registered",
    ComputerRegistered,
    summary="A computer checked in for the first time.",
    subject="the computer id",
    example=ComputerRegistered(
        computer_id="pc-0042",
        hostname="reception-01",
        timezone="Europe/Paris",
        registered_at=datetime(2026, 2, 11, 7, 42, 6, tzinfo=UTC),
    ),
)

COMPUTER_POLICY_CHANGED = event(
    "scheduler",
    "computer",
    "policy-changed",
    ComputerPolicyChanged,
    summary="The policy in force for a computer changed (or its deadline spread did), or was "
    "decided at its registration.",
    subject="the computer id",
    example=ComputerPolicyChanged(
        computer_id="pc-0042",
        policy_id="7f3c2a9e-51d4-4c1b-9a3e-2d8b6f0c4e11",
        policy_name="Workstations",
        changed_at=datetime(2026, 2, 11, 7, 42, 6, tzinfo=UTC),
        deadline_spread_hours=8,
    ),
)
