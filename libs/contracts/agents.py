"""The agent protocol on `lockgate.agents`: what agents report and what they are told.

Agents publish under `agent.<computer_id>.<kind>.v1` (check-in is in scheduler.py) and each
agent's queue binds `computer.<its id>.#` to receive its plan and instructions. Instructions
are hints: an agent that missed them gets everything due in the plan at its next check-in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, Field

from libs.contracts.approval import ActionName, Pause
from libs.contracts.catalog import DetectionRule, InstallerKind, RestartName, ReturnCode
from libs.contracts.policies import AgentUpdateSchedule, PolicySettings
from libs.contracts.scheduler import COMPUTER_ID_PATTERN
from libs.contracts.spec import AgentEventSpec, Contract, InstructionSpec, command
from libs.contracts.windows import MaintenanceWindow

ComputerId = Field(pattern=COMPUTER_ID_PATTERN, description="The computer.")
DetectionState = Literal["installed", "needed", "not_applicable"]
UpdateState = Literal[
    "installed", "needed", "not_applicable", "failed", "installed_pending_restart"
]
"""A stored state of one update on one computer: what a detection saw, or what an install
result left (libs/domain/agent_reports.py reads reports into these)."""


class DetectionResult(Contract):
    """What the agent found for one update."""

    update_id: str = Field(description="The update.")
    state: DetectionState = Field(description="`installed`, `needed` or `not_applicable`.")


class InstallResult(Contract):
    """How one install (or uninstall) ended."""

    update_id: str = Field(description="The update.")
    operation: Literal["install", "uninstall"] = Field(default="install", description="What ran.")
    return_code: int = Field(
        ge=-(2**31),
        le=2**32 - 1,
        description="Installer exit code (32-bit, signed or unsigned), read through the "
        "update's map.",
    )
    started_at: AwareDatetime = Field(description="When it started.")
    finished_at: AwareDatetime = Field(description="When it ended.")


class AgentStatus(Contract):
    """Detection and install results of one computer."""

    computer_id: str = ComputerId
    reported_at: AwareDatetime = Field(description="Agent's clock when reporting.")
    detections: list[DetectionResult] = Field(
        default_factory=list, max_length=5000, description="Per update: installed, needed..."
    )
    installs: list[InstallResult] = Field(
        default_factory=list, max_length=1000, description="Installs that ended since last time."
    )
    user_logged_on: bool = Field(default=False, description="A user is logged on now.")


class AgentRestart(Contract):
    """What happened with a restart the scheduler asked for."""

    computer_id: str = ComputerId
    event: Literal["prompted", "postponed", "restarted"] = Field(
        description="`prompted` (the user saw it), `postponed` (the user chose later), "
        "`restarted` (the computer restarted)."
    )
    at: AwareDatetime = Field(description="Agent's clock.")
    user_logged_on: bool = Field(default=False, description="A user is logged on now.")


class ContentFile(Contract):
    """One file of a third-party update's content, and where this computer downloads it."""

    path: str = Field(description="Path relative to the installer's folder; the installer first.")
    size: int = Field(ge=0, description="Size in bytes.")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file, lower-case hex: verify it."
    )
    url: str = Field(
        description="Signed, expiring URL for this computer only (HTTP GET; `Range` requests "
        "resume an interrupted download). A refusal is a problem-details JSON body naming why: "
        "`expired`, `not_for_this_computer` or `unknown`."
    )
    expires_at: AwareDatetime = Field(
        description="The URL stops working then; the next plan carries a fresh one."
    )


class Requirements(Contract):
    """What a computer must have for the update to apply (checked against its check-in)."""

    architecture: Literal["x86", "x64", "both"] = Field(
        description="Processor architecture: `x86` (32-bit), `x64` (64-bit) or `both`."
    )
    operating_systems: list[str] = Field(
        description="Operating systems it installs on (names as agents report them, e.g. "
        "`Windows 11`); empty: any."
    )
    min_free_disk_bytes: int | None = Field(
        default=None, ge=0, description="Free disk space needed to install; null: none."
    )
    min_memory_bytes: int | None = Field(
        default=None, ge=0, description="Physical memory needed; null: none."
    )


