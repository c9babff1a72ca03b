"""The approval service's events and commands: groups, approvals, declines, rules.

Its events are Lockgate's public integration surface: other systems bind to
`approval.#` on `lockgate.events` to follow what is approved for whom and by when.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, Self, get_args

from pydantic import AwareDatetime, Field, model_validator

from libs.contracts.catalog import ClassificationName, Origin, SeverityName
from libs.contracts.rings import RingGate
from libs.contracts.spec import Contract, command, event

ROOT_GROUP_NAME = "All computers"
ROOT_GROUP_ID = "00000000-0000-0000-0000-000000000001"
"""The root of the group tree; every computer belongs to it."""

ActionName = Literal["required_install", "do_not_install", "available_install", "uninstall"]
ACTIONS: tuple[ActionName, ...] = get_args(ActionName)
ChoiceAction = Literal[
    "required_install", "do_not_install", "available_install", "uninstall", "inherit"
]
DeadlineKind = Literal[
    "none", "as_soon_as_possible", "custom", "one_week", "two_weeks", "one_month"
]
RuleDeadlineKind = Literal["none", "as_soon_as_possible", "one_week", "two_weeks", "one_month"]
UpdateState = Literal[
    "new", "approved", "declined", "superseded", "expired", "third_party", "not_offered"
]
UPDATE_STATES: tuple[UpdateState, ...] = get_args(UpdateState)
UpdateSort = Literal["release_date", "title", "kb", "classification", "severity", "approved_groups"]
UPDATE_SORTS: tuple[UpdateSort, ...] = get_args(UpdateSort)
PREVIEW_LIMIT = 2000
"""At most this many rows in a dry run's preview (approve) or approval list (rule run)."""
ACTIONS_WITH_DEADLINE: tuple[ActionName, ...] = ("required_install", "uninstall")


# --- shared shapes -------------------------------------------------------------------------


class DeadlineChoice(Contract):
    """A deadline as the operator chooses it; relative ones are resolved at approval time."""

    kind: DeadlineKind = Field(
        default="none",
        description="`none` (users may postpone forever), `as_soon_as_possible`, `custom` "
        "(give `at`), `one_week`, `two_weeks` or `one_month` from the approval.",
    )
    at: AwareDatetime | None = Field(
        default=None,
        description="The custom instant (with a time zone); only with kind `custom`. "
        "A custom deadline already past means as soon as possible.",
    )

    @model_validator(mode="after")
    def _at_only_with_custom(self) -> Self:
        if self.kind == "custom" and self.at is None:
            raise ValueError("deadline.at is required when deadline.kind is 'custom'")
        if self.kind != "custom" and self.at is not None:
            raise ValueError(f"deadline.at is only allowed with kind 'custom', not {self.kind!r}")
        return self


class Deadline(Contract):
    """A resolved deadline: what was chosen and the absolute UTC instant it means."""

    kind: DeadlineKind = Field(description="What the operator chose.")
    at: AwareDatetime | None = Field(
        description="The instant (UTC) installs are due; null when kind is `none`."
    )


class Pause(Contract):
    """An approval held: no new install of the update starts where it applies, until resumed
    (removals go on: a pause holds installs only)."""

    paused_by: str = Field(
        description="Who paused it: `token:<name>` (the console's caller), or "
        "`alert:<alertname>` (an Alertmanager webhook)."
    )
    reason: str = Field(description="Why, in the words of whoever paused it.")
    paused_at: AwareDatetime = Field(description="When it was paused.")
    group_id: str | None = Field(
        description="The group it was paused on (it holds there and in the groups that "
        "inherit the same approval from it); null: paused fleet-wide."
    )
    group_name: str | None = Field(description="That group's name; null: fleet-wide.")


class Approval(Contract):
    """An action and deadline, with where it was decided."""

    action: ActionName = Field(description="What computers of the group do with the update.")
    deadline: Deadline = Field(description="By when (required install and uninstall only).")
    source_group_id: str = Field(
        description="The group where this was set explicitly (this group, or the ancestor it "
        "is inherited from)."
    )
    source_group_name: str = Field(description="That group's name.")
    approved_at: AwareDatetime = Field(description="When it was set on the source group.")
    approved_by: str = Field(
        description="`operator`, `rule:<rule id>` for auto-approvals, or `rollback:<who>` "
        "for an uninstall a rollback set (who: as in `Pause.paused_by`)."
    )
    paused: Pause | None = Field(
        default=None,
        description="Set while the approval is paused (required and available installs "
        "only): computers start no new install of the update; null: not paused.",
    )


