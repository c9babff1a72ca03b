"""What the Prometheus gauges read (docs/product.md section 6): rows per classification and
severity, the approved updates they follow, and which of those are past a deadline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StateGauge:
    """Computers in one state over the updates of one classification and severity."""

    classification: str
    severity: str
    state: str
    n: int


@dataclass(frozen=True)
class ApprovedUpdate:
    """An approved, not declined update a per-update gauge follows."""

    update_id: str
    name: str
    """`KB<number>`, or the title of an update without one."""
    classification: str
    severity: str
    deadline: datetime | None
    """The earliest deadline over its group approvals."""


@dataclass(frozen=True)
class AwaitingApproval:
    """Updates of one classification and severity needed somewhere, neither approved nor
    declined."""

    classification: str
    severity: str
    n: int


def past_deadline(updates: Sequence[ApprovedUpdate], now: datetime) -> list[str]:
    """The updates whose earliest deadline has come."""
    return [u.update_id for u in updates if u.deadline and u.deadline <= now]
