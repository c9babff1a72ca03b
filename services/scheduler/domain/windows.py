"""Install windows in the computer's local time, across time zones and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from libs.contracts.policies import WEEKDAYS, PolicySettings, ScheduledDay

MAINTENANCE_TIME = time(2, 0)
"""[decided] Windows automatic maintenance starts at 02:00 local time by default."""


def parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def window_of(settings: PolicySettings) -> tuple[ScheduledDay, time]:
    """The day and local time of the install window a policy sets."""
    if settings.use_maintenance_window:
        return "every_day", MAINTENANCE_TIME
    return settings.scheduled_day, parse_time(settings.scheduled_time)


def _matches(day: ScheduledDay, on: date) -> bool:
    return day == "every_day" or WEEKDAYS[on.weekday()] == day


def next_occurrence(day: ScheduledDay, at: time, timezone: str, after: datetime) -> datetime:
    """The first instant strictly after `after` when the local clock shows `day` and `at`.

    A local time skipped by a spring-forward change (02:30 when clocks jump from 02:00 to
    03:00) happens at the instant that local time would have had with the old offset, i.e.
    once, just after the jump; a local time repeated by a fall-back change happens once, at
    its first occurrence.
    """
    zone = ZoneInfo(timezone)
    local_day = after.astimezone(zone).date() - timedelta(days=1)
    for offset in range(9):
        on = local_day + timedelta(days=offset)
        if not _matches(day, on):
            continue
        instant = datetime.combine(on, at, tzinfo=zone).astimezone(UTC)  # fold=0
        if instant > after:
            return instant
    raise AssertionError("a weekly window always occurs within 9 days")  # pragma: no cover


def next_window(settings: PolicySettings, timezone: str, after: datetime) -> datetime:
    """The next install window of a computer, strictly after `after` (UTC)."""
    day, at = window_of(settings)
    return next_occurrence(day, at, timezone, after)


def last_window(settings: PolicySettings, timezone: str, at_or_before: datetime) -> datetime:
    """The latest install window at or before an instant (to tell what was missed)."""
    day, at = window_of(settings)
    probe = at_or_before - timedelta(days=8)
    found = next_occurrence(day, at, timezone, probe)
    while True:
        following = next_occurrence(day, at, timezone, found)
        if following > at_or_before:
            return found
        found = following
