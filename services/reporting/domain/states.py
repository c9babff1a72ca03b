"""How agent reports move the state of one update on one computer (docs/product.md section 6).

Reports may arrive late, twice or out of order: a report older than what a row already
holds never moves it. At the same report time an install result outranks a detection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from libs.contracts.catalog import ReturnOutcome

NONE = "none"
"""A row locked before its first report (not a state anyone sees)."""

INSTALL_STATE: dict[ReturnOutcome, str] = {
    "success": "installed",
    "success_restart_required": "installed_pending_restart",
    "failure": "failed",
}


@dataclass(frozen=True)
class Observation:
    """What one report says of one update on one computer."""

    computer_id: str
    update_id: str
    reported_at: datetime
    state: str
    rank: int
    """0 for a detection, 1 for an install result (wins at equal report times)."""
    return_code: int | None = None


def detection(computer_id: str, update_id: str, reported_at: datetime, state: str) -> Observation:
    return Observation(computer_id, update_id, reported_at, state, 0)


def install(
    computer_id: str,
    update_id: str,
    reported_at: datetime,
    outcome: ReturnOutcome,
    return_code: int,
    *,
    uninstall: bool = False,
) -> Observation:
    """An install (or uninstall) result, read through the update's return-code map.

    A successful uninstall leaves the update applicable and absent: `needed`.
    """
    if uninstall:
        state = "failed" if outcome == "failure" else "needed"
    else:
        state = INSTALL_STATE[outcome]
    return Observation(computer_id, update_id, reported_at, state, 1, return_code)


def latest(observations: Iterable[Observation]) -> dict[tuple[str, str], Observation]:
    """The newest observation per (computer, update) within one batch."""
    found: dict[tuple[str, str], Observation] = {}
    for seen in observations:
        key = (seen.computer_id, seen.update_id)
        held = found.get(key)
        if held is None or (seen.reported_at, seen.rank) >= (held.reported_at, held.rank):
            found[key] = seen
    return found


STICKY = {("failed", "needed"), ("installed_pending_restart", "installed")}
"""(held state, detected state) pairs where a later detection adds nothing: after a failed
install the update is still needed (the failure is what matters), and an update installed
pending a restart looks installed until the restart completes it."""


def moves(current: str, current_at: datetime | None, seen: Observation) -> bool:
    """Whether an observation replaces what a row holds (never backwards in time)."""
    if current == NONE or current_at is None:
        return True
    if seen.rank == 0 and (current, seen.state) in STICKY:
        return False
    if seen.reported_at != current_at:
        return seen.reported_at > current_at
    return seen.rank >= 1 and seen.state != current


def after_restart(current: str) -> str:
    """A restart completes a pending install."""
    return "installed" if current == "installed_pending_restart" else current
