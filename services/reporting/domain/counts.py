"""Computers per state (docs/product.md section 6): the counts a report shows and how the
per-update counters move with each state change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from libs.contracts import reporting as r
from libs.domain.agent_reports import NO_REPORT, RESTART_COMPLETES, Observation

COUNTED = ("installed", "needed", "failed", "installed_pending_restart", "not_applicable")
"""The states a report counts (`none` rows are placeholders, not reports)."""

APPLIES = ("installed", "needed", "failed", "installed_pending_restart")
"""The states that say an update applies to the computer."""

BEHIND = ("needed", "failed")
"""The states of computers that still need an update: most needed first means most of these."""

StatesByUpdate = dict[str, dict[str, int]]
"""Per update: computers in each state."""


@dataclass(frozen=True, order=True)
class CounterMove:
    """One per-update counter moved by `n` computers (negative: fewer)."""

    update_id: str
    state: str
    n: int


def counts_of(by_state: Mapping[str, int], targeted: int) -> r.StateCounts:
    """The counts shown for one update; `targeted` computers without a report have no status."""
    reported = sum(by_state.get(s, 0) for s in COUNTED)
    applies = sum(by_state.get(s, 0) for s in APPLIES)
    return r.StateCounts(
        applies_to=applies,
        installed=by_state.get("installed", 0),
        needed=by_state.get("needed", 0),
        failed=by_state.get("failed", 0),
        installed_pending_restart=by_state.get("installed_pending_restart", 0),
        not_applicable=by_state.get("not_applicable", 0),
        no_status=max(targeted - reported, 0),
    )


def sum_counts(counts: Sequence[r.StateCounts]) -> r.StateCounts:
    """Counts added up field by field (a group's totals over its updates)."""
    fields = r.StateCounts.model_fields
    return r.StateCounts(**{f: sum(getattr(c, f) for c in counts) for f in fields})


def tally(states: Iterable[str]) -> r.StateCounts:
    """The counts of one computer's updates, given their states (nothing is targeted)."""
    return counts_of(dict(Counter(states)), 0)


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


def _moves(deltas: Counter[tuple[str, str]]) -> list[CounterMove]:
    """The counters that move, in one order (so concurrent writers lock them alike)."""
    return [CounterMove(u, s, n) for (u, s), n in sorted(deltas.items()) if n]