class GroupApprovalState(Contract):
    """One (group, update): what is set on the group and what applies to it."""

    group_id: str = Field(description="The group.")
    group_name: str = Field(description="Its name.")
    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="The update's KB number, if any.")
    title: str = Field(description="The update's title.")
    explicit: Approval | None = Field(description="Set on this group itself; null: inherits.")
    effective: Approval | None = Field(
        description="What applies to the group's computers (explicit, or inherited from the "
        "nearest ancestor); null: not approved."
    )
    why: str = Field(description="In words: `explicit here` or `inherited from <group>`.")


class Group(Contract):
    """A computer group in the tree under "All computers"."""

    group_id: str = Field(description="Stable id (UUID).")
    name: str = Field(description="Name, unique in the whole tree (case-insensitive).")
    parent_id: str | None = Field(description="Parent group; null only for All computers.")
    path: list[str] = Field(description="Names from All computers down to this group.")


class GroupView(Group):
    """A group with its counts, as listed to operators."""

    computers: int = Field(description="Computers that are direct members.")
    children: int = Field(description="Direct child groups.")


class UpdateView(Contract):
    """An update as the approval views list it."""

    id: str = Field(description="The update id (the same as `update_id`).")
    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="KB number, if any.")
    revision: int = Field(description="Catalog revision known here.")
    title: str = Field(description="Title.")
    origin: Origin = Field(description="`microsoft` or `third_party`.")
    classification: ClassificationName = Field(description="Classification.")
    severity: SeverityName | None = Field(description="Highest MSRC severity.")
    product_families: list[str] = Field(description="Product categories.")
    release_date: AwareDatetime = Field(description="Release date.")
    products: list[str] = Field(description="Product names.")
    states: list[UpdateState] = Field(description="Every state that applies (filters).")
    approved_groups: int = Field(description="Groups with an explicit approval.")
    supersedes: list[str] = Field(description="KBs (or update ids) it replaces.")
    superseded_by: list[str] = Field(description="Update ids replacing it.")
    expired: bool = Field(description="Expired: can no longer be approved.")
    declined: bool = Field(description="Declined: hidden from default views.")
    offered: bool = Field(
        default=True,
        description="Offered by the catalog settings; false: hidden from default views and "
        "not approvable (docs/product.md section 2).",
    )
    not_offered_because: str | None = Field(
        default=None, description="Why it is not offered; null when offered."
    )


# --- groups ---------------------------------------------------------------------------------

GroupName = Field(
    min_length=1,
    max_length=100,
    pattern=r"^[^\x00-\x1f/]+$",
    description="Group name: 1-100 characters, no '/' or control characters.",
)
GroupRef = Field(description="A group id, or a group name (names are unique).")


class CreateGroup(Contract):
    """Create a group under a parent (All computers by default)."""

    name: str = GroupName
    parent: str = Field(default=ROOT_GROUP_NAME, description="Parent group id or name.")


class RenameGroup(Contract):
    """Rename a group."""

    group: str = GroupRef
    name: str = GroupName


class MoveGroup(Contract):
    """Move a group (with its subtree) under another parent; cycles are refused."""

    group: str = GroupRef
    parent: str = Field(description="New parent group id or name.")


class DeleteGroup(Contract):
    """Delete an empty group: refused while it has child groups, computers, or rules use it."""

    group: str = GroupRef


class ListGroups(Contract):
    """Ask for the whole tree."""


class GroupList(Contract):
    """The tree, parents before children."""

    groups: list[GroupView] = Field(description="Every group, All computers first.")


class GroupDeleted(Contract):
    """A deleted group."""

    group_id: str = Field(description="The deleted group.")
    name: str = Field(description="Its name.")


class GroupChanged(Contract):
    """A group as it is after being created, renamed or moved."""

    group: Group = Field(description="The group now.")


# --- membership -----------------------------------------------------------------------------


class ChangeMembership(Contract):
    """Add computers to a group, or remove them from it."""

    computers: list[str] = Field(min_length=1, max_length=10_000, description="Computer ids.")
    group: str = GroupRef
    member: bool = Field(default=True, description="true: add; false: remove.")


class MembershipResult(Contract):
    """How many memberships changed."""

    changed: int = Field(description="Computers whose membership of the group changed.")


