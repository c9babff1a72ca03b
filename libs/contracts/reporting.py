"""Reporting's queries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

from pydantic import AwareDatetime, Field, field_validator

from libs.contracts.names import ServiceName
from libs.contracts.spec import Contract, command, event


class ListServiceInstances(Contract):
    """Which service instances reporting has heard from."""

    service: ServiceName | None = Field(default=None, description="Only this service, if set.")
    include_stale: bool = Field(
        default=False, description="Also list instances not heard from for 3 intervals."
    )


class ServiceInstance(Contract):
    """What reporting knows of one service instance from its heartbeats."""

    service: ServiceName = Field(description="Service name.")
    instance_id: str = Field(description="Process id of the instance.")
    version: str = Field(description="Version it last reported.")
    started_at: AwareDatetime = Field(description="When the instance started.")
    first_seen: AwareDatetime = Field(description="When its first heartbeat was stored.")
    last_seen: AwareDatetime = Field(description="When its latest heartbeat was stored.")
    heartbeats_total: int = Field(ge=0, description="Heartbeats stored for it.")
    last_sequence: int = Field(ge=0, description="Highest heartbeat sequence seen.")
    interval_seconds: float = Field(description="Heartbeat interval the instance announced.")
    alive: bool = Field(description="Heard from within the last 3 heartbeat intervals.")


class ServiceInstances(Contract):
    """Reply to ListServiceInstances, most recently seen first."""

    instances: list[ServiceInstance] = Field(description="Known instances.")


LIST_SERVICE_INSTANCES = command(
    "reporting",
    "service-instances",
    "list",
    ListServiceInstances,
    ServiceInstances,
    summary="List the service instances reporting has heard from, with their last heartbeat.",
)


ComplianceState = Literal[
    "installed", "needed", "failed", "installed_pending_restart", "not_applicable", "no_status"
]
COMPLIANCE_STATES: tuple[ComplianceState, ...] = get_args(ComplianceState)


class StateCounts(Contract):
    """How many computers are in each state for an update (or a set of updates)."""

    applies_to: int = Field(
        description="Computers it applies to: installed + needed + failed + pending restart."
    )
    installed: int = Field(description="Installed.")
    needed: int = Field(description="Needed, not installed yet.")
    failed: int = Field(description="Last install attempt failed.")
    installed_pending_restart: int = Field(description="Installed, restart pending.")
    not_applicable: int = Field(description="Reported not applicable.")
    no_status: int = Field(
        description="Targeted by an approval (one of its groups, All computers included) and "
        "in contact, but never reported on it."
    )
    not_reporting: int = Field(
        default=0,
        description="Silent for longer than LOCKGATE_NOT_REPORTING_DAYS: counted here only, "
        "whatever they last reported (so failed and silent are different numbers).",
    )


class UpdateCompliance(Contract):
    """One update's counts."""

    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="KB number, if any.")
    title: str = Field(description="Title.")
    classification: str = Field(description="Classification.")
    superseded: bool = Field(description="Superseded (still counted).")
    approved: bool = Field(description="Approved for at least one group.")
    counts: StateCounts = Field(description="Computers per state.")


class Page(Contract):
    """Which slice of a long list to return."""

    offset: int = Field(default=0, ge=0, le=2_000_000_000, description="Items to skip.")
    limit: int = Field(default=100, ge=1, le=1000, description="Items to return.")


class Summary(Contract):
    """Ask for the fleet-wide per-update summary."""

    page: Page = Field(default_factory=Page, description="Which updates.")
    failed: bool = Field(
        default=False,
        description="Only updates with at least one failed computer (counts.failed above 0: a "
        "silent computer counts as not reporting, not as failed). The headline numbers "
        "(totals, computers...) stay the whole fleet's.",
    )
    search: str | None = Field(
        default=None,
        max_length=200,
        description="Only updates whose title or KB number (KB5073455 or 5073455) contains this, "
        "in any case.",
    )


NOT_ENROLLED = (
    "No computer is managed yet: the update views fill once an agent checks in "
    "(docs/product.md section 5).\n"
    "Enrol a computer:  lockgate broker agents <computer-id> --output enrol.json\n"
    "                   rabbitmqctl import_definitions enrol.json   (then set its password)\n"
    "Write or install an agent by docs/agent-protocol.md (the agent contract: "
    "docs/asyncapi.yaml), or try one: lockgate sim --computers 10"
)
"""What the overview says until the first computer checks in."""


