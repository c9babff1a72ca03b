"""Rollouts (rings): an approval given to an ordered list of groups one ring at a time, each
next ring after a delay and a success gate measured by reporting (docs/product.md, rollouts).

The approval service keeps them and publishes every transition on `lockgate.events`
(`approval.rollout.*`), so other systems can follow a rollout as it goes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from pydantic import AwareDatetime, Field

from libs.contracts.approval import DeadlineChoice
from libs.contracts.rings import RingGate
from libs.contracts.spec import Contract, command, event

RolloutState = Literal["running", "held", "completed", "cancelled"]
ROLLOUT_STATES: tuple[RolloutState, ...] = get_args(RolloutState)
RolloutAction = Literal["required_install", "available_install"]
Verdict = Literal["waiting", "passed", "held"]
MIN_RINGS, MAX_RINGS = 2, 20

RequestedBy = Field(
    default="operator",
    min_length=1,
    max_length=200,
    description="Who asks (kept in the rollout and its events); the console fills it from "
    "its caller where it fills `requested_by`.",
)


class GateFigures(Contract):
    """What reporting counted for a gate, over the computers of the rings started so far,
    and what the gate made of it."""

    measured_at: AwareDatetime = Field(description="When approval measured (its clock).")
    rings_measured: int = Field(description="Rings counted (1 to this position).")
    reported: int = Field(
        description="Computers in those rings, in contact, that reported the update as "
        "installed, pending restart, needed or failed (not applicable ones are left out)."
    )
    installed: int = Field(description="Of those, installed (restart pending included).")
    needed: int = Field(description="Of those, needed (not installed yet).")
    failed: int = Field(description="Of those, whose last install attempt failed.")
    no_status: int = Field(description="Targeted computers that never reported on it.")
    not_reporting: int = Field(description="Computers silent for too long (not counted).")
    installed_percent: float = Field(description="installed / reported, in percent.")
    failed_percent: float = Field(description="failed / reported, in percent.")
    verdict: Verdict = Field(
        description="`passed`: the next ring may start; `waiting`: too few reports, not "
        "enough installed yet, or the update paused where the rollout reaches; `held`: "
        "too many failures, the rollout stops."
    )
    why: str = Field(description="The verdict in words, with the figures and the thresholds.")


class Ring(Contract):
    """One ring of a rollout."""

    position: int = Field(description="1 for the first ring.")
    group_id: str = Field(description="The ring's group.")
    group_name: str = Field(description="Its name (`(deleted)` once the group is gone).")
    started_at: AwareDatetime | None = Field(description="When it was approved; null: not yet.")
    started_by: str | None = Field(
        description="`start` (the first ring), `gate` (its gate passed), `go:<who>` (an "
        "operator's go); null: not started."
    )


class Rollout(Contract):
    """A rollout as it stands."""

    rollout_id: str = Field(description="Stable id (UUID).")
    update_id: str = Field(description="The update rolled out.")
    kb: str | None = Field(description="Its KB number, if any.")
    title: str = Field(description="Its title.")
    action: RolloutAction = Field(description="What each ring's approval sets.")
    deadline: DeadlineChoice = Field(
        description="Each ring's deadline as chosen; a relative one counts from the ring's start."
    )
    gate: RingGate = Field(description="The gate between two rings.")
    state: RolloutState = Field(
        description="`running` (rings still to start), `held` (a gate failed: waits for an "
        "operator's go or cancel), `completed` (every ring approved), `cancelled`."
    )
    rings: list[Ring] = Field(description="In order.")
    rings_started: int = Field(description="How many rings are approved so far.")
    next_ring_due_at: AwareDatetime | None = Field(
        description="When the delay before the next ring ends (the gate is measured from "
        "then on); null when no ring is left or the rollout is not running."
    )
    gate_figures: GateFigures | None = Field(
        description="The latest measure of the gate before the next ring; null: not measured."
    )
    held_because: str | None = Field(description="Why it is held; null unless held.")
    started_at: AwareDatetime = Field(description="When it was started.")
    started_by: str = Field(description="Who started it, or `rule:<rule id>`.")
    finished_at: AwareDatetime | None = Field(description="When it completed or was cancelled.")


class StartRollout(Contract):
    """Start a rollout of one update over rings of groups: the first ring is approved at once,
    each next one after the gate."""

    update: str = Field(max_length=200, description="Update id or KB number.")
    rings: list[str] = Field(
        min_length=MIN_RINGS,
        max_length=MAX_RINGS,
        description=f"Group ids or names, first ring first ({MIN_RINGS}-{MAX_RINGS}); a group "
        "may not be below an earlier ring (it would already inherit the approval), so All "
        "computers can only be the last.",
    )
    action: RolloutAction = Field(
        default="required_install",
        description="`required_install` or `available_install`, set on each ring's group.",
    )
    deadline: DeadlineChoice = Field(
        default_factory=DeadlineChoice,
        description="Deadline per ring (required install only); a relative one counts from "
        "each ring's start.",
    )
    gate: RingGate = Field(default_factory=RingGate, description="The gate between rings.")
    requested_by: str = RequestedBy


class RolloutRef(Contract):
    """Name one rollout."""

    rollout: str = Field(
        max_length=200,
        description="Rollout id, or an update id or KB number (its latest rollout).",
    )


class RolloutDecision(Contract):
    """An operator's go or cancel."""

    rollout: str = Field(
        max_length=200,
        description="Rollout id, or an update id or KB number (its latest rollout).",
    )
    reason: str = Field(default="", max_length=1000, description="Why (kept in the event).")
    requested_by: str = RequestedBy