class Prerequisites(Contract):
    """What must already be on the computer before the update installs."""

    package: str | None = Field(
        description="Update id of another managed package that must be installed first."
    )
    rules: list[DetectionRule] = Field(
        description="Rules that must all hold (evaluated by the agent, like detection rules)."
    )


class Installation(Contract):
    """How to install a third-party update: everything an agent needs besides the plan."""

    kind: InstallerKind = Field(description="`msi`, `msp` or `exe`.")
    files: list[ContentFile] = Field(description="The content, installer first.")
    detection_rules: list[DetectionRule] = Field(
        description="How to tell it is already installed (reported as detections); empty: "
        "install exactly once (an MSI or MSP detects itself by its product code)."
    )
    prerequisites: Prerequisites = Field(description="What must be there first.")
    requirements: Requirements = Field(description="What the computer must have.")


class PlanItem(Contract):
    """One approved update in a computer's plan."""

    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="KB number, if any.")
    title: str = Field(description="Title.")
    action: ActionName = Field(description="What to do (resolved across the computer's groups).")
    deadline: AwareDatetime | None = Field(description="Install by then; null: no deadline.")
    state: UpdateState | Literal["unknown"] = Field(
        description="What the agent's reports last left for it (`unknown` before any): "
        "`installed`, `installed_pending_restart`, `needed` (also after a successful "
        "uninstall), `failed` (the last install or uninstall failed) or `not_applicable`."
    )
    install_at: AwareDatetime | None = Field(
        description="When the scheduler will have it installed (window, deadline or at once); "
        "null when nothing is to be done."
    )
    restart: RestartName = Field(description="Restart behaviour of its installation.")
    command_line: str | None = Field(description="Installer arguments (third-party updates).")
    return_codes: list[ReturnCode] = Field(description="How to read the installer's exit code.")
    optional: bool = Field(
        default=False,
        description="An available install: nothing installs it unless the user asks "
        "(`agent.<computer_id>.install-request.v1`).",
    )
    installation: Installation | None = Field(
        default=None,
        description="Third-party updates: content to download, detection rules, prerequisites "
        "and requirements; null for Microsoft updates (Windows Update installs them by KB).",
    )
    paused: Pause | None = Field(
        default=None,
        description="Set while its approval is paused (who, why, when, where): the agent "
        "starts no install of it and no instruction comes for it (`install_at` is null) "
        "until it is resumed.",
    )


class AgentUpdatePlan(Contract):
    """A mandatory agent (client) update this computer has not installed yet."""

    version: str = Field(description="The agent version to install.")
    install_at: AwareDatetime = Field(
        description="When: the next occurrence of the policy's agent_update_schedule in the "
        "computer's time zone, or at once when no schedule is configured."
    )
    prompt_restart: bool = Field(
        description="Prompt the user to restart afterwards (prompt_agent_update_restart)."
    )


class ComputerPlan(Contract):
    """Everything an agent needs: its policy and what to do with each approved update."""

    computer_id: str = ComputerId
    policy_id: str | None = Field(description="The policy in force; null: no policy.")
    policy_name: str = Field(description="Its name, or `no policy` (recommended values).")
    policy_conflict: str | None = Field(
        description="Set when the computer's groups carry different policies."
    )
    settings: PolicySettings = Field(description="Settings in force.")
    timezone: str = Field(description="The computer's IANA time zone (windows are local).")
    next_window: AwareDatetime | None = Field(description="Next install window (UTC).")
    items: list[PlanItem] = Field(description="Approved updates, by update id.")
    agent_update: AgentUpdatePlan | None = Field(
        default=None,
        description="A mandatory agent update to install; null when the agent is up to date "
        "(or reports no version).",
    )
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        description="The maintenance windows of the computer's groups and of their ancestors, "
        "in its local time: installs and restarts not forced by a passed deadline happen only "
        "inside one; empty: no window restricts them.",
    )
    computed_at: AwareDatetime = Field(description="When the scheduler computed it.")


