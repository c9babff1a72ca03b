"""The compliance history's clock rules: which sample interval an instant falls in, and how
far back points are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def interval_start(now: datetime, seconds: float) -> datetime:
    """The start of the sample interval `now` falls in: intervals of `seconds` counted from
    the Unix epoch in whole microseconds, so every replica names an interval alike."""
    step = max(round(seconds * 1_000_000), 1)
    elapsed = (now - EPOCH) // _MICROSECOND
    return EPOCH + timedelta(microseconds=elapsed - elapsed % step)


def kept_from(now: datetime, history_days: float) -> datetime:
    """Points before this are deleted."""
    return now - timedelta(days=history_days)