class MembershipChanged(Contract):
    """A computer's groups changed; carries the whole list, so consumers need no history."""

    computer_id: str = Field(description="The computer.")
    group_ids: list[str] = Field(description="Every group it belongs to, All computers first.")


# --- approvals ------------------------------------------------------------------------------


class GroupChoice(Contract):
    """What to do for one group."""

    group: str = GroupRef
    action: ChoiceAction = Field(
        description="`required_install`, `do_not_install`, `available_install`, `uninstall`, "
        "or `inherit` to drop the group's explicit approval and follow its parent again."
    )
    deadline: DeadlineChoice = Field(
        default_factory=DeadlineChoice,
        description="Deadline; only for `required_install` and `uninstall`.",
    )


class Approve(Contract):
    """Approve updates for groups, an action and a deadline per group."""

    updates: list[str] = Field(
        min_length=1, max_length=1000, description="Update ids or KB numbers."
    )
    groups: list[GroupChoice] = Field(min_length=1, max_length=1000, description="Per group.")
    dry_run: bool = Field(
        default=False,
        description="true: a preview; nothing is written and no event is published. The "
        "reply's `preview` shows, for each update, what every chosen group and every group "
        "below one would have after the change, and why; its counts say what would change. "
        "The same checks apply as to a real approval (unknown or expired updates are refused).",
    )


class ApproveResult(Contract):
    """What an approval changed (with `dry_run`: what it would change)."""

    explicit_changed: int = Field(
        description="(group, update) explicit approvals written, or removed by `inherit` "
        "(dry run: that would be)."
    )
    effective_changed: int = Field(
        description="(group, update) effective approvals that changed, one event each (dry "
        "run: that would change; no event is published)."
    )
    preview: list[GroupApprovalState] = Field(
        default_factory=list,
        description="Dry run only (empty otherwise): per update in the order asked, each "
        "chosen group and every group below a chosen one, parents before children, with the "
        "explicit and effective approval it would have and `why` (`explicit here`, "
        f"`inherited from <group>` or `not approved`). At most {PREVIEW_LIMIT} rows.",
    )
    preview_truncated: bool = Field(
        default=False,
        description=f"true: the preview stopped at {PREVIEW_LIMIT} rows; the counts still "
        "cover everything.",
    )


class Decline(Contract):
    """Decline updates: their approvals go, they leave the default views."""

    updates: list[str] = Field(
        min_length=1, max_length=1000, description="Update ids or KB numbers."
    )


class DeclineResult(Contract):
    """What a decline changed."""

    declined: list[str] = Field(description="Update ids newly declined.")
    effective_changed: int = Field(description="(group, update) approvals removed.")


class ApprovalChanged(Contract):
    """What applies to one group for one update changed (set, inherited or removed)."""

    state: GroupApprovalState = Field(description="The (group, update) state now.")
    cause: str = Field(
        description="What changed it: `approve`, `decline`, `rule:<id>`, `group.moved`, "
        "`group.deleted`, `update.deleted`, `pause`, `resume`, `rollback`."
    )


GROUPS_PER_CHANGE = 5000
"""At most this many groups in one `approval.update-approval.changed.v1` (a bigger change is
sent as several, in order), so a message stays a few hundred kB whatever the tree's size."""


class UpdateApprovalChanged(Contract):
    """What applies to these groups for one update changed, to the same approval for all.

    Lockgate's own read copies (scheduler, reporting) follow this event: one approval of a
    group with 10,000 groups below it is one or two messages, not 10,000. Other systems follow
    `approval.approval.changed.v1`, one per (group, update), with the group's whole state.
    """

    update_id: str = Field(description="The update.")
    effective: Approval | None = Field(
        description="What now applies to every listed group (explicit on its source group, "
        "inherited below it); null: the update is no longer approved for them."
    )
    group_ids: list[str] = Field(
        min_length=1,
        max_length=GROUPS_PER_CHANGE,
        description="The groups that changed to `effective`, parents before children.",
    )
    cause: str = Field(
        description="What changed it: `approve`, `decline`, `rule:<id>`, `group.moved`, "
        "`group.deleted`, `update.deleted`, `pause`, `resume`, `rollback`."
    )

    @classmethod
    def of_group(cls, event: ApprovalChanged) -> Self:
        """One group's `approval.approval.changed.v1` as this event (the read copies took
        that one before this existed, and still apply those left queued)."""
        state = event.state
        return cls(
            update_id=state.update_id,
            effective=state.effective,
            group_ids=[state.group_id],
            cause=event.cause,
        )