class ListRollouts(Contract):
    """Ask for rollouts, newest first."""

    states: list[RolloutState] = Field(
        default_factory=list, description="Only rollouts in one of these states; empty: all."
    )
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many.")


class RolloutList(Contract):
    """Rollouts, newest first."""

    rollouts: list[Rollout] = Field(description="The rollouts.")


class RolloutTransition(Contract):
    """A rollout moved: started, a ring started, a gate passed or held, an operator's go,
    completed or cancelled."""

    rollout: Rollout = Field(description="The rollout after the move.")
    ring: Ring | None = Field(
        default=None,
        description="The ring concerned: the one started, or the one whose gate was measured "
        "(the next ring); null for started, completed and cancelled.",
    )
    figures: GateFigures | None = Field(
        default=None, description="The gate's figures (gate passed or held; go: the latest)."
    )
    by: str = Field(
        description="`gate` (the task measuring gates), `rule:<id>`, or who started, gave go "
        "or cancelled."
    )
    reason: str = Field(default="", description="Why, in words (held: the figures).")


# Examples shown in docs/asyncapi.yaml (validated by their models when this module loads).
_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_GATE = RingGate(delay_hours=24, min_installed_percent=95, max_failed_percent=2, min_reports=20)
_RINGS = [
    Ring(
        position=1,
        group_id="6b3e2f0a-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
        group_name="Pilot",
        started_at=_AT,
        started_by="start",
    ),
    Ring(
        position=2,
        group_id="7c4f3a1b-2d5e-4f6a-9b0c-1d2e3f4a5b6c",
        group_name="Early",
        started_at=None,
        started_by=None,
    ),
    Ring(
        position=3,
        group_id="8d5a4b2c-3e6f-4a7b-8c1d-2e3f4a5b6c7d",
        group_name="Broad",
        started_at=None,
        started_by=None,
    ),
]
_PASSED = GateFigures(
    measured_at=_AT + timedelta(hours=24),
    rings_measured=1,
    reported=40,
    installed=39,
    needed=1,
    failed=0,
    no_status=2,
    not_reporting=0,
    installed_percent=97.5,
    failed_percent=0.0,
    verdict="passed",
    why="97.5% installed (at least 95% needed), 0.0% failed (below 2% needed), 40 reports "
    "(at least 20 needed)",
)
_HELD = _PASSED.model_copy(
    update={
        "installed": 36,
        "needed": 1,
        "failed": 3,
        "installed_percent": 90.0,
        "failed_percent": 7.5,
        "verdict": "held",
        "why": "7.5% failed (3 of 40 reports): failures must stay below 2%",
    }
)
_RUNNING = Rollout(
    rollout_id="3f2e1d0c-9b8a-4765-8432-10fedcba9876",
    update_id="0496b64b-4a42-52f3-a887-fcddb4f2f23d",
    kb="5073455",
    title="2026-02 Security Update for Windows (KB5073455)",
    action="required_install",
    deadline=DeadlineChoice(kind="one_week"),
    gate=_GATE,
    state="running",
    rings=_RINGS,
    rings_started=1,
    next_ring_due_at=_AT + timedelta(hours=24),
    gate_figures=None,
    held_because=None,
    started_at=_AT,
    started_by="operator",
    finished_at=None,
)
_SECOND = _RINGS[1].model_copy(update={"started_at": _PASSED.measured_at, "started_by": "gate"})
_AFTER_GATE = _RUNNING.model_copy(
    update={
        "rings": [_RINGS[0], _SECOND, _RINGS[2]],
        "rings_started": 2,
        "next_ring_due_at": _PASSED.measured_at + timedelta(hours=24),
        "gate_figures": _PASSED,
    }
)
_HELD_ROLLOUT = _RUNNING.model_copy(
    update={
        "state": "held",
        "next_ring_due_at": None,
        "gate_figures": _HELD,
        "held_because": _HELD.why,
    }
)
_DONE_AT = _AT + timedelta(hours=48)
_COMPLETED = _AFTER_GATE.model_copy(
    update={
        "rings": [
            _RINGS[0],
            _SECOND,
            _RINGS[2].model_copy(update={"started_at": _DONE_AT, "started_by": "gate"}),
        ],
        "rings_started": 3,
        "state": "completed",
        "next_ring_due_at": None,
        "finished_at": _DONE_AT,
    }
)