class InstallItem(Contract):
    """One update to install or uninstall now."""

    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="KB number, if any.")
    action: Literal["required_install", "uninstall"] = Field(description="Install or remove.")
    command_line: str | None = Field(description="Installer arguments (third-party updates).")
    forced: bool = Field(description="Its deadline passed: install without asking.")
    restart: RestartName = Field(
        default="may_request", description="Restart behaviour of its installation."
    )
    return_codes: list[ReturnCode] = Field(
        default_factory=list,
        description="How to read the installer's exit code; empty: 0 = success, 3010 = "
        "success with a restart, anything else fails.",
    )
    installation: Installation | None = Field(
        default=None, description="Third-party updates: what to download and check (see plan)."
    )


class InstallInstruction(Contract):
    """Install (or remove) these updates now."""

    computer_id: str = ComputerId
    reason: Literal["window", "deadline", "immediate", "catch_up", "requested"] = Field(
        description="`window` (scheduled), `deadline` (forced), `immediate` (needs no "
        "restart), `catch_up` (missed while offline, after the missed-install delay), "
        "`requested` (the user asked for an available install)."
    )
    updates: list[InstallItem] = Field(description="What to install or remove.")
    prompt_user: bool = Field(description="Ask the user first (install mode prompt_user).")
    issued_at: AwareDatetime = Field(description="When the timer fired.")


class RestartPrompt(Contract):
    """Ask the logged-on user to restart."""

    computer_id: str = ComputerId
    may_postpone: bool = Field(description="The user may postpone (policy).")
    restart_at: AwareDatetime | None = Field(
        description="When Windows restarts anyway (user may not postpone); null otherwise."
    )
    prompt: int = Field(ge=1, description="1 for the first prompt, then 2, 3, ...")
    issued_at: AwareDatetime = Field(description="When the timer fired.")


class RestartInstruction(Contract):
    """Restart now."""

    computer_id: str = ComputerId
    reason: Literal["nobody_logged_on", "warning_elapsed"] = Field(
        description="Why without asking: nobody is logged on, or the 5-minute warning ended."
    )
    issued_at: AwareDatetime = Field(description="When the timer fired.")


class AgentUpdateInstruction(Contract):
    """Install this mandatory agent version now, then check in with it."""

    computer_id: str = ComputerId
    version: str = Field(description="The agent version to install.")
    prompt_restart: bool = Field(
        description="Prompt the user to restart afterwards (policy prompt_agent_update_restart)."
    )
    issued_at: AwareDatetime = Field(description="When the timer fired.")


class InstallRequest(Contract):
    """The user on the computer asked to install an available update now."""

    computer_id: str = ComputerId
    update_id: str = Field(description="An update the plan lists as optional.")
    requested_at: AwareDatetime = Field(description="Agent's clock when the user asked.")


class Rejected(Contract):
    """A message this agent sent was refused for what it says (it is also dead-lettered)."""

    computer_id: str = ComputerId
    message_id: str = Field(description="`ce-id` of the refused message.")
    message_type: str = Field(description="Its `ce-type` (as sent, possibly unknown).")
    reason_class: str = Field(
        description="`InvalidMessage` (malformed), `InvalidInput`, `NotFound`, `Conflict` or "
        "`Refused` (a rule of the service)."
    )
    reason: str = Field(description="What is wrong: the field, the value and what is allowed.")
    field: str | None = Field(description="The field at fault, when one is.")
    rejected_at: AwareDatetime = Field(description="When it was refused.")


class GetPlan(Contract):
    """Ask for a computer's plan as the scheduler has it now."""

    computer: str = Field(description="Computer id.")