class SummaryReport(Contract):
    """Per update counts over the whole fleet, and the overview's notification."""

    new_updates_to_approve: bool = Field(
        description="At least one managed computer needs an update neither approved nor declined."
    )
    computers: int = Field(description="Managed computers.")
    enrolment: str | None = Field(
        default=None,
        description="Until the first computer checks in: that no computer is managed yet and "
        "how an agent is enrolled; null once one is.",
    )
    computers_not_reporting: int = Field(
        default=0, description="Managed computers silent for longer than the setting."
    )
    computers_past_deadline: int = Field(
        default=0,
        description="Managed computers behind on an update past its deadline (still missing a "
        "required install, or still holding an update to uninstall), silent or not: those "
        "ListComputers lists with past_deadline.",
    )
    totals: StateCounts | None = Field(
        default=None,
        description="The headline counts: the sum over every reported update (the whole fleet, "
        "whatever the page and filters); what the compliance history keeps.",
    )
    updates: list[UpdateCompliance] = Field(description="Most needed first.")
    total: int = Field(description="Updates with any report or approval that the filters keep.")


class AttemptView(Contract):
    """One install attempt as reported."""

    computer_id: str = Field(description="The computer.")
    return_code: int = Field(description="Installer exit code.")
    outcome: Literal["success", "success_restart_required", "failure"] = Field(
        description="The code read through the update's map."
    )
    started_at: AwareDatetime = Field(description="Start.")
    finished_at: AwareDatetime = Field(description="End.")


class UpdateReportQuery(Contract):
    """Ask for one update's report."""

    update: str = Field(description="Update id or KB number.")
    page: Page = Field(default_factory=Page, description="Which failed attempts.")


class UpdateReport(Contract):
    """One update: counts, and installs that succeeded or failed."""

    update: UpdateCompliance = Field(description="The update and its counts.")
    successes: int = Field(description="Install attempts that succeeded.")
    failures: int = Field(description="Install attempts that failed.")
    failed_attempts: list[AttemptView] = Field(description="Failed attempts, latest first.")


class GroupReportQuery(Contract):
    """Ask for a group's report (its computers and those of its subgroups)."""

    group: str = Field(description="Group id or name.")
    page: Page = Field(default_factory=Page, description="Which updates.")


class GroupReport(Contract):
    """Counts per update among a group's computers, subgroups included."""

    group_id: str = Field(description="The group.")
    name: str = Field(description="Its name.")
    computers: int = Field(description="Computers in it or its subgroups.")
    totals: StateCounts = Field(description="Sum over its updates.")
    updates: list[UpdateCompliance] = Field(description="Per update, most needed first.")


class ComputerReportQuery(Contract):
    """Ask for a computer's report."""

    computer: str = Field(description="Computer id.")
    page: Page = Field(default_factory=Page, description="Which updates.")


class ComputerUpdate(Contract):
    """One update on one computer."""

    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="KB number, if any.")
    title: str = Field(description="Title.")
    state: ComplianceState = Field(description="Its state on this computer.")
    reported_at: AwareDatetime | None = Field(description="Agent's time of the last report.")
    last_return_code: int | None = Field(description="Last install exit code, if any.")


class ComputerReport(Contract):
    """Every update reported by or targeted at one computer."""

    computer_id: str = Field(description="The computer.")
    last_contact_at: AwareDatetime | None = Field(
        default=None, description="Its last check-in or report (reporting's clock)."
    )
    not_reporting: bool = Field(
        default=False, description="Silent for longer than LOCKGATE_NOT_REPORTING_DAYS."
    )
    totals: StateCounts = Field(description="Its updates per state.")
    updates: list[ComputerUpdate] = Field(
        description="Every update reported on or approved for it (never reported: no_status)."
    )


FleetSort = Literal["name", "last_contact", "failed"]


class ListComputers(Contract):
    """Ask for a page of the fleet list: every managed computer, filtered and sorted."""

    not_reporting: bool = Field(
        default=False, description="Only computers silent for longer than the setting."
    )
    failed: bool = Field(default=False, description="Only computers with a failed update.")
    restart_pending: bool = Field(
        default=False, description="Only computers with an install waiting for a restart."
    )
    past_deadline: bool = Field(
        default=False,
        description="Only computers behind on an update past their deadline (still missing a "
        "required install, or still holding an update to uninstall).",
    )
    group: str | None = Field(
        default=None,
        max_length=200,
        description="Only members of this group (id or name) or of its subgroups.",
    )
    search: str | None = Field(
        default=None,
        max_length=255,
        description="Only computers whose host name (any case) or id starts with this.",
    )
    sort: FleetSort = Field(
        default="name",
        description="name (host name, A-Z), last_contact (longest silent first) or failed "
        "(most failed updates first); the computer id breaks ties.",
    )
    cursor: str | None = Field(
        default=None,
        max_length=1000,
        description="Where the page starts: `next_cursor` of the previous page (opaque).",
    )
    limit: int = Field(default=100, ge=1, le=1000, description="Computers to return.")