class UpdateDeclined(Contract):
    """An update was declined: approvals removed; reporting deletes its data."""

    update_id: str = Field(description="The declined update.")
    kb: str | None = Field(description="Its KB number, if any.")
    declined_at: AwareDatetime = Field(description="When.")


# --- pause, resume, roll back ----------------------------------------------------------------

ControlVerb = Literal["paused", "resumed", "rolled_back"]
Reason = Field(
    min_length=1,
    max_length=500,
    pattern=r"\S",
    description="Why (1-500 characters, not only spaces): kept with the change and shown to "
    "operators and in its event.",
)
RequestedBy = Field(
    default="operator",
    min_length=1,
    max_length=200,
    description="Who asks: the console sets it from the caller (`token:<name>`, or "
    "`alert:<alertname>` for its Alertmanager webhook) and replaces what a client sent.",
)


class PauseUpdate(Contract):
    """Pause an update's approval: no new install of it starts, fleet-wide or in one group
    (and the groups that inherit the same approval from it), until resumed."""

    update: str = Field(description="Update id or KB number.")
    group: str | None = Field(
        default=None,
        description="Group id or name; null: fleet-wide (every group, also "
        "approvals made while it stays paused).",
    )
    reason: str = Reason
    requested_by: str = RequestedBy


class ResumeUpdate(Contract):
    """Resume a paused update: fleet-wide lifts every pause of it; with a group, the pause
    set on that group."""

    update: str = Field(description="Update id or KB number.")
    group: str | None = Field(
        default=None, description="Group id or name; null: fleet-wide (every pause of it)."
    )
    reason: str = Reason
    requested_by: str = RequestedBy


class RollbackUpdate(Contract):
    """Roll an update back: its approval becomes `uninstall` where it is approved for install
    (fleet-wide: every group with an explicit install approval; else the one group, and what
    inherits from it)."""

    update: str = Field(description="Update id or KB number.")
    group: str | None = Field(default=None, description="Group id or name; null: fleet-wide.")
    reason: str = Reason
    deadline: DeadlineChoice = Field(
        default_factory=DeadlineChoice,
        description="The uninstall's deadline (default none: at each computer's next window).",
    )
    requested_by: str = RequestedBy


class UpdateControlled(Contract):
    """An update was paused, resumed or rolled back (the reply and the event)."""

    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="Its KB number, if any.")
    title: str = Field(description="Its title.")
    verb: ControlVerb = Field(description="`paused`, `resumed` or `rolled_back`.")
    group_id: str | None = Field(description="The group it was done on; null: fleet-wide.")
    group_name: str | None = Field(description="That group's name; null: fleet-wide.")
    by: str = Field(description="Who did it (`token:<name>`, `alert:<alertname>`).")
    reason: str = Field(description="Why.")
    at: AwareDatetime = Field(description="When.")
    changed: bool = Field(
        description="false: nothing changed (already paused there, or nothing to resume); "
        "no event is published then."
    )
    effective_changed: int = Field(
        description="(group, update) effective approvals that changed (paused, resumed or "
        "turned into uninstall)."
    )
    groups: list[str] = Field(
        default_factory=list,
        description="Names of the groups whose explicit approval the rollback turned into "
        "uninstall (empty for pause and resume).",
    )
    note: str | None = Field(
        default=None, description="When nothing changed: why (e.g. paused since when by whom)."
    )


class ListUpdates(Contract):
    """List updates with their approval state, in the order asked."""

    states: list[UpdateState] = Field(
        default_factory=list,
        description="Only updates in one of these states; empty: every update neither declined "
        "nor `not_offered` (outside the catalog settings).",
    )
    classification: ClassificationName | None = Field(default=None, description="Only this.")
    product_family: str | None = Field(default=None, description="Only this product category.")
    search: str | None = Field(
        default=None, max_length=200, description="Only titles or KB numbers containing this."
    )
    sort: UpdateSort = Field(
        default="release_date",
        description="Order by: `release_date`; `title` (any case); `kb` (as a number; updates "
        "without one lowest); `classification` (by name); `severity` (Low, Moderate, "
        "Important, Critical; unrated lowest); `approved_groups` (groups with an explicit "
        "approval). Ties are broken by update id, so paging with offset is stable.",
    )
    descending: bool = Field(
        default=True,
        description="true: highest first (newest release, Z to A, most severe, most "
        "approved groups); false: lowest first. Ties reverse too.",
    )
    offset: int = Field(default=0, ge=0, le=2_000_000_000, description="Updates to skip.")
    limit: int = Field(default=1000, ge=1, le=10_000, description="At most this many.")


