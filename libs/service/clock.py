"""Where services read the time: the system clock, or one a test moves by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Gives the current instant, timezone-aware UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until moved (tests of timers, deadlines, windows)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time must be timezone-aware")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(UTC)

    def advance(self, by: timedelta) -> datetime:
        self._now += by
        return self._now


class SpeedClock:
    """Time that runs `speed` times faster than the machine's from `epoch` on.

    Every process given the same epoch and speed agrees on the time, so a demo or an
    end-to-end test can live through a week of windows, deadlines and restarts in minutes.
    """

    def __init__(self, epoch: datetime, speed: float) -> None:
        if epoch.tzinfo is None:
            raise ValueError("the clock's epoch must be timezone-aware")
        self.epoch, self.speed = epoch.astimezone(UTC), speed

    def now(self) -> datetime:
        return self.epoch + (datetime.now(UTC) - self.epoch) * self.speed


SYSTEM_CLOCK = SystemClock()


def clock_from(speed: float, epoch: datetime | None) -> Clock:
    """The clock settings ask for: the machine's, or a faster one shared by every process."""
    if speed == 1:
        return SYSTEM_CLOCK
    if epoch is None:
        raise ValueError(
            "LOCKGATE_CLOCK_SPEED other than 1 needs LOCKGATE_CLOCK_EPOCH (the same instant "
            "in every process), e.g. 2026-11-25T10:00:00Z"
        )
    return SpeedClock(epoch, speed)
