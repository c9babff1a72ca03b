"""Install windows in the computer's local time, across time zones and DST changes: the
policy's day and time, and the maintenance windows operators set per group."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from libs.contracts import windows as w
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


# Maintenance windows per group (docs/product.md section 1, "Maintenance windows").

OCCURRENCES = ("first", "second", "third", "fourth", "last")
"""Which weekday of the month a monthly window counts from."""
SEARCH_DAYS = 80
"""How far ahead a window is looked for: a monthly window recurs within two months."""


@dataclass(frozen=True, order=True)
class MaintenanceWindow:
    """A recurring window in the computer's local time: weekly on `weekday`, or monthly on
    the `occurrence`-th `weekday` of each month moved by `offset_days`; from `start` to
    `end`, the next day when `end` is not after `start` (the window crosses midnight)."""

    weekday: int
    """0 = Monday ... 6 = Sunday."""
    start: time
    end: time
    occurrence: int | None = None
    """None: every week; 1-4: the first to fourth such weekday of the month; 5: the last."""
    offset_days: int = 0

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def starts_on(self, on: date) -> bool:
        """Whether the window opens on this local date."""
        if self.occurrence is None:
            return on.weekday() == self.weekday
        anchor = on - timedelta(days=self.offset_days)
        return anchor == _nth_weekday(anchor.year, anchor.month, self.weekday, self.occurrence)


def _nth_weekday(year: int, month: int, weekday: int, occurrence: int) -> date:
    """The `occurrence`-th (5: last) `weekday` of a month."""
    if occurrence == len(OCCURRENCES):
        last = date(year, month, calendar.monthrange(year, month)[1])
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (occurrence - 1))


def _instant(on: date, at: time, zone: ZoneInfo) -> datetime:
    """A local date and time as UTC, as next_occurrence reads them: a time skipped by a
    spring-forward change is the instant just after the jump; a repeated one its first."""
    return datetime.combine(on, at, tzinfo=zone).astimezone(UTC)


def openings(
    windows: Iterable[MaintenanceWindow], timezone: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The (opens, closes) instants (UTC) of every window open at some time in [start, end),
    by opening time. A window that crosses midnight closes on the next local day; a window
    whose closing time is skipped by a spring-forward change closes just after the jump.
    """
    zone = ZoneInfo(timezone)
    first_day = start.astimezone(zone).date() - timedelta(days=2)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    found: list[tuple[datetime, datetime]] = []
    for window in windows:
        on = first_day
        while on <= last_day:
            if window.starts_on(on):
                closes_on = on + timedelta(days=1) if window.crosses_midnight else on
                opens = _instant(on, window.start, zone)
                closes = _instant(closes_on, window.end, zone)
                if closes > opens and closes > start and opens < end:
                    found.append((opens, closes))
            on += timedelta(days=1)
    return sorted(found)


def inside(windows: Sequence[MaintenanceWindow], timezone: str, at: datetime) -> bool:
    """Whether an instant is inside one of the windows (open at its start, closed at its end)."""
    return any(
        opens <= at < closes
        for opens, closes in openings(windows, timezone, at, at + timedelta(seconds=1))
    )


def within_windows(
    windows: Sequence[MaintenanceWindow], timezone: str, at: datetime
) -> datetime | None:
    """The first instant at or after `at` inside one of the windows: `at` itself when it is
    inside one, else the opening of the next window. No windows: `at` (nothing restricts).
    None only when no window opens within SEARCH_DAYS (not possible for a valid window)."""
    if not windows:
        return at
    for opens, closes in openings(windows, timezone, at, at + timedelta(days=SEARCH_DAYS)):
        if closes > at:
            return max(opens, at)
    return None  # pragma: no cover - every valid window opens at least once in two months


def next_scheduled_install(
    settings: PolicySettings,
    windows: Sequence[MaintenanceWindow],
    timezone: str,
    after: datetime,
) -> datetime:
    """The next scheduled install strictly after `after`.

    Each occurrence of the policy's day and time (next_window) is an install, at that
    instant when it falls inside a maintenance window (or there are none), else at the
    opening of the next window after it. The next install is the first of those after
    `after`: the one the latest occurrence moved (still ahead when its window has not
    opened yet), else the next occurrence's. The answer is the same whenever it is asked
    between two installs.
    """
    planned = next_window(settings, timezone, after)
    if not windows:
        return planned
    moved = within_windows(windows, timezone, last_window(settings, timezone, after))
    if moved is not None and moved > after:
        return moved
    return within_windows(windows, timezone, planned) or planned


def from_contract(window: w.MaintenanceWindow) -> MaintenanceWindow:
    """The arithmetic's form of a window as operators give it (libs/contracts/windows.py)."""
    return MaintenanceWindow(
        weekday=WEEKDAYS.index(window.weekday),
        start=parse_time(window.start),
        end=parse_time(window.end),
        occurrence=None if window.occurrence is None else OCCURRENCES.index(window.occurrence) + 1,
        offset_days=window.offset_days,
    )


def converted(windows: Iterable[w.MaintenanceWindow]) -> list[MaintenanceWindow]:
    return [from_contract(window) for window in windows]


def windows_of(
    groups: Iterable[str],
    parents: Mapping[str, str | None],
    by_group: Mapping[str, Sequence[w.MaintenanceWindow]],
) -> tuple[w.MaintenanceWindow, ...]:
    """A computer's windows: the union of those of its groups and of every ancestor of
    them (All computers included), each window once, in a stable order."""
    seen: set[str] = set()
    for group in groups:
        node: str | None = group
        while node is not None and node not in seen:
            seen.add(node)
            node = parents.get(node)
    found = {window for group in seen for window in by_group.get(group, ())}
    return tuple(sorted(found, key=lambda window: window.model_dump_json()))