class UpdateList(Contract):
    """Updates in the order asked (newest release first by default)."""

    updates: list[UpdateView] = Field(description="The updates.")
    total: int = Field(description="How many match (before limit).")


class UpdateApprovals(Contract):
    """Ask for every group where one update is approved, explicitly or by inheritance."""

    update: str = Field(description="Update id or KB number.")


class UpdateApprovalList(Contract):
    """One update's approvals across the group tree."""

    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="Its KB number, if any.")
    title: str = Field(description="Its title.")
    groups: list[GroupApprovalState] = Field(
        description="Every group with an explicit or an effective approval of the update, "
        "All computers first, then in tree order (parents before children, siblings by id); "
        "groups where it is not approved are left out."
    )


class GroupApprovals(Contract):
    """Ask for every approval of a group (explicit and effective, with why)."""

    group: str = GroupRef


class GroupApprovalList(Contract):
    """A group's approvals."""

    group: Group = Field(description="The group.")
    approvals: list[GroupApprovalState] = Field(description="One per update approved here.")


class ComputerApprovals(Contract):
    """Ask for what applies to one computer, resolved across its groups."""

    computer: str = Field(description="Computer id.")


class ComputerApproval(Contract):
    """One update for one computer, after resolving its groups."""

    update_id: str = Field(description="The update.")
    kb: str | None = Field(description="KB number, if any.")
    action: ActionName = Field(description="The action that wins.")
    deadline: Deadline = Field(description="The earliest deadline among the winning groups.")
    from_groups: list[str] = Field(description="Names of the groups whose approval won.")
    conflict: str | None = Field(
        description="Set when groups disagree in a way operators should know (uninstall "
        "overruled by required install)."
    )


class ComputerApprovalList(Contract):
    """What applies to one computer."""

    computer_id: str = Field(description="The computer.")
    hostname: str = Field(description="Its host name.")
    groups: list[Group] = Field(description="Its groups, All computers first.")
    approvals: list[ComputerApproval] = Field(description="One per approved update.")


# --- auto-approval rules ---------------------------------------------------------------------


class RuleSpec(Contract):
    """What an auto-approval rule matches and what it does."""

    name: str = Field(min_length=1, max_length=100, description="Unique name.")
    description: str = Field(default="", max_length=1000, description="Free text.")
    products: list[str] = Field(
        default_factory=list,
        description="Product categories (families) to match; empty: every product.",
    )
    classifications: list[ClassificationName] = Field(
        min_length=1, description="Classifications to match; at least one."
    )
    severities: list[SeverityName] = Field(
        default_factory=list, description="Only these MSRC severities; empty: any."
    )
    title_contains: str | None = Field(
        default=None, max_length=200, description="Only titles containing this (any case)."
    )
    groups: list[str] = Field(min_length=1, description="Target group ids or names.")
    deadline: RuleDeadlineKind = Field(
        default="none", description="Deadline of its approvals, counted from each approval."
    )
    rollout: RingGate | None = Field(
        default=None,
        description="Set: a matching update is rolled out over `groups` in the order listed "
        "(at least two, none below an earlier one), each next group after this gate, instead "
        "of being approved for all of them at once (libs/contracts/rollouts.py).",
    )


class Rule(Contract):
    """A stored auto-approval rule."""

    rule_id: str = Field(description="Stable id (UUID).")
    name: str = Field(description="Unique name.")
    description: str = Field(description="Free text.")
    products: list[str] = Field(description="Product categories; empty: every product.")
    classifications: list[ClassificationName] = Field(description="Classifications.")
    severities: list[SeverityName] = Field(description="Severities; empty: any.")
    title_contains: str | None = Field(description="Title filter.")
    group_ids: list[str] = Field(description="Target groups.")
    deadline: RuleDeadlineKind = Field(description="Deadline of its approvals.")
    rollout: RingGate | None = Field(
        default=None,
        description="The gate between rings when it rolls updates out over its groups in "
        "order; null: it approves them all at once.",
    )
    created_at: AwareDatetime = Field(description="Creation time.")
    updated_at: AwareDatetime = Field(description="Last edit.")