ROLLOUT_STARTED = event(
    "approval",
    "rollout",
    "started",
    RolloutTransition,
    summary="A rollout started; its first ring is approved in the same transaction.",
    subject="the rollout id",
    example=RolloutTransition(rollout=_RUNNING, by="operator"),
)
RING_STARTED = event(
    "approval",
    "rollout",
    "ring-started",
    RolloutTransition,
    summary="A ring of a rollout was approved (the first at start, the next after its gate "
    "or an operator's go).",
    subject="the rollout id",
    example=RolloutTransition(rollout=_AFTER_GATE, ring=_SECOND, figures=_PASSED, by="gate"),
)
GATE_PASSED = event(
    "approval",
    "rollout",
    "gate-passed",
    RolloutTransition,
    summary="A rollout's gate passed with these figures; the next ring starts.",
    subject="the rollout id",
    example=RolloutTransition(
        rollout=_AFTER_GATE, ring=_SECOND, figures=_PASSED, by="gate", reason=_PASSED.why
    ),
)
GATE_HELD = event(
    "approval",
    "rollout",
    "gate-held",
    RolloutTransition,
    summary="A rollout's gate failed: the rollout is held, with the figures and why, until an "
    "operator gives go or cancels it.",
    subject="the rollout id",
    example=RolloutTransition(
        rollout=_HELD_ROLLOUT, ring=_RINGS[1], figures=_HELD, by="gate", reason=_HELD.why
    ),
)
ROLLOUT_GO = event(
    "approval",
    "rollout",
    "go-given",
    RolloutTransition,
    summary="An operator gave go: the next ring starts now, whatever its delay and gate.",
    subject="the rollout id",
    example=RolloutTransition(
        rollout=_AFTER_GATE.model_copy(
            update={
                "rings": [
                    _RINGS[0],
                    _SECOND.model_copy(update={"started_by": "go:alice"}),
                    _RINGS[2],
                ]
            }
        ),
        ring=_SECOND.model_copy(update={"started_by": "go:alice"}),
        figures=_HELD,
        by="alice",
        reason="the three failures are lab machines with full disks",
    ),
)
ROLLOUT_COMPLETED = event(
    "approval",
    "rollout",
    "completed",
    RolloutTransition,
    summary="Every ring of a rollout is approved.",
    subject="the rollout id",
    example=RolloutTransition(rollout=_COMPLETED, by="gate"),
)
ROLLOUT_CANCELLED = event(
    "approval",
    "rollout",
    "cancelled",
    RolloutTransition,
    summary="A rollout was cancelled: no further ring starts; approvals already given stay.",
    subject="the rollout id",
    example=RolloutTransition(
        rollout=_HELD_ROLLOUT.model_copy(
            update={"state": "cancelled", "held_because": None, "finished_at": _DONE_AT}
        ),
        by="alice",
        reason="superseded by next month's update",
    ),
)

EVENTS = (
    ROLLOUT_STARTED,
    RING_STARTED,
    GATE_PASSED,
    GATE_HELD,
    ROLLOUT_GO,
    ROLLOUT_COMPLETED,
    ROLLOUT_CANCELLED,
)

START_ROLLOUT = command(
    "approval",
    "rollout",
    "start",
    StartRollout,
    Rollout,
    summary="Start a rollout of an update over rings of groups.",
)
SHOW_ROLLOUT = command(
    "approval", "rollout", "show", RolloutRef, Rollout, summary="One rollout with its gate figures."
)
LIST_ROLLOUTS = command(
    "approval", "rollout", "list", ListRollouts, RolloutList, summary="Rollouts, newest first."
)
GO_ROLLOUT = command(
    "approval",
    "rollout",
    "go",
    RolloutDecision,
    Rollout,
    summary="Start a rollout's next ring now, whatever its delay and gate.",
)
CANCEL_ROLLOUT = command(
    "approval",
    "rollout",
    "cancel",
    RolloutDecision,
    Rollout,
    summary="Cancel a rollout (approvals already given stay).",
)

COMMANDS = (START_ROLLOUT, SHOW_ROLLOUT, LIST_ROLLOUTS, GO_ROLLOUT, CANCEL_ROLLOUT)