class FleetCompliance(Contract):
    """One computer's approved updates per state."""

    installed: int = Field(description="Installed.")
    needed: int = Field(description="Needed, not installed yet.")
    failed: int = Field(description="Last install attempt failed.")
    installed_pending_restart: int = Field(description="Installed, restart pending.")
    no_status: int = Field(description="Approved for it, never reported.")


class FleetComputer(Contract):
    """One managed computer in the fleet list."""

    computer_id: str = Field(description="The computer.")
    hostname: str = Field(description="Its host name.")
    groups: list[str] = Field(description="Names of the groups it is a member of, A-Z.")
    operating_system: str = Field(description="Operating system product (empty: unknown).")
    os_version: str = Field(description="Windows version and build (empty: unknown).")
    architecture: str = Field(description="Processor architecture (empty: unknown).")
    agent_version: str = Field(description="Agent software version (empty: unknown).")
    timezone: str = Field(description="IANA time zone.")
    policy: str | None = Field(description="Name of the policy in force, if reporting knows it.")
    last_contact_at: AwareDatetime = Field(
        description="Its last check-in or report (reporting's clock)."
    )
    not_reporting: bool = Field(description="Silent for longer than LOCKGATE_NOT_REPORTING_DAYS.")
    compliance: FleetCompliance = Field(description="Its approved updates per state.")


class ComputerList(Contract):
    """A page of the fleet list."""

    computers: list[FleetComputer] = Field(description="In the order asked for.")
    managed: int | None = Field(
        default=None,
        description="Managed computers (the whole fleet, unfiltered), on the first page only "
        "(counting a large fleet on every page would cost more than the page).",
    )
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null on the last page."
    )


class ComplianceHistory(Contract):
    """Ask for the fleet's headline counts over time: a point every
    LOCKGATE_COMPLIANCE_SAMPLE_SECONDS, kept LOCKGATE_COMPLIANCE_HISTORY_DAYS."""

    since: AwareDatetime | None = Field(
        default=None,
        description="The first `limit` points after this instant (pass the last point's `at` "
        "for the next page, or to poll for new points); null: the newest `limit` points.",
    )
    limit: int = Field(default=500, ge=1, le=2000, description="Points to return at most.")

    @field_validator("since")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """An instant PostgreSQL can compare: in UTC, within the years datetime holds."""
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("since: out of range once in UTC") from None


class CompliancePoint(Contract):
    """The fleet's headline counts at one instant."""

    at: AwareDatetime = Field(
        description="When they were read, rounded down to the sample interval "
        "(LOCKGATE_COMPLIANCE_SAMPLE_SECONDS from the Unix epoch): one point per interval."
    )
    computers: int = Field(description="Managed computers.")
    not_reporting: int = Field(
        description="Managed computers silent for longer than LOCKGATE_NOT_REPORTING_DAYS."
    )
    counts: StateCounts = Field(
        description="The headline counts (SummaryReport.totals): the sum over every reported "
        "update."
    )


class ComplianceHistoryReport(Contract):
    """Reply to ComplianceHistory."""

    points: list[CompliancePoint] = Field(description="Oldest first, one per interval.")


class UpdateComputers(Contract):
    """Ask for the computers of one update: those that reported on it and those its approvals
    target (the per-computer report seen from the update's side)."""

    update: str = Field(max_length=200, description="Update id or KB number.")
    state: ComplianceState | None = Field(
        default=None, description="Only computers in this state (their last-known one)."
    )
    not_reporting: bool | None = Field(
        default=None,
        description="Only silent computers (true) or only those in contact (false); null: both. "
        "The update's counts show a silent computer as not reporting only.",
    )
    page: Page = Field(default_factory=Page, description="Which computers.")