class CreateRule(Contract):
    """Create a rule; it approves only updates published from now on until it is run."""

    rule: RuleSpec = Field(description="The rule.")


class EditRule(Contract):
    """Replace a rule's definition (its approvals stay)."""

    rule: str = Field(description="Rule id or name.")
    definition: RuleSpec = Field(description="The new definition.")


class RuleRef(Contract):
    """Name one rule (delete)."""

    rule: str = Field(description="Rule id or name.")


class RunRule(Contract):
    """Apply a rule to the updates already known, or preview what it would do."""

    rule: str = Field(description="Rule id or name.")
    dry_run: bool = Field(
        default=False,
        description="true: a preview; nothing is written and no event is published. The "
        "reply lists the updates the rule would approve and the approvals it would write.",
    )


class ListRules(Contract):
    """Ask for every rule."""


class RuleList(Contract):
    """Every rule, by name."""

    rules: list[Rule] = Field(description="The rules.")


class RuleDeleted(Contract):
    """A rule was deleted; the approvals it made stay."""

    rule_id: str = Field(description="The deleted rule.")
    name: str = Field(description="Its name.")


class RuleChanged(Contract):
    """A rule as it is after being created or edited."""

    rule: Rule = Field(description="The rule now.")


class RuleRan(Contract):
    """A rule was run over the updates already in the catalog (or matched a new update); as
    the reply to a dry run, what it would do."""

    rule_id: str = Field(description="The rule.")
    updates_approved: list[str] = Field(
        description="Update ids it approved (dry run: would approve)."
    )
    explicit_changed: int = Field(
        description="(group, update) approvals it wrote (dry run: would write)."
    )
    approvals: list[GroupApprovalState] = Field(
        default_factory=list,
        description="Dry run only (empty otherwise and in events): the explicit approvals it "
        f"would write, one per (update, group), at most {PREVIEW_LIMIT}.",
    )
    approvals_truncated: bool = Field(
        default=False,
        description=f"true: `approvals` stopped at {PREVIEW_LIMIT}; the other fields still "
        "cover everything.",
    )


# Examples shown in docs/asyncapi.yaml (validated by their models when this module loads).
_AT = datetime(2026, 2, 10, 18, 0, tzinfo=UTC)
_UPDATE_ID = "0496b64b-4a42-52f3-a887-fcddb4f2f23d"
_PILOT = Group(
    group_id="6b3e2f0a-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
    name="Pilot",
    parent_id=ROOT_GROUP_ID,
    path=[ROOT_GROUP_NAME, "Pilot"],
)
_ROOT_APPROVAL = Approval(
    action="required_install",
    deadline=Deadline(kind="one_week", at=_AT + timedelta(weeks=1)),
    source_group_id=ROOT_GROUP_ID,
    source_group_name=ROOT_GROUP_NAME,
    approved_at=_AT,
    approved_by="operator",
)
_RULE = Rule(
    rule_id="9d5b7c1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e",
    name="Security for pilots",
    description="Critical and security updates of Windows go to the pilot group first.",
    products=["Windows"],
    classifications=["Critical Updates", "Security Updates"],
    severities=[],
    title_contains=None,
    group_ids=[_PILOT.group_id],
    deadline="one_week",
    created_at=_AT,
    updated_at=_AT,
)

