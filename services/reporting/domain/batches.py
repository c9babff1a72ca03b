"""What a batch of agent status reports says, given what reporting knows (docs/product.md
section 6): the observations that may move a state, the attempts kept, and what is ignored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from libs.contracts.agents import AgentStatus
from libs.contracts.catalog import ReturnCode, ReturnOutcome
from libs.contracts.scheduler import AgentCheckin
from libs.domain import agent_reports
from libs.domain.agent_reports import Observation


@dataclass(frozen=True)
class KnownUpdate:
    """An update reports may name: its return-code map, and whether it is declined."""

    update_id: str
    return_codes: list[ReturnCode]
    declined: bool


@dataclass(frozen=True)
class Known:
    """What a batch of reports may refer to."""

    computers: set[str]
    return_codes: dict[str, list[ReturnCode]]
    declined: set[str]

    @classmethod
    def of(cls, computers: set[str], updates: Sequence[KnownUpdate]) -> Known:
        return cls(
            computers=computers,
            return_codes={u.update_id: u.return_codes for u in updates},
            declined={u.update_id for u in updates if u.declined},
        )


@dataclass(frozen=True)
class Attempt:
    """One install (or uninstall) attempt, kept in its update's history."""

    computer_id: str
    update_id: str
    started_at: datetime
    finished_at: datetime
    return_code: int
    outcome: ReturnOutcome
    operation: Literal["install", "uninstall"]


@dataclass(frozen=True)
class Batch:
    """A batch read: observations and attempts to store, and counts of what was ignored
    (per reason, in the order first met)."""

    observations: list[Observation]
    attempts: list[Attempt]
    ignored: Counter[str]


def computers_named(statuses: Iterable[AgentStatus]) -> list[str]:
    """The computers a batch reports on, sorted."""
    return sorted({status.computer_id for status in statuses})


def updates_named(statuses: Iterable[AgentStatus]) -> list[str]:
    """The updates a batch names (detected or installed), sorted."""
    found: set[str] = set()
    for status in statuses:
        found.update(d.update_id for d in status.detections)
        found.update(i.update_id for i in status.installs)
    return sorted(found)


def unusable(update_id: str, known: Known) -> str | None:
    """Why a report of this update is ignored (unknown or declined), if it is."""
    if update_id not in known.return_codes:
        return "unknown_update"
    if update_id in known.declined:
        return "declined_update"
    return None


def read_batch(statuses: Iterable[AgentStatus], known: Known) -> Batch:
    """Every usable observation and attempt of a batch: reports of unknown computers and
    of unknown or declined updates are ignored; states move forward only, attempts are all
    kept."""
    observations: list[Observation] = []
    attempts: list[Attempt] = []
    ignored: Counter[str] = Counter()
    for status in statuses:
        if status.computer_id not in known.computers:
            ignored["unknown_computer"] += 1
            continue
        for seen in agent_reports.read_report(status, known.return_codes):
            reason = unusable(seen.update_id, known)
            if reason:
                ignored[reason] += 1
                continue
            observations.append(seen)
        attempts.extend(
            Attempt(
                computer_id=status.computer_id,
                update_id=result.update_id,
                started_at=result.started_at,
                finished_at=result.finished_at,
                return_code=result.return_code,
                outcome=agent_reports.outcome_of(
                    result.return_code, known.return_codes[result.update_id]
                ),
                operation=result.operation,
            )
            for result in status.installs
            if unusable(result.update_id, known) is None
        )
    return Batch(observations, attempts, ignored)


def latest_checkins(checkins: Iterable[AgentCheckin]) -> list[AgentCheckin]:
    """One check-in per computer (the latest by the agent's clock), sorted by computer id
    (rows are written in one order, so replicas never deadlock)."""
    latest: dict[str, AgentCheckin] = {}
    for checkin in checkins:
        kept = latest.get(checkin.computer_id)
        if kept is None or checkin.checked_in_at >= kept.checked_in_at:
            latest[checkin.computer_id] = checkin
    return [latest[c] for c in sorted(latest)]