# Examples shown in docs/asyncapi.yaml (validated by their models when this module loads).
# One computer's evening: its plan, the window's install, a postponed restart prompt.
_COMPUTER = "pc-0042"
_UPDATE_ID = "0496b64b-4a42-52f3-a887-fcddb4f2f23d"
_WINDOW = datetime(2026, 2, 11, 20, 0, tzinfo=UTC)
"""Wednesday 21:00 in Europe/Paris, the policy's scheduled install time."""
_TOOL_ID = "5a8c2e4f-1b3d-4f6a-8c9e-0d2f4a6b8c1e"
"""A third-party package (7-Zip) approved as an available install."""
_TOOL_SHA256 = "9b0e5f4c3a2d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
_TOOL = PlanItem(
    update_id=_TOOL_ID,
    kb=None,
    title="7-Zip 24.09 (x64)",
    action="available_install",
    deadline=None,
    state="needed",
    install_at=None,
    restart="never",
    command_line="/qn",
    return_codes=[
        ReturnCode(code=0, outcome="success"),
        ReturnCode(code=3010, outcome="success_restart_required"),
        ReturnCode(code=1641, outcome="success_restart_required"),
    ],
    optional=True,
    installation=Installation(
        kind="msi",
        files=[
            ContentFile(
                path="7z2409-x64.msi",
                size=1_961_984,
                sha256=_TOOL_SHA256,
                url=f"https://lockgate.example.org/content/{_TOOL_SHA256}/7z2409-x64.msi"
                "?computer=pc-0042&expires=1771459200&signature=Hq3v0JzX8y2Qm7bT5cR1wL9sKp4dFe6gA0nUiYoEtZc",
                expires_at=datetime(2026, 2, 19, 0, 0, tzinfo=UTC),
            )
        ],
        detection_rules=[],
        prerequisites=Prerequisites(package=None, rules=[]),
        requirements=Requirements(
            architecture="x64",
            operating_systems=["Windows 11"],
            min_free_disk_bytes=50_000_000,
            min_memory_bytes=None,
        ),
    ),
)
_AGENT_UPDATE_AT = datetime(2026, 2, 14, 1, 0, tzinfo=UTC)
"""Saturday 02:00 in Europe/Paris, the policy's agent_update_schedule."""

