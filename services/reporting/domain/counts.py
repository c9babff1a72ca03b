"""Computers per state (docs/product.md section 6): the counts a report shows and how the
per-update counters move with each state change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from libs.contracts import reporting as r
from libs.contracts.approval import ActionName
from libs.domain.agent_reports import NO_REPORT, RESTART_COMPLETES, Observation

COUNTED = ("installed", "needed", "failed", "installed_pending_restart", "not_applicable")
"""The states a report counts (`none` rows are placeholders, not reports)."""

APPLIES = ("installed", "needed", "failed", "installed_pending_restart")
"""The states that say an update applies to the computer."""

BEHIND = ("needed", "failed")
"""The states of computers that still need an update: most needed first means most of these."""

HOLDS = ("installed", "installed_pending_restart", "failed")
"""The states of a computer that still holds an update (behind on an uninstall): under an
uninstall approval a failure is the uninstall's, which left the update in place; the
scheduler sends the uninstall again for the same states (libs/domain/agent_reports.py)."""

LACKS = ("needed", "failed", "no_status")
"""The states of a computer that does not have an update (behind on a required install)."""

NO_STATUS = "no_status"
NOT_REPORTING = "not_reporting"

StatesByUpdate = dict[str, dict[str, int]]
"""Per update: computers in each state."""


@dataclass(frozen=True, order=True)
class CounterMove:
    """One per-update counter moved by `n` computers (negative: fewer)."""

    update_id: str
    state: str
    n: int


def counts_of(by_state: Mapping[str, int], targeted: int = 0) -> r.StateCounts:
    """The counts shown for one update; `by_state` may carry no_status and not_reporting
    already, and `targeted` computers without any of these counts have no status."""
    reported = sum(by_state.get(s, 0) for s in (*COUNTED, NO_STATUS, NOT_REPORTING))
    applies = sum(by_state.get(s, 0) for s in APPLIES)
    return r.StateCounts(
        applies_to=applies,
        installed=by_state.get("installed", 0),
        needed=by_state.get("needed", 0),
        failed=by_state.get("failed", 0),
        installed_pending_restart=by_state.get("installed_pending_restart", 0),
        not_applicable=by_state.get("not_applicable", 0),
        no_status=by_state.get(NO_STATUS, 0) + max(targeted - reported, 0),
        not_reporting=by_state.get(NOT_REPORTING, 0),
    )


@dataclass(frozen=True)
class Reach:
    """Who an update's approvals target, and how many of them reported on it or are silent
    (targeted_both: reported and silent)."""

    targeted: int = 0
    targeted_reported: int = 0
    targeted_silent: int = 0
    targeted_both: int = 0


def fleet_counts(
    reported: Mapping[str, int], silent: Mapping[str, int], reach: Reach
) -> r.StateCounts:
    """One update's counts over the fleet from its counters (`reported`: computers per
    state), the states of its silent computers (`silent`) and its reach: a silent computer
    counts as not_reporting only [decided, docs/product.md section 6]; a targeted computer
    in contact that never reported has no status."""
    shown = {s: reported.get(s, 0) - silent.get(s, 0) for s in COUNTED}
    shown[NOT_REPORTING] = (
        sum(silent.get(s, 0) for s in COUNTED) + reach.targeted_silent - reach.targeted_both
    )
    shown[NO_STATUS] = (
        reach.targeted - reach.targeted_reported - reach.targeted_silent + reach.targeted_both
    )
    return counts_of(shown)


def total_reach(reaches: Iterable[Reach]) -> Reach:
    """Several updates' reaches added up: `fleet_counts` is a sum of them, so the counts
    summed over updates are `fleet_counts` of their summed counters, silent states and
    reaches (the overview's totals without a count per update)."""
    found = list(reaches)
    return Reach(
        targeted=sum(x.targeted for x in found),
        targeted_reported=sum(x.targeted_reported for x in found),
        targeted_silent=sum(x.targeted_silent for x in found),
        targeted_both=sum(x.targeted_both for x in found),
    )


def behind_states(action: ActionName) -> tuple[str, ...]:
    """The states of a computer behind on an approval [docs/product.md section 6]: it still
    holds an update to uninstall, or lacks a required one; an available install or a do not
    install is never behind (never overdue, never against compliance)."""
    if action == "required_install":
        return LACKS
    if action == "uninstall":
        return HOLDS
    return ()


def is_behind(action: ActionName, state: str) -> bool:
    """Whether a computer in `state` (no_status: never reported) is behind on `action`."""
    return state in behind_states(action)


def sum_counts(counts: Sequence[r.StateCounts]) -> r.StateCounts:
    """Counts added up field by field (a group's totals over its updates)."""
    fields = r.StateCounts.model_fields
    return r.StateCounts(**{f: sum(getattr(c, f) for c in counts) for f in fields})


def tally(states: Iterable[str], *, silent: bool = False) -> r.StateCounts:
    """The counts of one computer's updates, given their states; a silent computer's
    updates all count as not reporting."""
    found = Counter(states)
    if silent:
        return counts_of({NOT_REPORTING: sum(found.values())})
    return counts_of(dict(found))


def most_behind(per_update: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Updates with the most computers needing them (needed or failed) first."""
    return sorted(per_update, key=lambda u: -sum(per_update[u].get(s, 0) for s in BEHIND))


def state_totals(per_update: Mapping[str, Mapping[str, int]]) -> Counter[str]:
    """Computers per state, summed over updates."""
    totals: Counter[str] = Counter()
    for states_here in per_update.values():
        totals.update(states_here)
    return totals


def gauged_states(counts: r.StateCounts) -> dict[str, int]:
    """The states a per-update gauge shows (`applies_to` is a sum of others)."""
    return {state: n for state, n in counts.model_dump().items() if state != "applies_to"}


def counter_deltas(changes: Iterable[tuple[Observation, str]]) -> list[CounterMove]:
    """How the counters move with new states: (observation, state it replaces) each takes
    one from the state it leaves (unless it was a placeholder) and adds one to its own."""
    deltas: Counter[tuple[str, str]] = Counter()
    for seen, before in changes:
        if before != NO_REPORT:
            deltas[seen.update_id, before] -= 1
        deltas[seen.update_id, seen.state] += 1
    return _moves(deltas)


def restart_deltas(update_ids: Iterable[str]) -> list[CounterMove]:
    """How the counters move when a restart completes these updates' pending installs."""
    pending, done = RESTART_COMPLETES
    deltas: Counter[tuple[str, str]] = Counter()
    for update_id in update_ids:
        deltas[update_id, pending] -= 1
        deltas[update_id, done] += 1
    return _moves(deltas)


@dataclass(frozen=True, order=True)
class ComputerMove:
    """One per-computer counter moved by `n` updates (negative: fewer)."""

    computer_id: str
    state: str
    n: int


def computer_deltas(changes: Iterable[tuple[Observation, str]]) -> list[ComputerMove]:
    """How the per-computer counters move with new states (the fleet list's columns)."""
    deltas: Counter[tuple[str, str]] = Counter()
    for seen, before in changes:
        if before != NO_REPORT:
            deltas[seen.computer_id, before] -= 1
        deltas[seen.computer_id, seen.state] += 1
    return [ComputerMove(c, s, n) for (c, s), n in sorted(deltas.items()) if n]


def _moves(deltas: Counter[tuple[str, str]]) -> list[CounterMove]:
    """The counters that move, in one order (so concurrent writers lock them alike)."""
    return [CounterMove(u, s, n) for (u, s), n in sorted(deltas.items()) if n]