APPROVAL_CHANGED = event(
    "approval",
    "approval",
    "changed",
    ApprovalChanged,
    summary="What applies to one group for one update changed (set, inherited or removed).",
    subject="the update id",
    example=ApprovalChanged(
        state=GroupApprovalState(
            group_id=_PILOT.group_id,
            group_name=_PILOT.name,
            update_id=_UPDATE_ID,
            kb="5073455",
            title="2026-02 Security Update for Windows (KB5073455)",
            explicit=None,
            effective=_ROOT_APPROVAL,
            why=f"inherited from {ROOT_GROUP_NAME}",
        ),
        cause="approve",
    ),
    formerly=("approval.changed.v1",),
)
UPDATE_APPROVAL_CHANGED = event(
    "approval",
    "update-approval",
    "changed",
    UpdateApprovalChanged,
    summary="What applies to a list of groups for one update changed, to the same approval "
    "(one message per change, for Lockgate's read copies; per group: approval.changed).",
    subject="the update id",
    example=UpdateApprovalChanged(
        update_id=_UPDATE_ID,
        effective=_ROOT_APPROVAL,
        group_ids=[ROOT_GROUP_ID, _PILOT.group_id],
        cause="approve",
    ),
)
UPDATE_DECLINED = event(
    "approval",
    "update",
    "declined",
    UpdateDeclined,
    summary="An update was declined: its approvals are gone and its report data should go.",
    subject="the update id",
    example=UpdateDeclined(update_id=_UPDATE_ID, kb="5073455", declined_at=_AT),
)
GROUP_CREATED = event(
    "approval",
    "group",
    "created",
    GroupChanged,
    summary="A computer group was created.",
    subject="the group id",
    example=GroupChanged(group=_PILOT),
)
GROUP_RENAMED = event(
    "approval",
    "group",
    "renamed",
    GroupChanged,
    summary="A computer group was renamed.",
    subject="the group id",
    example=GroupChanged(group=_PILOT),
)
GROUP_MOVED = event(
    "approval",
    "group",
    "moved",
    GroupChanged,
    summary="A group moved (with its subtree) under another parent.",
    subject="the group id",
    example=GroupChanged(group=_PILOT),
)
GROUP_DELETED = event(
    "approval",
    "group",
    "deleted",
    GroupDeleted,
    summary="A computer group was deleted.",
    subject="the group id",
    example=GroupDeleted(group_id=_PILOT.group_id, name=_PILOT.name),
)
MEMBERSHIP_CHANGED = event(
    "approval",
    "membership",
    "changed",
    MembershipChanged,
    summary="A computer's groups changed; the message lists all of them.",
    subject="the computer id",
    example=MembershipChanged(computer_id="pc-0042", group_ids=[ROOT_GROUP_ID, _PILOT.group_id]),
)
RULE_CREATED = event(
    "approval",
    "rule",
    "created",
    RuleChanged,
    summary="An auto-approval rule was created.",
    subject="the rule id",
    example=RuleChanged(rule=_RULE),
)
RULE_EDITED = event(
    "approval",
    "rule",
    "edited",
    RuleChanged,
    summary="An auto-approval rule was edited.",
    subject="the rule id",
    example=RuleChanged(rule=_RULE),
)
RULE_DELETED = event(
    "approval",
    "rule",
    "deleted",
    RuleDeleted,
    summary="An auto-approval rule was deleted; its approvals stay.",
    subject="the rule id",
    example=RuleDeleted(rule_id=_RULE.rule_id, name=_RULE.name),
)
RULE_RAN = event(
    "approval",
    "rule",
    "ran",
    RuleRan,
    summary="A rule approved updates (it was run, or a new update matched it).",
    subject="the rule id",
    example=RuleRan(rule_id=_RULE.rule_id, updates_approved=[_UPDATE_ID], explicit_changed=1),
)
_PAUSED = UpdateControlled(
    update_id=_UPDATE_ID,
    kb="5073455",
    title="2026-02 Security Update for Windows (KB5073455)",
    verb="paused",
    group_id=None,
    group_name=None,
    by="alert:LockgateUpdateFailureRateHigh",
    reason="alert LockgateUpdateFailureRateHigh fired for KB5073455: KB5073455 fails on "
    "33.33% of installs",
    at=_AT,
    changed=True,
    effective_changed=2,
)
UPDATE_PAUSED = event(
    "approval",
    "update",
    "paused",
    UpdateControlled,
    summary="An update was paused (fleet-wide or in a group): no new install of it starts "
    "there until it is resumed; who and why.",
    subject="the update id",
    example=_PAUSED,
)
UPDATE_RESUMED = event(
    "approval",
    "update",
    "resumed",
    UpdateControlled,
    summary="A paused update was resumed (fleet-wide or in a group): installs go on.",
    subject="the update id",
    example=_PAUSED.model_copy(
        update={
            "verb": "resumed",
            "group_id": _PILOT.group_id,
            "group_name": _PILOT.name,
            "by": "token:alice",
            "reason": "fixed by the vendor's re-release",
            "effective_changed": 1,
        }
    ),
)
UPDATE_ROLLED_BACK = event(
    "approval",
    "update",
    "rolled-back",
    UpdateControlled,
    summary="An update was rolled back: its install approvals became uninstall in the "
    "groups listed (and what inherits from them); who and why.",
    subject="the update id",
    example=_PAUSED.model_copy(
        update={
            "verb": "rolled_back",
            "by": "token:alice",
            "reason": "breaks printing on pilot machines",
            "groups": [ROOT_GROUP_NAME],
        }
    ),
)

