"""Rollouts (rings): an approval given to an ordered list of groups one ring at a time
(docs/product.md, rollouts). Pure rules: which rings are allowed, what a gate makes of
reporting's counts, and how a rollout moves (start, gate passed / waiting / held, go,
cancel, completed).

A ring's approval is an ordinary explicit approval (`ring_approval`), set on the ring's group
by the use case through the same path as an operator's approval, so inheritance, resolution
and the read copies need nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from libs.contracts import approval as a
from libs.contracts import reporting as r
from libs.contracts import rollouts as ro
from libs.contracts.rings import RingGate
from libs.service.errors import Conflict, InvalidInput
from services.approval.domain import deadlines
from services.approval.domain.pauses import Pauses
from services.approval.domain.tree import Explicit, Paused, Tree
from services.approval.domain.updates import Update

ACTIVE: tuple[ro.RolloutState, ...] = ("running", "held")
"""States in which a rollout still has something to do (at most one per update)."""


@dataclass(frozen=True)
class RingRecord:
    """One ring as kept: its group and, once approved, when and by what."""

    group_id: str
    started_at: datetime | None = None
    started_by: str | None = None


@dataclass(frozen=True)
class RolloutRecord:
    """A rollout as kept."""

    rollout_id: str
    update_id: str
    rings: tuple[RingRecord, ...]
    action: ro.RolloutAction
    deadline: a.DeadlineChoice
    gate: RingGate
    state: ro.RolloutState
    started_at: datetime
    started_by: str
    figures: ro.GateFigures | None = None
    held_because: str | None = None
    finished_at: datetime | None = None

    @property
    def rings_started(self) -> int:
        return sum(1 for ring in self.rings if ring.started_at is not None)

    @property
    def next_ring(self) -> int | None:
        """Index (0-based) of the next ring to start; None when every ring has started."""
        started = self.rings_started
        return started if started < len(self.rings) else None

    def next_due(self) -> datetime | None:
        """When the delay before the next ring ends; None when nothing is left to start or
        the rollout is not running (held waits for an operator, not for time)."""
        if self.state != "running" or self.next_ring is None:
            return None
        last = self.rings[self.next_ring - 1].started_at
        assert last is not None  # noqa: S101 - rings start in order
        return last + timedelta(hours=self.gate.delay_hours)

    def measured_groups(self) -> list[str]:
        """The groups of the rings started so far: what the next gate counts over."""
        return [ring.group_id for ring in self.rings if ring.started_at is not None]


def check_rings(
    tree: Tree, ring_ids: Sequence[str], references: Sequence[str], field: str = "rings"
) -> None:
    """At least two rings, distinct, and none below an earlier ring: it would inherit the
    earlier ring's approval and so start with it, not after its gate (so All computers,
    above every group, can only be the last ring). `references` are the rings as given
    (for the errors), `field` the name of their list in the command."""
    if len(ring_ids) < ro.MIN_RINGS:
        raise InvalidInput(
            f"{field}: a rollout needs at least {ro.MIN_RINGS} rings (groups), not "
            f"{len(ring_ids)}; to approve one group at once, approve the update",
            field=field,
        )
    for i, group in enumerate(ring_ids):
        at = f"{field}[{i}]"
        for j, earlier in enumerate(ring_ids[:i]):
            if earlier == group:
                raise InvalidInput(
                    f"{at}: group {references[i]!r} is already ring {j + 1}; each group "
                    "may be one ring only",
                    field=at,
                )
            if earlier in tree.ancestors(group):
                raise InvalidInput(
                    f"{at}: group {references[i]!r} is below ring {j + 1} "
                    f"({references[j]!r}), so it would get the update with that ring; "
                    "a later ring must not be inside an earlier one (All computers can only "
                    "be the last ring)",
                    field=at,
                )


def check_deadline(action: ro.RolloutAction, deadline: a.DeadlineChoice) -> None:
    """Deadlines go with required installs only (docs/product.md section 5)."""
    if action not in a.ACTIONS_WITH_DEADLINE and deadline.kind != "none":
        raise InvalidInput(
            f"deadline: {deadline.kind!r} is not allowed with action {action!r}; deadlines "
            f"apply to {' and '.join(a.ACTIONS_WITH_DEADLINE)}",
            field="deadline",
        )


def start(
    *,
    rollout_id: str,
    update_id: str,
    ring_ids: Sequence[str],
    action: ro.RolloutAction,
    deadline: a.DeadlineChoice,
    gate: RingGate,
    now: datetime,
    by: str,
) -> RolloutRecord:
    """A new rollout, its first ring started now."""
    rings = (
        RingRecord(ring_ids[0], now, "start"),
        *(RingRecord(group) for group in ring_ids[1:]),
    )
    return RolloutRecord(
        rollout_id=rollout_id,
        update_id=update_id,
        rings=rings,
        action=action,
        deadline=deadline,
        gate=gate,
        state="running",
        started_at=now,
        started_by=by,
    )


def ring_approval(rollout: RolloutRecord, now: datetime) -> Explicit:
    """The explicit approval a ring's group gets when the ring starts: the rollout's action,
    its deadline resolved from now (a relative one counts from the ring's start)."""
    deadline = deadlines.resolve(rollout.deadline.kind, rollout.deadline.at, now)
    return Explicit(rollout.action, deadline, now, f"rollout:{rollout.rollout_id}")


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _fmt(value: float) -> str:
    return f"{value:g}"


def measure(gate: RingGate, counts: r.StateCounts, rings: int, now: datetime) -> ro.GateFigures:
    """What the gate makes of reporting's counts over the rings started so far.

    Among the computers in contact that reported the update as applying to them (installed,
    pending restart, needed or failed; not applicable ones are left out): fewer than
    `min_reports` of them -> waiting; failed at or above `max_failed_percent` -> held;
    installed (pending restart included) at or above `min_installed_percent` -> passed;
    otherwise waiting. Shares are compared on whole counts, never on rounded percents.
    """
    installed = counts.installed + counts.installed_pending_restart
    reported = installed + counts.needed + counts.failed
    installed_pct, failed_pct = _percent(installed, reported), _percent(counts.failed, reported)
    verdict: ro.Verdict
    if reported < gate.min_reports:
        verdict = "waiting"
        why = f"{reported} report(s) so far, at least {gate.min_reports} needed"
    elif counts.failed * 100 >= gate.max_failed_percent * reported:
        verdict = "held"
        why = (
            f"{_fmt(failed_pct)}% failed ({counts.failed} of {reported} reports): failures "
            f"must stay below {_fmt(gate.max_failed_percent)}%"
        )
    elif installed * 100 >= gate.min_installed_percent * reported:
        verdict = "passed"
        why = (
            f"{_fmt(installed_pct)}% installed (at least {_fmt(gate.min_installed_percent)}% "
            f"needed), {_fmt(failed_pct)}% failed (below {_fmt(gate.max_failed_percent)}% "
            f"needed), {reported} reports (at least {gate.min_reports} needed)"
        )
    else:
        verdict = "waiting"
        why = (
            f"{_fmt(installed_pct)}% installed ({installed} of {reported} reports), at least "
            f"{_fmt(gate.min_installed_percent)}% needed"
        )
    return ro.GateFigures(
        measured_at=now,
        rings_measured=rings,
        reported=reported,
        installed=installed,
        needed=counts.needed,
        failed=counts.failed,
        no_status=counts.no_status,
        not_reporting=counts.not_reporting,
        installed_percent=installed_pct,
        failed_percent=failed_pct,
        verdict=verdict,
        why=why,
    )


def holding_pause(rollout: RolloutRecord, pauses: Pauses) -> Paused | None:
    """The pause that keeps the rollout from starting its next ring, if any: a fleet-wide
    pause of its update, or a pause on the group of a ring started so far or of the next
    one. A pause on a group above a ring does not count: the ring's approval is explicit on
    its own group, which such a pause does not hold (domain/pauses.py)."""
    fleet = pauses.get(None)
    if fleet is not None:
        return fleet
    reached = rollout.measured_groups()
    if rollout.next_ring is not None:
        reached.append(rollout.rings[rollout.next_ring].group_id)
    for group in reached:
        if group in pauses:
            return pauses[group]
    return None


def while_paused(figures: ro.GateFigures, pause: Paused | None, where: str) -> ro.GateFigures:
    """A gate that would pass waits while a pause holds the rollout (`holding_pause`;
    `where` names it: "fleet-wide", "on Pilot"): the next ring must not be approved under
    a pause an operator set to stop the update spreading. Its delay is over, so it is
    measured again at each run and starts once the pause is lifted. A gate that holds (too
    many failures) still holds; one waiting for reports still waits."""
    if pause is None or figures.verdict != "passed":
        return figures
    why = (
        f"paused {where} by {pause.by} ({pause.reason}): the next ring starts once the "
        f"update is resumed; the gate would pass: {figures.why}"
    )
    return figures.model_copy(update={"verdict": "waiting", "why": why})


def due(rollout: RolloutRecord, now: datetime) -> bool:
    """The next ring's delay is over: its gate is to be measured."""
    at = rollout.next_due()
    return at is not None and now >= at


def _start_next(rollout: RolloutRecord, now: datetime, by: str) -> RolloutRecord:
    index = rollout.next_ring
    if index is None:
        raise Conflict(f"rollout: {rollout.rollout_id} has no ring left to start", field="rollout")
    rings = list(rollout.rings)
    rings[index] = replace(rings[index], started_at=now, started_by=by)
    last = index == len(rings) - 1
    return replace(
        rollout,
        rings=tuple(rings),
        state="completed" if last else "running",
        held_because=None,
        finished_at=now if last else None,
    )


def after_gate(rollout: RolloutRecord, figures: ro.GateFigures, now: datetime) -> RolloutRecord:
    """The rollout once its gate has been measured: the next ring started (passed), held
    with why, or unchanged but for the figures (waiting)."""
    measured = replace(rollout, figures=figures)
    if figures.verdict == "passed":
        return _start_next(measured, now, "gate")
    if figures.verdict == "held":
        return replace(measured, state="held", held_because=figures.why)
    return measured


def _check_active(rollout: RolloutRecord, doing: str) -> None:
    if rollout.state not in ACTIVE:
        raise Conflict(
            f"rollout: {rollout.rollout_id} is {rollout.state}; only a running or held rollout "
            f"can be {doing}",
            field="rollout",
        )


def go(rollout: RolloutRecord, now: datetime, who: str) -> RolloutRecord:
    """An operator's go: the next ring starts now, whatever its delay and gate; a held
    rollout runs again."""
    _check_active(rollout, "given go")
    return _start_next(rollout, now, f"go:{who}")


def cancel(rollout: RolloutRecord, now: datetime) -> RolloutRecord:
    """No further ring starts; the approvals already given stay."""
    _check_active(rollout, "cancelled")
    return replace(rollout, state="cancelled", held_because=None, finished_at=now)


def ring_view(rollout: RolloutRecord, index: int, names: Mapping[str, str]) -> ro.Ring:
    ring = rollout.rings[index]
    return ro.Ring(
        position=index + 1,
        group_id=ring.group_id,
        group_name=names.get(ring.group_id, "(deleted)"),
        started_at=ring.started_at,
        started_by=ring.started_by,
    )


def view(rollout: RolloutRecord, update: Update, names: Mapping[str, str]) -> ro.Rollout:
    """The rollout as commands and events show it."""
    return ro.Rollout(
        rollout_id=rollout.rollout_id,
        update_id=rollout.update_id,
        kb=update.kb,
        title=update.title,
        action=rollout.action,
        deadline=rollout.deadline,
        gate=rollout.gate,
        state=rollout.state,
        rings=[ring_view(rollout, i, names) for i in range(len(rollout.rings))],
        rings_started=rollout.rings_started,
        next_ring_due_at=rollout.next_due(),
        gate_figures=rollout.figures,
        held_because=rollout.held_because,
        started_at=rollout.started_at,
        started_by=rollout.started_by,
        finished_at=rollout.finished_at,
    )
