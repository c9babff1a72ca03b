"""What an agent's report means: return codes, outcomes and the state each report leads to.

The one home of this rule (docs/product.md sections 4 and 6). The scheduler plans from these
states and reporting counts them, so both read a report here and must store the same state
for the same report:

- an exit code is read through the update's return-code map (the default map when the update
  has none): listed codes give their outcome, every other code is a failure;
- a detection stores what it saw (`installed`, `needed`, `not_applicable`);
- an install result stores `installed`, `installed_pending_restart` or `failed`;
- **Decided:** an uninstall that succeeded stores `needed`: the update still applies to the
  computer and is now absent. (`not_applicable` would say the update does not concern the
  computer, which would stop a later required install from being planned and would drop the
  computer from the update's counts.) A failed uninstall stores `failed`;
- reports may arrive late, twice or out of order: the agent's `reported_at` orders them, a
  report older than what a row holds never moves it, and at the same `reported_at` an install
  result outranks a detection;
- a completed restart turns `installed_pending_restart` into `installed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from libs.contracts.agents import AgentStatus, InstallResult, UpdateState
from libs.contracts.catalog import ReturnCode, ReturnOutcome

DEFAULT_RETURN_CODES = (
    ReturnCode(code=0, outcome="success"),
    ReturnCode(code=3010, outcome="success_restart_required"),
)
"""docs/product.md section 4: 0 = success, 3010 = success with restart; anything else fails."""

NO_REPORT = "none"
"""What a stored row holds before its first report (a placeholder, not a state anyone sees)."""

StoredState = UpdateState | Literal["none"]

_INSTALL_STATE: dict[ReturnOutcome, UpdateState] = {
    "success": "installed",
    "success_restart_required": "installed_pending_restart",
    "failure": "failed",
}

RESTART_COMPLETES: tuple[UpdateState, UpdateState] = ("installed_pending_restart", "installed")
"""(from, to): the state a completed restart moves, for stores that apply it in one statement."""

STICKY: frozenset[tuple[str, str]] = frozenset(
    {("failed", "needed"), ("installed_pending_restart", "installed")}
)
"""(held state, detected state) pairs where a later detection adds nothing: after a failed
install the update is still needed (the failure is what matters), and an update installed
pending a restart looks installed until the restart completes it."""


def outcome_of(code: int, return_codes: Sequence[ReturnCode]) -> ReturnOutcome:
    """Read an installer exit code through an update's map (the default map if empty)."""
    for entry in return_codes or DEFAULT_RETURN_CODES:
        if entry.code == code:
            return entry.outcome
    return "failure"


def state_after(operation: Literal["install", "uninstall"], outcome: ReturnOutcome) -> UpdateState:
    """The state an install or uninstall result leaves (see the module's decisions)."""
    if operation == "uninstall":
        return "failed" if outcome == "failure" else "needed"
    return _INSTALL_STATE[outcome]


@dataclass(frozen=True)
class Observation:
    """What one report says of one update on one computer."""

    computer_id: str
    update_id: str
    reported_at: datetime
    state: UpdateState
    rank: int
    """0 for a detection, 1 for an install result (wins at equal report times)."""
    return_code: int | None = None
    outcome: ReturnOutcome | None = None
    """How the return code was read (install results only)."""


def detection(
    computer_id: str, update_id: str, reported_at: datetime, state: UpdateState
) -> Observation:
    return Observation(computer_id, update_id, reported_at, state, 0)


def install_result(
    computer_id: str,
    reported_at: datetime,
    result: InstallResult,
    return_codes: Sequence[ReturnCode],
) -> Observation:
    """An install (or uninstall) result, read through the update's return-code map."""
    outcome = outcome_of(result.return_code, return_codes)
    return Observation(
        computer_id,
        result.update_id,
        reported_at,
        state_after(result.operation, outcome),
        1,
        result.return_code,
        outcome,
    )


def read_report(
    status: AgentStatus, return_codes: Mapping[str, Sequence[ReturnCode]]
) -> list[Observation]:
    """Every observation of one status report, in the report's order.

    `return_codes` maps an update to its map; an update missing from it is read through the
    default map.
    """
    found = [
        detection(status.computer_id, d.update_id, status.reported_at, d.state)
        for d in status.detections
    ]
    found.extend(
        install_result(status.computer_id, status.reported_at, i, return_codes.get(i.update_id, ()))
        for i in status.installs
    )
    return found


def latest(observations: Iterable[Observation]) -> dict[tuple[str, str], Observation]:
    """The newest observation per (computer, update): one report may name an update twice
    (a detection and an install result), a batch may hold several reports."""
    found: dict[tuple[str, str], Observation] = {}
    for seen in observations:
        key = (seen.computer_id, seen.update_id)
        held = found.get(key)
        if held is None or (seen.reported_at, seen.rank) >= (held.reported_at, held.rank):
            found[key] = seen
    return found


def moves(current: str, current_at: datetime | None, seen: Observation) -> bool:
    """Whether an observation replaces what a row holds (never backwards in time).

    `current` is the stored state (`none` or the scheduler's `unknown` before any report)
    and `current_at` the `reported_at` of the report that set it.
    """
    if current_at is None:
        return True
    if seen.rank == 0 and (current, seen.state) in STICKY:
        return False
    if seen.reported_at != current_at:
        return seen.reported_at > current_at
    return seen.rank >= 1 and seen.state != current


def changes(
    newest: Mapping[tuple[str, str], Observation],
    held: Mapping[tuple[str, str], tuple[str, datetime | None]],
) -> list[tuple[Observation, str]]:
    """(observation, state it replaces) for every observation that moves its stored row;
    `held` is (state, reported_at) per (computer, update) as the store holds it."""
    return [(seen, held[key][0]) for key, seen in newest.items() if moves(*held[key], seen)]


def after_restart(current: str) -> str:
    """A restart completes a pending install."""
    return RESTART_COMPLETES[1] if current == RESTART_COMPLETES[0] else current