EVENTS = (
    APPROVAL_CHANGED,
    UPDATE_APPROVAL_CHANGED,
    UPDATE_DECLINED,
    GROUP_CREATED,
    GROUP_RENAMED,
    GROUP_MOVED,
    GROUP_DELETED,
    MEMBERSHIP_CHANGED,
    RULE_CREATED,
    RULE_EDITED,
    RULE_DELETED,
    RULE_RAN,
    UPDATE_PAUSED,
    UPDATE_RESUMED,
    UPDATE_ROLLED_BACK,
)

CREATE_GROUP = command(
    "approval", "group", "create", CreateGroup, Group, summary="Create a computer group."
)
RENAME_GROUP = command(
    "approval", "group", "rename", RenameGroup, Group, summary="Rename a computer group."
)
MOVE_GROUP = command(
    "approval", "group", "move", MoveGroup, Group, summary="Move a group under another parent."
)
DELETE_GROUP = command(
    "approval", "group", "delete", DeleteGroup, GroupDeleted, summary="Delete an empty group."
)
LIST_GROUPS = command(
    "approval", "group", "list", ListGroups, GroupList, summary="The group tree with counts."
)
CHANGE_MEMBERSHIP = command(
    "approval",
    "membership",
    "change",
    ChangeMembership,
    MembershipResult,
    summary="Add or remove computers.",
)
APPROVE = command(
    "approval", "update", "approve", Approve, ApproveResult, summary="Approve updates for groups."
)
DECLINE = command(
    "approval", "update", "decline", Decline, DeclineResult, summary="Decline updates."
)
LIST_UPDATES = command(
    "approval",
    "update",
    "list",
    ListUpdates,
    UpdateList,
    summary="Updates with their approval state.",
)
UPDATE_APPROVALS = command(
    "approval",
    "update",
    "approvals",
    UpdateApprovals,
    UpdateApprovalList,
    summary="Every group where an update is approved, explicit or inherited, with why.",
)
GROUP_APPROVALS = command(
    "approval",
    "group",
    "approvals",
    GroupApprovals,
    GroupApprovalList,
    summary="A group's approvals, with why.",
)
COMPUTER_APPROVALS = command(
    "approval",
    "computer",
    "approvals",
    ComputerApprovals,
    ComputerApprovalList,
    summary="What applies to a computer, resolved across its groups.",
)
CREATE_RULE = command(
    "approval", "rule", "create", CreateRule, Rule, summary="Create an auto-approval rule."
)
EDIT_RULE = command(
    "approval", "rule", "edit", EditRule, Rule, summary="Replace a rule's definition."
)
DELETE_RULE = command(
    "approval", "rule", "delete", RuleRef, RuleDeleted, summary="Delete a rule (approvals stay)."
)
RUN_RULE = command(
    "approval",
    "rule",
    "run",
    RunRule,
    RuleRan,
    summary="Apply a rule to the updates already known (or preview it with dry_run).",
)
LIST_RULES = command(
    "approval", "rule", "list", ListRules, RuleList, summary="Every auto-approval rule."
)
PAUSE_UPDATE = command(
    "approval",
    "update",
    "pause",
    PauseUpdate,
    UpdateControlled,
    summary="Pause an update fleet-wide or in a group: no new install starts there.",
)
RESUME_UPDATE = command(
    "approval",
    "update",
    "resume",
    ResumeUpdate,
    UpdateControlled,
    summary="Resume a paused update fleet-wide or in a group.",
)
ROLLBACK_UPDATE = command(
    "approval",
    "update",
    "rollback",
    RollbackUpdate,
    UpdateControlled,
    summary="Roll an update back: its install approvals become uninstall.",
)

COMMANDS = (
    CREATE_GROUP,
    RENAME_GROUP,
    MOVE_GROUP,
    DELETE_GROUP,
    LIST_GROUPS,
    CHANGE_MEMBERSHIP,
    APPROVE,
    DECLINE,
    LIST_UPDATES,
    UPDATE_APPROVALS,
    GROUP_APPROVALS,
    COMPUTER_APPROVALS,
    CREATE_RULE,
    EDIT_RULE,
    DELETE_RULE,
    RUN_RULE,
    LIST_RULES,
    PAUSE_UPDATE,
    RESUME_UPDATE,
    ROLLBACK_UPDATE,
)