AGENT_STATUS: AgentEventSpec[AgentStatus] = AgentEventSpec(
    type="agent.status.v1",
    model=AgentStatus,
    producer="agent",
    summary="Detection and install results; routing key agent.<computer_id>.status.v1.",
    subject="the computer id",
    example=AgentStatus(
        computer_id=_COMPUTER,
        reported_at=_WINDOW + timedelta(minutes=6, seconds=15),
        detections=[
            DetectionResult(update_id="c2a7e4f1-5b3d-4e8a-9f6c-1d2e3f4a5b6c", state="needed")
        ],
        installs=[
            InstallResult(
                update_id=_UPDATE_ID,
                operation="install",
                return_code=3010,
                started_at=_WINDOW + timedelta(seconds=30),
                finished_at=_WINDOW + timedelta(minutes=6, seconds=12),
            )
        ],
        user_logged_on=True,
    ),
)
AGENT_RESTART: AgentEventSpec[AgentRestart] = AgentEventSpec(
    type="agent.restart.v1",
    model=AgentRestart,
    producer="agent",
    summary="A restart was prompted, postponed or done; agent.<computer_id>.restart.v1.",
    subject="the computer id",
    example=AgentRestart(
        computer_id=_COMPUTER,
        event="postponed",
        at=_WINDOW + timedelta(minutes=16, seconds=40),
        user_logged_on=True,
    ),
)
PLAN: InstructionSpec[ComputerPlan] = InstructionSpec(
    type="computer.plan.v1",
    model=ComputerPlan,
    producer="scheduler",
    summary="A computer's plan: sent after each check-in and whenever it changes.",
    subject="the computer id",
    example=ComputerPlan(
        computer_id=_COMPUTER,
        policy_id="e7c4a1d2-3b5f-4c6e-9a8d-7f0b1c2d3e4f",
        policy_name="Office hours",
        policy_conflict=None,
        settings=PolicySettings(
            install_mode="automatic_scheduled",
            scheduled_day="wednesday",
            scheduled_time="21:00",
            use_maintenance_window=False,
            restart_delay_minutes=10,
            agent_update_schedule=AgentUpdateSchedule(day="saturday", time="02:00"),
        ),
        timezone="Europe/Paris",
        next_window=_WINDOW,
        items=[
            PlanItem(
                update_id=_UPDATE_ID,
                kb="5073455",
                title="2026-02 Security Update for Windows (KB5073455)",
                action="required_install",
                deadline=datetime(2026, 2, 17, 18, 0, tzinfo=UTC),
                state="needed",
                install_at=_WINDOW,
                restart="always",
                command_line=None,
                return_codes=[
                    ReturnCode(code=0, outcome="success"),
                    ReturnCode(code=3010, outcome="success_restart_required"),
                ],
            ),
            _TOOL,
        ],
        agent_update=AgentUpdatePlan(
            version="1.5.0", install_at=_AGENT_UPDATE_AT, prompt_restart=True
        ),
        computed_at=datetime(2026, 2, 11, 7, 42, 7, tzinfo=UTC),
    ),
)
INSTALL: InstructionSpec[InstallInstruction] = InstructionSpec(
    type="computer.install.v1",
    model=InstallInstruction,
    producer="scheduler",
    summary="Install now: a window, a deadline, an immediate install or a catch-up fired.",
    subject="the computer id",
    example=InstallInstruction(
        computer_id=_COMPUTER,
        reason="window",
        updates=[
            InstallItem(
                update_id=_UPDATE_ID,
                kb="5073455",
                action="required_install",
                command_line=None,
                forced=False,
            )
        ],
        prompt_user=False,
        issued_at=_WINDOW,
    ),
)
RESTART_PROMPT: InstructionSpec[RestartPrompt] = InstructionSpec(
    type="computer.restart-prompt.v1",
    model=RestartPrompt,
    producer="scheduler",
    summary="Ask the user to restart (or warn that Windows restarts in 5 minutes).",
    subject="the computer id",
    example=RestartPrompt(
        computer_id=_COMPUTER,
        may_postpone=True,
        restart_at=None,
        prompt=1,
        issued_at=_WINDOW + timedelta(minutes=16, seconds=12),
    ),
)
RESTART: InstructionSpec[RestartInstruction] = InstructionSpec(
    type="computer.restart.v1",
    model=RestartInstruction,
    producer="scheduler",
    summary="Restart now.",
    subject="the computer id",
    example=RestartInstruction(
        computer_id=_COMPUTER,
        reason="nobody_logged_on",
        issued_at=datetime(2026, 2, 11, 22, 30, tzinfo=UTC),
    ),
)
AGENT_UPDATE: InstructionSpec[AgentUpdateInstruction] = InstructionSpec(
    type="computer.agent-update.v1",
    model=AgentUpdateInstruction,
    producer="scheduler",
    summary="Install a mandatory agent version (at the policy's agent_update_schedule).",
    subject="the computer id",
    example=AgentUpdateInstruction(
        computer_id=_COMPUTER, version="1.5.0", prompt_restart=True, issued_at=_AGENT_UPDATE_AT
    ),
)
INSTALL_REQUEST: AgentEventSpec[InstallRequest] = AgentEventSpec(
    type="agent.install-request.v1",
    model=InstallRequest,
    producer="agent",
    summary="The user asked to install an available update now; the scheduler answers with "
    "computer.<computer_id>.install.v1 (reason `requested`).",
    subject="the computer id",
    example=InstallRequest(
        computer_id=_COMPUTER,
        update_id=_TOOL_ID,
        requested_at=datetime(2026, 2, 12, 9, 14, 3, tzinfo=UTC),
    ),
)
REJECTED: InstructionSpec[Rejected] = InstructionSpec(
    type="computer.rejected.v1",
    model=Rejected,
    producer="scheduler",
    summary="A message of this agent was refused for what it says; why, field by field. "
    "Sent by whichever service refused it.",
    subject="the computer id",
    example=Rejected(
        computer_id=_COMPUTER,
        message_id="7d1f0c3e-58a2-4b9e-a1f4-2c6b8e9d0a17",
        message_type="agent.status.v1",
        reason_class="InvalidMessage",
        reason="installs[0].return_code: Input should be less than or equal to 4294967295 "
        "(got 5000000000)",
        field="installs[0].return_code",
        rejected_at=datetime(2026, 2, 11, 20, 6, 16, tzinfo=UTC),
    ),
)
GET_PLAN = command(
    "scheduler",
    "computer",
    "plan",
    GetPlan,
    ComputerPlan,
    summary="A computer's plan (what its agent was last sent).",
)

EVENTS = (
    AGENT_STATUS,
    AGENT_RESTART,
    INSTALL_REQUEST,
    PLAN,
    INSTALL,
    RESTART_PROMPT,
    RESTART,
    AGENT_UPDATE,
    REJECTED,
)
