"""Agent update policies (docs/product.md section 1): settings, assignment to groups, events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

from pydantic import AwareDatetime, Field

from libs.contracts.spec import Contract, command, event

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
ScheduledDay = Literal[
    "every_day", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
]
TIME_OF_DAY = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
"""HH:MM from 00:00 to 23:59."""


class AgentUpdateSchedule(Contract):
    """When mandatory agent (client) updates install."""

    day: ScheduledDay = Field(description="`every_day` or one weekday.")
    time: str = Field(pattern=TIME_OF_DAY, description="Local time HH:MM (00:00-23:59).")


class PolicySettings(Contract):
    """Every setting of an agent update policy; a setting left out takes its recommended value.

    Keys are the ones of docs/product.md section 1, used alike in messages, API and CLI.
    """

    detection_frequency_hours: int = Field(
        default=8, ge=8, le=22, description="How often the agent looks for updates (8-22 h)."
    )
    install_mode: Literal["automatic_scheduled", "prompt_user"] = Field(
        default="automatic_scheduled",
        description="`automatic_scheduled`: install on the schedule; `prompt_user`: ask the "
        "user when updates are ready.",
    )
    scheduled_day: ScheduledDay = Field(
        default="every_day", description="`every_day` or one weekday (`monday` ... `sunday`)."
    )
    scheduled_time: str = Field(
        default="03:00",
        pattern=TIME_OF_DAY,
        description="Install time, computer's local time, HH:MM (00:00-23:59).",
    )
    use_maintenance_window: bool = Field(
        default=True,
        description="Install in Windows automatic maintenance (02:00 local) instead of the "
        "scheduled day and time.",
    )
    allow_immediate_install: bool = Field(
        default=True, description="Install at once updates that need no restart."
    )
    restart_delay_minutes: int = Field(
        default=15, ge=1, le=30, description="Delay before restarting after an install (1-30)."
    )
    missed_install_delay_minutes: int = Field(
        default=5,
        ge=1,
        le=60,
        description="After a restart, wait this long before missed scheduled installs (1-60).",
    )
    user_controls_restart: bool = Field(
        default=True,
        description="The logged-on user may postpone the restart; false: warn, then restart "
        "after 5 minutes.",
    )
    prompt_agent_update_restart: bool = Field(
        default=True, description="Prompt the user to restart for mandatory agent updates."
    )
    agent_update_schedule: AgentUpdateSchedule | None = Field(
        default=None, description="When mandatory agent updates install; null: not configured."
    )
    restart_prompt_interval_minutes: int = Field(
        default=30,
        ge=1,
        le=1440,
        description="Wait between restart prompts when the user postpones (1-1440).",
    )
    deadline_grace_days: int = Field(
        default=0,
        ge=0,
        le=7,
        description="After a deadline passed and forced the install, days before the restart "
        "is forced (0-7); the user is prompted meanwhile and may restart earlier.",
    )
    deadline_spread_hours: int = Field(
        default=0,
        ge=0,
        le=24,
        description="Each computer's deadline moves later by a share of this many hours, "
        "fixed by a hash of its computer id (0-24); never earlier than the approved deadline.",
    )


RECOMMENDED = PolicySettings()
"""The recommended values: also what a computer with no policy gets."""


class Policy(Contract):
    """A named policy and the groups it is assigned to."""

    policy_id: str = Field(description="Stable id (UUID).")
    name: str = Field(description="Unique name.")
    settings: PolicySettings = Field(description="Every setting (unset ones are recommended).")
    groups: list[str] = Field(description="Group ids it is assigned to.")
    created_at: AwareDatetime = Field(description="Creation time.")
    updated_at: AwareDatetime = Field(description="Last change.")


class CreatePolicy(Contract):
    """Create a policy; settings left out take their recommended values."""

    name: str = Field(min_length=1, max_length=100, description="Unique name.")
    settings: PolicySettings = Field(
        default_factory=PolicySettings, description="The settings (partial is fine)."
    )


class EditPolicy(Contract):
    """Change some settings of a policy (others keep their values)."""

    policy: str = Field(description="Policy id or name.")
    settings: dict[str, object] = Field(
        description="Settings to change, by key; each is range-checked."
    )


class PolicyRef(Contract):
    """Name one policy."""

    policy: str = Field(description="Policy id or name.")


class AssignPolicy(Contract):
    """Assign a policy to a group (a group has at most one policy)."""

    policy: str = Field(description="Policy id or name.")
    group: str = Field(description="Group id or name.")


class UnassignPolicy(Contract):
    """Remove the policy of a group; its computers fall back to what else applies."""

    group: str = Field(description="Group id or name.")


class ListPolicies(Contract):
    """Ask for every policy."""


class PolicyList(Contract):
    """Every policy."""

    policies: list[Policy] = Field(description="By name.")
    recommended: PolicySettings = Field(description="What applies where no policy does.")


class PolicyDeleted(Contract):
    """A policy was deleted (and unassigned everywhere)."""

    policy_id: str = Field(description="The deleted policy.")
    name: str = Field(description="Its name.")


class PolicyChanged(Contract):
    """A policy as it is after being created, edited, assigned or unassigned."""

    policy: Policy = Field(description="The policy now.")


VERSION = r"^\d{1,6}\.\d{1,6}\.\d{1,6}$"


class AgentRelease(Contract):
    """A version of the Lockgate agent made available to computers."""

    version: str = Field(description="major.minor.patch, compared numerically.")
    mandatory: bool = Field(
        description="Computers with an older agent must install it, at their policy's "
        "agent_update_schedule."
    )
    notes: str = Field(description="What changed, for operators.")
    published_at: AwareDatetime = Field(description="When it was published.")


class PublishAgentRelease(Contract):
    """Make an agent version available; mandatory ones are scheduled on outdated computers."""

    version: str = Field(
        pattern=VERSION, description="major.minor.patch (digits), newer than every release."
    )
    mandatory: bool = Field(default=True, description="Outdated computers must install it.")
    notes: str = Field(default="", max_length=2000, description="What changed.")


class ListAgentReleases(Contract):
    """Ask for every agent release."""


class AgentReleaseList(Contract):
    """Every agent release, newest first."""

    releases: list[AgentRelease] = Field(description="Newest first.")
    latest_mandatory: str | None = Field(
        description="The version outdated computers are brought to; null: none."
    )


class AgentReleasePublished(Contract):
    """An agent version was published."""

    release: AgentRelease = Field(description="The release.")


# Examples shown in docs/asyncapi.yaml (validated by their models when this module loads).
_AT = datetime(2026, 2, 10, 18, 0, tzinfo=UTC)
_POLICY = Policy(
    policy_id="e7c4a1d2-3b5f-4c6e-9a8d-7f0b1c2d3e4f",
    name="Office hours",
    settings=PolicySettings(
        install_mode="automatic_scheduled",
        scheduled_day="wednesday",
        scheduled_time="21:00",
        use_maintenance_window=False,
        restart_delay_minutes=10,
        agent_update_schedule=AgentUpdateSchedule(day="saturday", time="02:00"),
    ),
    groups=["6b3e2f0a-1c4d-4e5f-8a9b-0c1d2e3f4a5b"],
    created_at=datetime(2026, 1, 20, 9, 15, tzinfo=UTC),
    updated_at=_AT,
)

CREATE_POLICY = command(
    "scheduler", "policy", "create", CreatePolicy, Policy, summary="Create an update policy."
)
EDIT_POLICY = command(
    "scheduler", "policy", "edit", EditPolicy, Policy, summary="Change settings of a policy."
)
DELETE_POLICY = command(
    "scheduler", "policy", "delete", PolicyRef, PolicyDeleted, summary="Delete a policy."
)
ASSIGN_POLICY = command(
    "scheduler", "policy", "assign", AssignPolicy, Policy, summary="Assign a policy to a group."
)
UNASSIGN_POLICY = command(
    "scheduler",
    "policy",
    "unassign",
    UnassignPolicy,
    PolicyList,
    summary="Remove a group's policy.",
)
LIST_POLICIES = command(
    "scheduler", "policy", "list", ListPolicies, PolicyList, summary="Every policy."
)

POLICY_CHANGED = event(
    "scheduler",
    "policy",
    "changed",
    PolicyChanged,
    summary="A policy was created, edited, assigned or unassigned.",
    subject="the policy id",
    example=PolicyChanged(policy=_POLICY),
)
POLICY_DELETED = event(
    "scheduler",
    "policy",
    "deleted",
    PolicyDeleted,
    summary="A policy was deleted.",
    subject="the policy id",
    example=PolicyDeleted(policy_id=_POLICY.policy_id, name=_POLICY.name),
)
PUBLISH_AGENT_RELEASE = command(
    "scheduler",
    "agent-release",
    "publish",
    PublishAgentRelease,
    AgentRelease,
    summary="Publish an agent version; mandatory ones are scheduled on outdated computers.",
)
LIST_AGENT_RELEASES = command(
    "scheduler",
    "agent-release",
    "list",
    ListAgentReleases,
    AgentReleaseList,
    summary="Every agent release.",
)
AGENT_RELEASE_PUBLISHED = event(
    "scheduler",
    "agent-release",
    "published",
    AgentReleasePublished,
    summary="An agent version was published (mandatory ones reach outdated computers).",
    subject="the version",
    example=AgentReleasePublished(
        release=AgentRelease(
            version="1.5.0",
            mandatory=True,
            notes="Reports install results within a minute; fixes the restart prompt on "
            "Windows 11 25H2.",
            published_at=_AT,
        )
    ),
)

COMMANDS = (
    CREATE_POLICY,
    EDIT_POLICY,
    DELETE_POLICY,
    ASSIGN_POLICY,
    UNASSIGN_POLICY,
    LIST_POLICIES,
    PUBLISH_AGENT_RELEASE,
    LIST_AGENT_RELEASES,
)
EVENTS = (POLICY_CHANGED, POLICY_DELETED, AGENT_RELEASE_PUBLISHED)