class UpdateComputer(Contract):
    """One computer of an update and its state there."""

    computer_id: str = Field(description="The computer.")
    hostname: str = Field(description="Its host name.")
    state: ComplianceState = Field(
        description="The update's last-known state on it (no_status: targeted by an approval, "
        "never reported on it)."
    )
    reported_at: AwareDatetime | None = Field(description="Agent's time of the last report.")
    last_return_code: int | None = Field(description="Last install exit code, if any.")
    not_reporting: bool = Field(
        description="Silent for longer than LOCKGATE_NOT_REPORTING_DAYS (its state is the last "
        "it reported)."
    )


class UpdateComputerList(Contract):
    """A page of an update's computers, by host name (A-Z, the id breaking ties)."""

    update_id: str = Field(description="The update.")
    computers: list[UpdateComputer] = Field(
        description="Every computer that reported on it (not applicable included) or that its "
        "approvals target."
    )
    total: int = Field(description="Computers the filters keep, over every page.")


class ComplianceChanged(Contract):
    """An update's counts changed (published at most once per interval per update)."""

    update: UpdateCompliance = Field(description="The update and its counts now.")


class GroupsCounts(Contract):
    """Ask for one update's counts among the computers of some groups, their subgroups
    included, each computer once: what a rollout's gate measures over its rings so far
    (approval asks; docs/architecture.md, rollouts)."""

    update: str = Field(max_length=200, description="Update id or KB number.")
    groups: list[str] = Field(
        min_length=1,
        max_length=100,
        description="Group ids or names; a computer in several of them (or in a subgroup) "
        "counts once.",
    )


class GroupsCountsReport(Contract):
    """One update's counts over the computers of these groups."""

    update_id: str = Field(description="The update.")
    group_ids: list[str] = Field(description="The groups, as ids, in the order asked.")
    computers: int = Field(description="Computers in them (subgroups included), each once.")
    counts: StateCounts = Field(
        description="Those computers per state of the update (silent ones as not_reporting "
        "only; no_status: targeted by an approval, never reported)."
    )


# Examples shown in docs/asyncapi.yaml (validated by their models when this module loads).
_COMPLIANCE = UpdateCompliance(
    update_id="0496b64b-4a42-52f3-a887-fcddb4f2f23d",
    kb="5073455",
    title="2026-02 Security Update for Windows (KB5073455)",
    classification="Security Updates",
    superseded=False,
    approved=True,
    counts=StateCounts(
        applies_to=412,
        installed=371,
        needed=28,
        failed=5,
        installed_pending_restart=8,
        not_applicable=36,
        no_status=3,
        not_reporting=2,
    ),
)

SUMMARY = command(
    "reporting",
    "compliance",
    "summary",
    Summary,
    SummaryReport,
    summary="Fleet-wide per-update counts.",
    formerly=("reporting.summary.v1",),
)
UPDATE_REPORT = command(
    "reporting", "update", "report", UpdateReportQuery, UpdateReport, summary="One update's report."
)
GROUP_REPORT = command(
    "reporting", "group", "report", GroupReportQuery, GroupReport, summary="A group's report."
)
COMPUTER_REPORT = command(
    "reporting",
    "computer",
    "report",
    ComputerReportQuery,
    ComputerReport,
    summary="A computer's report.",
)
LIST_COMPUTERS = command(
    "reporting",
    "computer",
    "list",
    ListComputers,
    ComputerList,
    summary="The fleet list: managed computers with inventory, last contact and compliance.",
)
COMPLIANCE_HISTORY = command(
    "reporting",
    "compliance",
    "history",
    ComplianceHistory,
    ComplianceHistoryReport,
    summary="The fleet's headline counts over time, oldest first.",
)
UPDATE_COMPUTERS = command(
    "reporting",
    "update",
    "computers",
    UpdateComputers,
    UpdateComputerList,
    summary="The computers of one update, each with its state there.",
)
COMPLIANCE_CHANGED = event(
    "reporting",
    "compliance",
    "changed",
    ComplianceChanged,
    summary="An update's compliance counts changed (throttled per update).",
    subject="the update id",
    example=ComplianceChanged(update=_COMPLIANCE),
)
GROUPS_COUNTS = command(
    "reporting",
    "update",
    "groups-counts",
    GroupsCounts,
    GroupsCountsReport,
    summary="One update's counts over the computers of some groups (a rollout's gate).",
)
COMMANDS = (
    SUMMARY,
    UPDATE_REPORT,
    GROUP_REPORT,
    COMPUTER_REPORT,
    LIST_COMPUTERS,
    COMPLIANCE_HISTORY,
    UPDATE_COMPUTERS,
    GROUPS_COUNTS,
)
