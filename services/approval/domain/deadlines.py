"""Deadlines: what the operator chose, resolved to an absolute UTC instant at approval time."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from libs.contracts.approval import DeadlineKind
from libs.domain.resolution import NO_DEADLINE, Deadline, earliest

__all__ = ["NO_DEADLINE", "Deadline", "add_month", "earliest", "resolve"]

RELATIVE = {"one_week": timedelta(weeks=1), "two_weeks": timedelta(weeks=2)}


def add_month(instant: datetime) -> datetime:
    """Same day and time next month, or that month's last day (31 Jan -> 28/29 Feb)."""
    year, month = (
        (instant.year + 1, 1) if instant.month == 12 else (instant.year, instant.month + 1)
    )
    day = min(instant.day, calendar.monthrange(year, month)[1])
    return instant.replace(year=year, month=month, day=day)


def resolve(kind: DeadlineKind, at: datetime | None, now: datetime) -> Deadline:
    """The absolute deadline of a choice made at `now`.

    A custom deadline already past means as soon as possible (due at once).
    """
    now = now.astimezone(UTC)
    if kind == "none":
        return NO_DEADLINE
    if kind == "as_soon_as_possible":
        return Deadline(kind, now)
    if kind == "custom":
        if at is None:
            raise ValueError("a custom deadline needs an instant")
        at = at.astimezone(UTC)
        return Deadline(kind, at) if at > now else Deadline("as_soon_as_possible", now)
    if kind == "one_month":
        return Deadline(kind, add_month(now))
    return Deadline(kind, now + RELATIVE[kind])
