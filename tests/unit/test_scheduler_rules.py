"""The scheduler's rules, without database or broker (docs/product.md section 1).

Install windows across time zones and DST changes, which policy applies to a computer in
several groups, the restart state machine, and a computer's plan. The clock is always a
value passed in: nothing here reads the real time.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from libs.contracts.agents import ComputerPlan, InstallResult
from libs.contracts.approval import ROOT_GROUP_ID, ActionName
from libs.contracts.catalog import RestartName, ReturnCode
from libs.contracts.policies import RECOMMENDED, WEEKDAYS, PolicySettings, ScheduledDay, Weekday
from libs.domain.resolution import NO_DEADLINE, Deadline
from services.scheduler.domain import plans, restarts, windows
from services.scheduler.domain.policy import Assignment, PolicyContext, effective_policy
from services.scheduler.domain.policy import policy_in_force as chosen_policy

FAST = settings(max_examples=60, deadline=None, database=None)
QUICK = settings(max_examples=30, deadline=None, database=None)

ZONES = (
    "Europe/Paris",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/St_Johns",
    "Africa/Casablanca",
    "UTC",
)
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2030, 12, 31, tzinfo=UTC)
SPAN_SECONDS = int((END - START).total_seconds())
NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    """An aware UTC instant from 'YYYY-MM-DD HH:MM'."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def fixed_time(day: ScheduledDay, at: str) -> PolicySettings:
    """A policy installing on a fixed day and time (not the maintenance window)."""
    return PolicySettings(use_maintenance_window=False, scheduled_day=day, scheduled_time=at)


# --- windows: an independent model of "the window on one local date" ---------------------


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The local wall clock (naive) at an instant."""
    return instant.astimezone(zone).replace(tzinfo=None)


def exists(on: date, at: time, zone: ZoneInfo) -> bool:
    """Whether the local clock ever shows `at` on `on` (false inside a spring-forward gap)."""
    naive = datetime.combine(on, at)
    return _wall(naive.replace(tzinfo=zone).astimezone(UTC), zone) == naive


def reference_occurrence(on: date, at: time, zone: ZoneInfo) -> datetime:
    """When the window of `on` happens, computed from offsets rather than from fold.

    The first instant whose wall clock shows `at` (a repeated time happens once, the first
    time); in a gap, the wall time read with the offset in force before the jump, which is
    the smaller offset (a gap is an offset increase).
    """
    naive = datetime.combine(on, at).replace(tzinfo=UTC)
    noon = datetime.combine(on, time(12), tzinfo=UTC)
    offsets = sorted({_offset(noon + timedelta(days=k), zone) for k in (-1, 0, 1)})
    real = [
        naive - off for off in offsets if _wall(naive - off, zone) == naive.replace(tzinfo=None)
    ]
    if real:
        return min(real)
    return naive - offsets[0]


@functools.cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Every UTC-offset change of a zone from 2024 to 2030, to the minute."""
    zone = ZoneInfo(zone_name)
    found: list[datetime] = []
    day = START
    while day < END:
        following = day + timedelta(days=1)
        if _offset(day, zone) != _offset(following, zone):
            low, high = 0, 24 * 60  # minutes into the day: offset(low) is the old one
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(day + timedelta(minutes=middle), zone) == _offset(day, zone):
                    low = middle
                else:
                    high = middle
            found.append(day + timedelta(minutes=high))
        day = following
    return tuple(found)


def test_the_sampled_zones_include_dst_changes() -> None:
    """The DST part of the properties is only exercised if the zones really change offset."""
    assert len(transitions("Europe/Paris")) == 14  # two a year, 2024-2030
    assert len(transitions("America/New_York")) == 14
    assert transitions("Asia/Kolkata") == ()
    assert transitions("America/Sao_Paulo") == ()  # no DST since 2019
    assert transitions("Africa/Casablanca")  # Ramadan changes


zones = st.sampled_from(ZONES)
instants = st.integers(0, SPAN_SECONDS).map(lambda s: START + timedelta(seconds=s))
window_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 1, 15, 30, 45, 59]))


@dataclass(frozen=True)
class WindowCase:
    """A zone, an instant and a window; near a DST change, the window often falls in the
    skipped or repeated local hour and on the weekday of the change."""

    zone: str
    after: datetime
    at: time
    weekday: Weekday


anywhere = st.builds(WindowCase, zones, instants, window_times, st.sampled_from(WEEKDAYS))


@st.composite
def near_a_change(draw: st.DrawFn) -> WindowCase:
    zone = draw(st.sampled_from([z for z in ZONES if transitions(z)]))
    change = draw(st.sampled_from(transitions(zone)))
    # mostly within the day before the change, so that the next window is on its day
    after = change + timedelta(seconds=draw(st.integers(-26 * 3600, 3 * 3600)))
    # the wall clock at the change read with the old offset: the hour after it is skipped
    # by a spring-forward change, the hour before it is repeated by a fall-back change
    before = _wall(change - timedelta(minutes=1), ZoneInfo(zone)) + timedelta(minutes=1)
    shift = draw(st.sampled_from([-60, -59, -30, -1, 0, 1, 15, 30, 45, 59]))
    at = (before + timedelta(minutes=shift)).time()
    weekday = WEEKDAYS[before.weekday()]
    return WindowCase(zone, after, at, draw(st.sampled_from([weekday] * 7 + list(WEEKDAYS))))


def window_cases() -> st.SearchStrategy[WindowCase]:
    """Random zones and instants 2024-2030, and as often cases near a DST change."""
    return st.one_of(anywhere, near_a_change(), near_a_change())


def _check_one_window(day: ScheduledDay, at: time, zone_name: str, after: datetime) -> None:
    zone = ZoneInfo(zone_name)
    found = windows.next_occurrence(day, at, zone_name, after)
    assert found.tzinfo is not None
    assert found > after
    step = timedelta(days=1) if day == "every_day" else timedelta(days=7)
    assert found - after <= (
        timedelta(days=1, hours=1) if day == "every_day" else timedelta(days=8)
    )
    local = found.astimezone(zone)
    on = local.date()
    if day != "every_day":
        assert WEEKDAYS[on.weekday()] == day
    first = datetime.combine(on, at, tzinfo=zone).astimezone(UTC)
    second = datetime.combine(on, at, tzinfo=zone).replace(fold=1).astimezone(UTC)
    if exists(on, at, zone) and first != second:
        event("repeated wall time")
        assert found == first < second  # fires once, at the first of the two
    if local.time() != at:
        event("spring-forward gap")
        # only where `at` does not exist: the moment just after the jump, old offset
        assert not exists(on, at, zone)
        old_offset = _offset(found - timedelta(hours=3), zone)
        assert found == datetime.combine(on, at).replace(tzinfo=UTC) - old_offset
        assert local.time() > at
    assert found == reference_occurrence(on, at, zone)
    # the first one: the occurrence before it is not after `after`
    assert reference_occurrence(on - step, at, zone) <= after


@FAST
@given(window_cases())
def test_next_occurrence_every_day_is_the_next_local_window(case: WindowCase) -> None:
    """Every day at `at` local: strictly later, within a day (+ DST hour), right wall time."""
    _check_one_window("every_day", case.at, case.zone, case.after)


@FAST
@given(window_cases())
def test_next_occurrence_weekly_is_the_next_local_weekday(case: WindowCase) -> None:
    """A weekly window falls on that weekday, local, within 8 days."""
    _check_one_window(case.weekday, case.at, case.zone, case.after)


@FAST
@given(window_cases())
def test_next_window_weekly_policy_falls_on_the_local_weekday(case: WindowCase) -> None:
    """next_window with a fixed day and time (no maintenance window) is that weekday."""
    policy = fixed_time(case.weekday, f"{case.at:%H:%M}")
    found = windows.next_window(policy, case.zone, case.after)
    assert found > case.after
    assert found - case.after <= timedelta(days=8)
    local = found.astimezone(ZoneInfo(case.zone))
    assert WEEKDAYS[local.weekday()] == case.weekday
    assert found == windows.next_occurrence(case.weekday, case.at, case.zone, case.after)


@QUICK
@given(window_cases())
def test_chained_every_day_windows_fire_once_per_local_day(case: WindowCase) -> None:
    """Applying next_window to its own result gives every local day exactly once."""
    zone = ZoneInfo(case.zone)
    policy = fixed_time("every_day", f"{case.at:%H:%M}")
    after = case.after
    days: list[date] = []
    for _ in range(6):
        after = windows.next_window(policy, case.zone, after)
        days.append(after.astimezone(zone).date())
    assert days == [days[0] + timedelta(days=k) for k in range(6)]


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize("at", ["00:00", "01:30", "02:00", "02:30", "03:00", "23:59"])
def test_a_year_of_every_day_windows_has_no_skipped_or_doubled_day(zone_name: str, at: str) -> None:
    """Over 2026, chained daily windows give each local date once, through every change."""
    zone = ZoneInfo(zone_name)
    policy = fixed_time("every_day", at)
    instant = utc("2025-12-31 12:00")
    first = windows.next_window(policy, zone_name, instant).astimezone(zone).date()
    for k in range(1, 370):
        instant = windows.next_window(policy, zone_name, instant)
        assert instant.astimezone(zone).date() == first + timedelta(days=k - 1)


@pytest.mark.parametrize("zone_name", ["Europe/Paris", "America/New_York", "Pacific/Chatham"])
def test_a_year_of_weekly_windows_is_one_a_week_on_tuesday(zone_name: str) -> None:
    """Chained weekly windows are 7 local days apart, always on Tuesday."""
    zone = ZoneInfo(zone_name)
    policy = fixed_time("tuesday", "02:30")
    instant = utc("2025-12-31 12:00")
    previous: date | None = None
    for _ in range(60):
        instant = windows.next_window(policy, zone_name, instant)
        local = instant.astimezone(zone).date()
        assert local.weekday() == 1
        if previous is not None:
            assert local - previous == timedelta(days=7)
        previous = local


def _chain(policy: PolicySettings, zone_name: str, after: datetime, count: int) -> list[str]:
    """`count` chained windows, as 'local wall time (UTC instant)' text."""
    zone = ZoneInfo(zone_name)
    found: list[str] = []
    for _ in range(count):
        after = windows.next_window(policy, zone_name, after)
        found.append(f"{after.astimezone(zone):%Y-%m-%d %H:%M%z} ({after:%Y-%m-%d %H:%M}Z)")
    return found


def test_paris_spring_forward_0230_fires_once_just_after_the_jump() -> None:
    """2026-03-29: clocks go 02:00 CET -> 03:00 CEST, so 02:30 does not exist that day."""
    assert not exists(date(2026, 3, 29), time(2, 30), ZoneInfo("Europe/Paris"))
    assert _chain(fixed_time("every_day", "02:30"), "Europe/Paris", utc("2026-03-27 12:00"), 4) == [
        "2026-03-28 02:30+0100 (2026-03-28 01:30Z)",
        "2026-03-29 03:30+0200 (2026-03-29 01:30Z)",  # 02:30 at the old offset (+01:00)
        "2026-03-30 02:30+0200 (2026-03-30 00:30Z)",
        "2026-03-31 02:30+0200 (2026-03-31 00:30Z)",
    ]


def test_paris_fall_back_0230_fires_once_at_the_first_0230() -> None:
    """2026-10-25: 02:30 happens twice (CEST then CET); the window fires once, the first."""
    assert _chain(fixed_time("every_day", "02:30"), "Europe/Paris", utc("2026-10-23 12:00"), 4) == [
        "2026-10-24 02:30+0200 (2026-10-24 00:30Z)",
        "2026-10-25 02:30+0200 (2026-10-25 00:30Z)",
        "2026-10-26 02:30+0100 (2026-10-26 01:30Z)",
        "2026-10-27 02:30+0100 (2026-10-27 01:30Z)",
    ]


def test_paris_fall_back_between_the_two_0230s_goes_to_the_next_day() -> None:
    """After the first 02:30 and before the second, the repeat is not a second window."""
    after = utc("2026-10-25 01:00")  # 02:00 CET, between 00:30Z and 01:30Z
    found = windows.next_window(fixed_time("every_day", "02:30"), "Europe/Paris", after)
    assert found == utc("2026-10-26 01:30")


def test_new_york_spring_forward_and_fall_back() -> None:
    """2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST."""
    assert _chain(
        fixed_time("every_day", "02:30"), "America/New_York", utc("2026-03-06 12:00"), 3
    ) == [
        "2026-03-07 02:30-0500 (2026-03-07 07:30Z)",
        "2026-03-08 03:30-0400 (2026-03-08 07:30Z)",
        "2026-03-09 02:30-0400 (2026-03-09 06:30Z)",
    ]
    assert _chain(
        fixed_time("every_day", "01:30"), "America/New_York", utc("2026-10-30 12:00"), 3
    ) == [
        "2026-10-31 01:30-0400 (2026-10-31 05:30Z)",
        "2026-11-01 01:30-0400 (2026-11-01 05:30Z)",  # first of the two 01:30s
        "2026-11-02 01:30-0500 (2026-11-02 06:30Z)",
    ]
    assert _chain(
        fixed_time("every_day", "02:30"), "America/New_York", utc("2026-10-31 12:00"), 2
    ) == [
        "2026-11-01 02:30-0500 (2026-11-01 07:30Z)",  # exists once, after the repeat
        "2026-11-02 02:30-0500 (2026-11-02 07:30Z)",
    ]


NUUK_BUG = (
    "windows.next_occurrence: where a spring-forward gap ends at local midnight (America/Nuuk "
    "from 2026: Saturday 23:00 -02 -> Sunday 00:00 -01), a window in the skipped hour is "
    "read with the old offset and lands after midnight, on the next local date: that "
    "Saturday gets no window and Sunday gets two (00:30 and 23:30); a Saturday-only window "
    "fires on Sunday"
)


def _nuuk_gap_crosses_midnight() -> None:
    """The bug needs a tz database where Nuuk jumps from 23:00 to 00:00 (tzdata 2023+)."""
    zone = ZoneInfo("America/Nuuk")
    if exists(date(2026, 3, 28), time(23, 30), zone) or not exists(
        date(2026, 3, 29), time(0, 30), zone
    ):
        pytest.skip("this tz database has no midnight-crossing gap in America/Nuuk")


@pytest.mark.xfail(strict=True, reason=NUUK_BUG)
def test_nuuk_every_day_window_in_a_gap_ending_at_midnight_keeps_its_day() -> None:
    """Every day at 23:30, chained over the 2026-03-28 change: one window per local date."""
    _nuuk_gap_crosses_midnight()
    zone = ZoneInfo("America/Nuuk")
    policy = fixed_time("every_day", "23:30")
    after, days = utc("2026-03-27 12:00"), []
    for _ in range(4):
        after = windows.next_window(policy, "America/Nuuk", after)
        days.append(after.astimezone(zone).date())
    # today: [2026-03-27, 2026-03-29 (00:30), 2026-03-29 (23:30), 2026-03-30]
    assert days == [date(2026, 3, 27) + timedelta(days=k) for k in range(4)]


@pytest.mark.xfail(strict=True, reason=NUUK_BUG)
def test_nuuk_saturday_window_in_a_gap_ending_at_midnight_stays_on_saturday() -> None:
    """Saturday 23:30, on the Saturday whose 23:00-24:00 is skipped: still a Saturday."""
    _nuuk_gap_crosses_midnight()
    found = windows.next_window(
        fixed_time("saturday", "23:30"), "America/Nuuk", utc("2026-03-27 12:00")
    )
    # today: 2026-03-29 01:30Z, i.e. Sunday 00:30 local
    assert found.astimezone(ZoneInfo("America/Nuuk")).weekday() == 5


def test_maintenance_window_on_the_paris_spring_forward_day() -> None:
    """02:00 itself is skipped on 2026-03-29: the window is the instant of the jump."""
    found = windows.next_window(PolicySettings(), "Europe/Paris", utc("2026-03-28 12:00"))
    assert found == utc("2026-03-29 01:00")
    assert f"{found.astimezone(ZoneInfo('Europe/Paris')):%H:%M}" == "03:00"


def test_next_window_is_strict_at_a_window_instant() -> None:
    """At the very instant of a window, the next one is the following day's."""
    first = windows.next_window(PolicySettings(), "Asia/Kolkata", utc("2026-06-10 00:00"))
    assert first == utc("2026-06-10 20:30")  # 02:00 IST on 11 June
    assert windows.next_window(PolicySettings(), "Asia/Kolkata", first) == utc("2026-06-11 20:30")


@FAST
@given(window_cases(), st.sampled_from(("every_day", *WEEKDAYS)))
def test_maintenance_window_is_every_day_at_0200_local(case: WindowCase, day: ScheduledDay) -> None:
    """use_maintenance_window=True ignores the scheduled day and time: 02:00 local daily."""
    policy = PolicySettings(
        use_maintenance_window=True, scheduled_day=day, scheduled_time=f"{case.at:%H:%M}"
    )
    assert windows.window_of(policy) == ("every_day", windows.MAINTENANCE_TIME)
    assert time(2, 0) == windows.MAINTENANCE_TIME
    found = windows.next_window(policy, case.zone, case.after)
    assert found == windows.next_occurrence("every_day", time(2, 0), case.zone, case.after)
    _check_one_window("every_day", time(2, 0), case.zone, case.after)


def test_recommended_policy_uses_the_maintenance_window() -> None:
    """The recommended values (no policy) install at 02:00 local, every day."""
    assert windows.window_of(PolicySettings()) == ("every_day", time(2, 0))
    assert windows.window_of(fixed_time("friday", "23:59")) == ("friday", time(23, 59))
    assert windows.parse_time("00:00") == time(0, 0)


@FAST
@given(window_cases(), st.booleans())
def test_last_window_is_the_latest_occurrence_at_or_before(
    case: WindowCase, every_day: bool
) -> None:
    """last_window <= the instant, it is an occurrence, and the next one is after it."""
    zone, instant = case.zone, case.after
    policy = fixed_time("every_day" if every_day else case.weekday, f"{case.at:%H:%M}")
    last = windows.last_window(policy, zone, instant)
    assert last <= instant
    assert windows.next_window(policy, zone, last - timedelta(microseconds=1)) == last
    assert windows.next_window(policy, zone, last) > instant
    # at a window instant itself, that window is the last one
    assert windows.last_window(policy, zone, last) == last


def test_last_window_examples() -> None:
    """Paris, 02:30 daily: the latest window at or before some instants."""
    policy = fixed_time("every_day", "02:30")
    assert windows.last_window(policy, "Europe/Paris", utc("2026-03-29 01:29")) == utc(
        "2026-03-28 01:30"
    )
    assert windows.last_window(policy, "Europe/Paris", utc("2026-03-29 01:30")) == utc(
        "2026-03-29 01:30"
    )
    assert windows.last_window(policy, "Europe/Paris", utc("2026-10-25 01:45")) == utc(
        "2026-10-25 00:30"
    )  # the repeated 02:30 (01:30Z) is not a window


# --- policy: which policy applies to a computer in several groups ------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def assign(policy_id: str, group_id: str, minutes: int = 0) -> Assignment:
    return Assignment(policy_id, group_id, T0 + timedelta(minutes=minutes))


def assignments(*items: Assignment) -> dict[str, Assignment]:
    return {a.group_id: a for a in items}


# ROOT -> A -> A1 -> A11 ; ROOT -> B
PARENTS: dict[str, str | None] = {
    ROOT_GROUP_ID: None,
    "A": ROOT_GROUP_ID,
    "A1": "A",
    "A11": "A1",
    "B": ROOT_GROUP_ID,
}


def test_no_assignment_means_no_policy() -> None:
    chosen = effective_policy(["A11", "B"], PARENTS, {})
    assert (chosen.assignment, chosen.conflict) == (None, None)
    assert effective_policy([], PARENTS, {}).assignment is None


def test_the_own_group_beats_a_parent() -> None:
    """Own group B (distance 0) beats A (parent of A1, distance 1), however recent A is."""
    chosen = effective_policy(
        ["A1", "B"], PARENTS, assignments(assign("p-a", "A", 100), assign("p-b", "B", 0))
    )
    assert chosen.assignment == assign("p-b", "B", 0)
    assert chosen.conflict is not None


def test_the_nearest_ancestor_is_found_by_walking_up() -> None:
    """With nothing on the own group, the nearest ancestor with a policy applies."""
    chosen = effective_policy(
        ["A11"], PARENTS, assignments(assign("p-a", "A", 0), assign("p-root", ROOT_GROUP_ID, 9))
    )
    assert chosen.assignment is not None
    assert chosen.assignment.policy_id == "p-a"
    assert chosen.conflict is None  # one walk, one candidate


def test_a_parents_policy_hidden_by_the_own_group_is_no_conflict() -> None:
    """A1 has its own policy: A's (farther up the same walk) is not a candidate."""
    chosen = effective_policy(
        ["A1"], PARENTS, assignments(assign("p-a1", "A1", 0), assign("p-a", "A", 50))
    )
    assert chosen.assignment is not None
    assert chosen.assignment.policy_id == "p-a1"
    assert chosen.conflict is None


def test_all_computers_is_the_own_group_only_of_computers_in_no_other_group() -> None:
    """In All computers only: its policy is at distance 0. With A1 too: All computers is
    the farthest ancestor, so A's older policy (distance 1) wins over its newer one."""
    table = assignments(assign("p-root", ROOT_GROUP_ID, 100), assign("p-a", "A", 0))
    alone = effective_policy([ROOT_GROUP_ID], PARENTS, table)
    assert alone.assignment is not None
    assert alone.assignment.policy_id == "p-root"
    assert effective_policy([], PARENTS, table).assignment == alone.assignment
    both = effective_policy([ROOT_GROUP_ID, "A1"], PARENTS, table)
    assert both.assignment is not None
    assert both.assignment.policy_id == "p-a"
    assert both.conflict is None
    # in B (no policy of its own): the walk reaches All computers
    via_root = effective_policy([ROOT_GROUP_ID, "B"], PARENTS, table)
    assert via_root.assignment is not None
    assert via_root.assignment.policy_id == "p-root"


def test_a_tie_goes_to_the_most_recent_assignment_and_is_reported() -> None:
    chosen = effective_policy(
        ["A", "B"], PARENTS, assignments(assign("p-a", "A", 10), assign("p-b", "B", 20))
    )
    assert chosen.assignment is not None
    assert chosen.assignment.policy_id == "p-b"
    assert chosen.conflict is not None
    assert "2 policies" in chosen.conflict


def test_the_same_policy_in_several_groups_is_no_conflict() -> None:
    chosen = effective_policy(
        ["A", "B"], PARENTS, assignments(assign("p", "A", 10), assign("p", "B", 20))
    )
    assert chosen.assignment is not None
    assert chosen.assignment.policy_id == "p"
    assert chosen.conflict is None


@st.composite
def group_forests(
    draw: st.DrawFn,
) -> tuple[list[str], dict[str, str | None], dict[str, Assignment]]:
    """Groups under All computers, some with a policy, and a computer's memberships."""
    count = draw(st.integers(1, 8))
    names = [f"g{i}" for i in range(count)]
    parents: dict[str, str | None] = {ROOT_GROUP_ID: None}
    for index, name in enumerate(names):
        parents[name] = draw(st.sampled_from([ROOT_GROUP_ID, *names[:index]]))
    table: dict[str, Assignment] = {}
    for name in [ROOT_GROUP_ID, *names]:
        if draw(st.booleans()):
            # few policies and instants, so that ties and shared policies happen
            policy = draw(st.sampled_from(["p1", "p2", "p3"]))
            table[name] = assign(policy, name, draw(st.sampled_from([0, 5, 10])))
    members = draw(st.lists(st.sampled_from([ROOT_GROUP_ID, *names]), max_size=5))
    return members, parents, table


def _ancestry(group: str, parents: dict[str, str | None]) -> list[str]:
    found = [group]
    while (parent := parents[found[-1]]) is not None:
        found.append(parent)
    return found


@FAST
@given(group_forests(), st.randoms(use_true_random=False))
def test_effective_policy_nearest_then_most_recent_in_any_order(
    forest: tuple[list[str], dict[str, str | None], dict[str, Assignment]],
    shuffler: random.Random,
) -> None:
    """The winner is at the least distance and most recent there; the conflict is reported
    exactly when the candidates carry 2+ policies; the groups' order does not matter."""
    members, parents, table = forest
    own = set(members) - {ROOT_GROUP_ID} or {ROOT_GROUP_ID}
    candidates: list[tuple[int, Assignment]] = []
    for group in own:
        chain = _ancestry(group, parents)
        hits = [(distance, table[g]) for distance, g in enumerate(chain) if g in table]
        if hits:
            candidates.append(hits[0])
    chosen = effective_policy(members, parents, table)
    if not candidates:
        assert (chosen.assignment, chosen.conflict) == (None, None)
        return
    assert chosen.assignment is not None
    nearest = min(distance for distance, _ in candidates)
    at_nearest = [a for distance, a in candidates if distance == nearest]
    latest = max(a.assigned_at for a in at_nearest)
    assert chosen.assignment.assigned_at == latest
    assert chosen.assignment.policy_id in {
        a.policy_id for a in at_nearest if a.assigned_at == latest
    }
    assert (chosen.conflict is not None) == (len({a.policy_id for _, a in candidates}) >= 2)
    for _ in range(3):
        shuffled = list(members)
        shuffler.shuffle(shuffled)
        again = effective_policy(shuffled, parents, table)
        assert again.assignment is not None
        assert again.assignment.policy_id == chosen.assignment.policy_id
        assert again.conflict == chosen.conflict


def test_policy_in_force_names_the_chosen_policy_and_its_settings() -> None:
    servers = PolicySettings(restart_delay_minutes=30)
    context = PolicyContext(
        parents=PARENTS,
        assignments=assignments(assign("p1", "A"), assign("p2", "B", minutes=5)),
        settings={"p1": ("Servers", servers), "p2": ("Laptops", PolicySettings())},
    )
    chosen = chosen_policy(["A11"], context)
    assert (chosen.policy_id, chosen.name, chosen.settings, chosen.conflict) == (
        "p1",
        "Servers",
        servers,
        None,
    )
    both = chosen_policy(["A1", "B"], context)
    assert (both.policy_id, both.name) == ("p2", "Laptops")  # B is nearer
    assert both.conflict is not None


def test_policy_in_force_without_any_policy_is_the_recommended_values() -> None:
    context = PolicyContext(parents=PARENTS, assignments={}, settings={})
    chosen = chosen_policy([ROOT_GROUP_ID, "A"], context)
    assert chosen == plans.PolicyInForce(None, plans.NO_POLICY, RECOMMENDED, None)


# --- restarts: the state machine after an install that needs a restart --------------------

T = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)


def restart_settings(
    *, user_controls: bool = True, delay: int = 15, interval: int = 30
) -> PolicySettings:
    return PolicySettings(
        user_controls_restart=user_controls,
        restart_delay_minutes=delay,
        restart_prompt_interval_minutes=interval,
    )


def test_nobody_logged_on_restarts_at_once() -> None:
    state = restarts.after_install(restarts.IDLE, restart_settings(), T, user_logged_on=False)
    assert state == restarts.RestartState("restart_now", T)
    state, told = restarts.on_due(state, restart_settings(), T, user_logged_on=False)
    assert told == restarts.Restart("nobody_logged_on")
    assert state.phase == "restarting"
    assert state.due_at is None


def test_a_logged_on_user_waits_the_restart_delay() -> None:
    state = restarts.after_install(restarts.IDLE, restart_settings(delay=7), T, user_logged_on=True)
    assert state == restarts.RestartState("waiting", T + timedelta(minutes=7))


def test_waiting_then_the_user_logged_off_restarts_without_asking() -> None:
    waiting = restarts.RestartState("waiting", T)
    state, told = restarts.on_due(waiting, restart_settings(), T, user_logged_on=False)
    assert told == restarts.Restart("nobody_logged_on")
    assert state.phase == "restarting"


def test_user_controls_restart_prompts_and_reprompts_every_interval() -> None:
    policy = restart_settings(interval=45)
    state = restarts.RestartState("waiting", T)
    state, told = restarts.on_due(state, policy, T, user_logged_on=True)
    assert told == restarts.Prompt(may_postpone=True, restart_at=None, number=1)
    assert state == restarts.RestartState("prompting", T + timedelta(minutes=45), 1)
    for number in (2, 3, 4):
        now = state.due_at
        assert now is not None
        state, told = restarts.on_due(state, policy, now, user_logged_on=True)
        assert told == restarts.Prompt(may_postpone=True, restart_at=None, number=number)
        assert state == restarts.RestartState("prompting", now + timedelta(minutes=45), number)


def test_without_user_control_warn_then_restart_after_five_minutes() -> None:
    policy = restart_settings(user_controls=False)
    state, told = restarts.on_due(
        restarts.RestartState("waiting", T), policy, T, user_logged_on=True
    )
    assert told == restarts.Prompt(
        may_postpone=False, restart_at=T + timedelta(minutes=5), number=1
    )
    assert state == restarts.RestartState("warning", T + timedelta(minutes=5), 1)
    # postponing is not possible during the warning
    assert restarts.on_postponed(state, policy, T + timedelta(minutes=1)) == state
    state, told = restarts.on_due(state, policy, T + timedelta(minutes=5), user_logged_on=True)
    assert told == restarts.Restart("warning_elapsed")
    assert state.phase == "restarting"


def test_postponing_rearms_the_prompt_only_while_prompting() -> None:
    policy = restart_settings(interval=20)
    prompting = restarts.RestartState("prompting", T, 2)
    later = T + timedelta(minutes=3)
    assert restarts.on_postponed(prompting, policy, later) == restarts.RestartState(
        "prompting", later + timedelta(minutes=20), 2
    )
    for phase in ("idle", "waiting", "restart_now", "warning", "restarting"):
        state = restarts.RestartState(phase, T, 1)
        assert restarts.on_postponed(state, policy, later) == state


@pytest.mark.parametrize(
    "phase", ["idle", "waiting", "restart_now", "prompting", "warning", "restarting"]
)
def test_restarted_ends_any_state(phase: restarts.Phase) -> None:
    assert restarts.on_restarted(restarts.RestartState(phase, T, 3)) == restarts.IDLE


def test_a_second_install_does_not_reset_a_restart_under_way() -> None:
    prompting = restarts.RestartState("prompting", T, 2)
    later = T + timedelta(hours=1)
    assert restarts.after_install(prompting, restart_settings(), later, user_logged_on=True) == (
        prompting
    )


def test_a_due_timer_in_idle_or_restarting_says_nothing() -> None:
    for state in (restarts.IDLE, restarts.RestartState("restarting", None)):
        assert restarts.on_due(state, restart_settings(), T, user_logged_on=True) == (state, None)


EventKind = Literal["install", "due", "postponed", "restarted"]
events = st.lists(
    st.tuples(
        st.sampled_from(["install", "install", "due", "due", "due", "postponed", "restarted"]),
        st.booleans(),  # a user is logged on
        st.integers(0, 3000),  # minutes since the previous event
    ),
    max_size=40,
)
restart_policies = st.builds(
    PolicySettings,
    user_controls_restart=st.booleans(),
    restart_delay_minutes=st.integers(1, 30),
    restart_prompt_interval_minutes=st.integers(1, 1440),
)


@FAST
@given(restart_policies, events)
def test_restart_machine_never_schedules_in_the_past_nor_restarts_a_postponable_user(
    policy: PolicySettings, sequence: list[tuple[str, bool, int]]
) -> None:
    """Random events; a timer fires at or after its due_at. due_at never precedes the event
    that set it, prompts count 1, 2, 3..., and no Restart while the user may postpone."""
    state, set_at, now = restarts.IDLE, T, T
    postponable = False
    for kind, user, minutes in sequence:
        now += timedelta(minutes=minutes)
        before = state
        told: restarts.Instruction = None
        if kind == "install":
            state = restarts.after_install(state, policy, now, user_logged_on=user)
        elif kind == "due":
            if state.due_at is None:
                continue  # no timer armed
            now = max(now, state.due_at)
            state, told = restarts.on_due(state, policy, now, user_logged_on=user)
        elif kind == "postponed":
            state = restarts.on_postponed(state, policy, now)
        else:
            state = restarts.on_restarted(state)
            postponable = False
        if state != before:
            set_at = now
        assert state.due_at is None or state.due_at >= set_at
        if state.phase in ("waiting", "restart_now", "prompting", "warning"):
            assert state.due_at is not None
        if isinstance(told, restarts.Restart):
            assert before.phase != "prompting"
            assert not postponable
            assert (told.reason == "warning_elapsed") == (before.phase == "warning")
            assert state.phase == "restarting"
        if isinstance(told, restarts.Prompt):
            assert told.number == before.prompts + 1
            assert told.may_postpone == (
                policy.user_controls_restart or before.phase == "prompting"
            )
            if told.may_postpone:
                postponable = True
                assert told.restart_at is None
            else:
                assert told.restart_at == now + restarts.WARNING_BEFORE_RESTART == state.due_at


def install(update_id: str, code: int, finished_at: datetime) -> InstallResult:
    return InstallResult(
        update_id=update_id,
        return_code=code,
        started_at=finished_at - timedelta(minutes=3),
        finished_at=finished_at,
    )


def test_restart_requested_at_is_the_last_install_asking_for_a_restart() -> None:
    """3010 asks for a restart by default; an update's own map reads its codes instead."""
    own = {"u3": [ReturnCode(code=1641, outcome="success_restart_required")]}
    installs = [
        install("u1", 3010, T),
        install("u2", 0, T + timedelta(minutes=9)),
        install("u3", 1641, T + timedelta(minutes=5)),
        install("u4", 1641, T + timedelta(minutes=7)),  # default map: a failure
    ]
    assert restarts.restart_requested_at(installs, own) == T + timedelta(minutes=5)
    assert restarts.restart_requested_at(installs[:2], {}) == T
    assert restarts.restart_requested_at(installs[1:2], {}) is None
    assert restarts.restart_requested_at([], {}) is None
    not_here = {"u1": [ReturnCode(code=0, outcome="success")]}  # its map lacks 3010
    assert restarts.restart_requested_at(installs[:1], not_here) is None


# --- plans: what a computer installs and when --------------------------------------------

PARIS = plans.Computer("pc-0001", "Europe/Paris")
NEEDS_RESTART = plans.UpdateFacts("KB1", "Cumulative update", "may_request", None, [])
NO_RESTART = plans.UpdateFacts("KB2", "Definition update", "never", None, [])
WINDOW = windows.next_window(PolicySettings(), "Europe/Paris", NOW)


def policy_in_force(**changes: object) -> plans.PolicyInForce:
    return plans.PolicyInForce(None, plans.NO_POLICY, PolicySettings.model_validate(changes), None)


def custom(at: datetime) -> Deadline:
    return Deadline("custom", at)


Approval = tuple[str, str, ActionName, Deadline]


def plan_of(
    approvals: Sequence[Approval],
    *,
    facts: dict[str, plans.UpdateFacts] | None = None,
    progress: dict[str, plans.Progress] | None = None,
    computer: plans.Computer = PARIS,
    policy: plans.PolicyInForce | None = None,
    now: datetime = NOW,
) -> tuple[ComputerPlan, plans.Schedule]:
    return plans.build_plan(
        computer,
        policy or policy_in_force(allow_immediate_install=False),
        approvals,
        {"u1": NEEDS_RESTART} if facts is None else facts,
        progress or {},
        now,
    )


def test_the_window_of_the_examples() -> None:
    assert utc("2026-06-11 00:00") == WINDOW  # 02:00 CEST


def test_required_beats_uninstall_across_groups() -> None:
    plan, _ = plan_of(
        [
            ("g-remove", "u1", "uninstall", custom(NOW - timedelta(days=1))),
            ("g-need", "u1", "required_install", NO_DEADLINE),
        ],
        progress={"u1": plans.Progress("needed")},
    )
    [item] = plan.items
    assert item.action == "required_install"
    assert item.deadline is None  # the uninstall's deadline does not carry over
    assert item.install_at == WINDOW


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        (NO_DEADLINE, WINDOW),
        (custom(WINDOW + timedelta(hours=1)), WINDOW),  # after the window: the window
        (custom(WINDOW - timedelta(hours=1)), WINDOW - timedelta(hours=1)),  # first: deadline
        (custom(WINDOW), WINDOW),
        (custom(NOW - timedelta(days=2)), NOW - timedelta(days=2)),  # passed: at once
    ],
    ids=["no-deadline", "deadline-after-window", "deadline-first", "equal", "passed"],
)
def test_install_at_is_the_window_or_an_earlier_deadline(
    deadline: Deadline, expected: datetime
) -> None:
    plan, schedule = plan_of(
        [("g", "u1", "required_install", deadline)], progress={"u1": plans.Progress("needed")}
    )
    assert plan.items[0].install_at == expected
    assert plan.next_window == WINDOW == schedule.window
    assert schedule.deadline == deadline.at
    assert schedule.immediate is None


@pytest.mark.parametrize(
    ("action", "state"),
    [
        ("required_install", "installed"),
        ("required_install", "not_applicable"),
        ("uninstall", "needed"),
        ("uninstall", "not_applicable"),
        ("available_install", "needed"),
        ("do_not_install", "unknown"),
    ],
)
def test_nothing_to_do_means_no_install_at_and_no_timers(action: ActionName, state: str) -> None:
    plan, schedule = plan_of(
        [("g", "u1", action, custom(NOW + timedelta(hours=1)))],
        progress={"u1": plans.Progress(state)},
    )
    [item] = plan.items
    assert item.install_at is None
    assert plan.next_window is None
    assert schedule == plans.Schedule()


@pytest.mark.parametrize(
    ("action", "state"),
    [("required_install", "unknown"), ("uninstall", "installed"), ("uninstall", "unknown")],
)
def test_pending_work_is_planned(action: ActionName, state: str) -> None:
    plan, schedule = plan_of(
        [("g", "u1", action, NO_DEADLINE)], progress={"u1": plans.Progress(state)}
    )
    assert plan.items[0].install_at == WINDOW
    assert schedule.window == WINDOW


def test_an_update_never_reported_is_unknown_and_pending() -> None:
    plan, _ = plan_of([("g", "u1", "required_install", NO_DEADLINE)])
    assert plan.items[0].state == "unknown"
    assert plan.items[0].install_at == WINDOW


def test_immediate_install_of_an_update_needing_no_restart() -> None:
    immediate = policy_in_force(allow_immediate_install=True)
    approval: list[Approval] = [("g", "u2", "required_install", NO_DEADLINE)]
    facts = {"u2": NO_RESTART}
    plan, schedule = plan_of(
        approval, facts=facts, policy=immediate, progress={"u2": plans.Progress("needed")}
    )
    assert plan.items[0].install_at == NOW
    assert schedule.immediate == NOW
    assert schedule.immediate_updates == ["u2"]
    # already planned: keeps the instant it was planned at
    planned = NOW - timedelta(minutes=4)
    plan, schedule = plan_of(
        approval,
        facts=facts,
        policy=immediate,
        progress={"u2": plans.Progress("needed", planned_at=planned)},
    )
    assert plan.items[0].install_at == planned
    assert schedule.immediate == NOW
    # once sent, it waits for the window like the rest
    plan, schedule = plan_of(
        approval,
        facts=facts,
        policy=immediate,
        progress={"u2": plans.Progress("needed", planned_at=planned, immediate_sent_at=planned)},
    )
    assert plan.items[0].install_at == WINDOW
    assert schedule.immediate is None
    assert schedule.immediate_updates == []


@pytest.mark.parametrize(
    ("allow", "restart", "action"),
    [
        (False, "never", "required_install"),
        (True, "may_request", "required_install"),
        (True, "always", "required_install"),
        (True, "never", "uninstall"),
    ],
)
def test_no_immediate_install_otherwise(
    allow: bool, restart: RestartName, action: ActionName
) -> None:
    facts = {"u1": plans.UpdateFacts("KB1", "t", restart, None, [])}
    plan, schedule = plan_of(
        [("g", "u1", action, NO_DEADLINE)],
        facts=facts,
        policy=policy_in_force(allow_immediate_install=allow),
        progress={"u1": plans.Progress("unknown")},
    )
    assert plan.items[0].install_at == WINDOW
    assert schedule.immediate is None


def test_updates_without_facts_are_left_out() -> None:
    plan, schedule = plan_of(
        [
            ("g", "u1", "required_install", NO_DEADLINE),
            ("g", "u9", "required_install", custom(NOW)),
        ]
    )
    assert [item.update_id for item in plan.items] == ["u1"]
    assert schedule.deadline is None  # u9's deadline is not armed either


def test_deadline_timer_skips_deadlines_already_fired() -> None:
    early, late = NOW - timedelta(hours=5), WINDOW + timedelta(hours=5)
    approvals: list[Approval] = [
        ("g", "u1", "required_install", custom(early)),
        ("g", "u2", "required_install", custom(late)),
    ]
    facts = {"u1": NEEDS_RESTART, "u2": NEEDS_RESTART}
    _, schedule = plan_of(approvals, facts=facts)
    assert schedule.deadline == early
    fired = plans.Computer("pc-0001", "Europe/Paris", deadline_fired_through=early)
    _, schedule = plan_of(approvals, facts=facts, computer=fired)
    assert schedule.deadline == late
    fired = plans.Computer("pc-0001", "Europe/Paris", deadline_fired_through=late)
    plan, schedule = plan_of(approvals, facts=facts, computer=fired)
    assert schedule.deadline is None
    assert [item.install_at for item in plan.items] == [early, WINDOW]


def test_plan_carries_the_policy_and_the_computer() -> None:
    policy = plans.PolicyInForce("pol-1", "Servers", PolicySettings(), "two policies")
    plan, _ = plan_of([("g", "u1", "required_install", NO_DEADLINE)], policy=policy)
    assert (plan.policy_id, plan.policy_name, plan.policy_conflict) == (
        "pol-1",
        "Servers",
        "two policies",
    )
    assert (plan.computer_id, plan.timezone, plan.computed_at) == ("pc-0001", "Europe/Paris", NOW)


def test_plan_digest_ignores_computed_at_but_not_the_items() -> None:
    approvals: list[Approval] = [("g", "u1", "required_install", NO_DEADLINE)]
    plan, _ = plan_of(approvals, progress={"u1": plans.Progress("needed")})
    later, _ = plan_of(
        approvals, progress={"u1": plans.Progress("needed")}, now=NOW + timedelta(minutes=1)
    )
    assert later.computed_at != plan.computed_at
    assert plans.plan_digest(later) == plans.plan_digest(plan)
    assert plans.plan_digest(plan.model_copy(update={"computed_at": END})) == plans.plan_digest(
        plan
    )
    installed, _ = plan_of(approvals, progress={"u1": plans.Progress("installed")})
    assert plans.plan_digest(installed) != plans.plan_digest(plan)
    retitled = plan.model_copy(
        update={"items": [plan.items[0].model_copy(update={"title": "other"})]}
    )
    assert plans.plan_digest(retitled) != plans.plan_digest(plan)


def test_due_items_forced_only_returns_passed_deadlines() -> None:
    facts = dict.fromkeys(("u1", "u2", "u3", "u4", "u5"), NEEDS_RESTART)
    plan, _ = plan_of(
        [
            ("g", "u1", "required_install", custom(NOW - timedelta(minutes=1))),
            ("g", "u2", "required_install", custom(NOW + timedelta(minutes=1))),
            ("g", "u3", "uninstall", custom(NOW)),
            ("g", "u4", "required_install", NO_DEADLINE),
            ("g", "u5", "required_install", custom(NOW - timedelta(days=1))),
        ],
        facts=facts,
        progress={"u3": plans.Progress("installed"), "u5": plans.Progress("installed")},
    )
    forced = plans.due_items(plan, forced_only=True, now=NOW)
    assert [(i.update_id, i.action, i.forced) for i in forced] == [
        ("u1", "required_install", True),
        ("u3", "uninstall", True),
    ]
    every = plans.due_items(plan, forced_only=False, now=NOW)
    assert [(i.update_id, i.forced) for i in every] == [
        ("u1", True),
        ("u2", False),
        ("u3", True),
        ("u4", False),
    ]
    only = plans.due_items(plan, forced_only=False, now=NOW, only=["u2", "u5"])
    assert [i.update_id for i in only] == ["u2"]


PRECEDENCE: tuple[ActionName, ...] = (
    "required_install",
    "uninstall",
    "available_install",
    "do_not_install",
)
plan_actions: st.SearchStrategy[ActionName] = st.sampled_from(PRECEDENCE)
plan_states = st.sampled_from(["installed", "needed", "not_applicable", "unknown"])
deadlines = st.one_of(
    st.just(NO_DEADLINE),
    st.integers(-72, 400).map(lambda hours: custom(NOW + timedelta(hours=hours))),
)


@dataclass(frozen=True)
class PlanCase:
    approvals: list[Approval]
    facts: dict[str, plans.UpdateFacts]
    progress: dict[str, plans.Progress]
    allow_immediate: bool
    fired_through: datetime | None


@st.composite
def plan_cases(draw: st.DrawFn) -> PlanCase:
    updates = [f"u{i}" for i in range(draw(st.integers(1, 5)))]
    approvals: list[Approval] = []
    facts: dict[str, plans.UpdateFacts] = {}
    progress: dict[str, plans.Progress] = {}
    for update in updates:
        groups = draw(st.sets(st.sampled_from(["g1", "g2", "g3"]), min_size=1))
        approvals.extend((g, update, draw(plan_actions), draw(deadlines)) for g in sorted(groups))
        if draw(st.integers(0, 4)):
            restart: RestartName = draw(st.sampled_from(["never", "may_request", "always"]))
            facts[update] = plans.UpdateFacts(None, update, restart, None, [])
        if draw(st.booleans()):
            sent = draw(st.sampled_from([None, NOW - timedelta(minutes=2)]))
            planned = draw(st.sampled_from([None, NOW - timedelta(minutes=3)]))
            progress[update] = plans.Progress(draw(plan_states), planned, sent)
    fired = draw(st.sampled_from([None, NOW - timedelta(hours=10), NOW + timedelta(hours=50)]))
    return PlanCase(draw(st.permutations(approvals)), facts, progress, draw(st.booleans()), fired)


@FAST
@given(plan_cases())
def test_build_plan_matches_the_rules(case: PlanCase) -> None:
    """Random approvals: each item, its install_at and the timers follow the rules."""
    computer = plans.Computer("pc-0001", "Europe/Paris", case.fired_through)
    policy = policy_in_force(allow_immediate_install=case.allow_immediate)
    plan, schedule = plans.build_plan(
        computer, policy, case.approvals, case.facts, case.progress, NOW
    )
    approved = {update for _, update, _, _ in case.approvals}
    assert [item.update_id for item in plan.items] == sorted(approved & set(case.facts))
    immediate: list[str] = []
    armed: list[datetime] = []
    for item in plan.items:
        mine = [(a, d) for _, u, a, d in case.approvals if u == item.update_id]
        action = next(a for a in PRECEDENCE if a in {x for x, _ in mine})
        assert item.action == action
        dated = [d.at for a, d in mine if a == action and d.at is not None]
        assert item.deadline == (min(dated) if dated else None)
        done = case.progress.get(item.update_id, plans.Progress())
        assert item.state == done.state
        todo = (action == "required_install" and done.state in ("needed", "unknown")) or (
            action == "uninstall" and done.state in ("installed", "unknown")
        )
        if not todo:
            assert item.install_at is None
            continue
        at_once = (
            case.allow_immediate
            and action == "required_install"
            and item.restart == "never"
            and done.immediate_sent_at is None
        )
        if at_once:
            immediate.append(item.update_id)
            assert item.install_at == (done.planned_at or NOW)
        elif item.deadline is not None and item.deadline <= WINDOW:
            assert item.install_at == item.deadline
        else:
            assert item.install_at == WINDOW
        if item.deadline is not None and (
            case.fired_through is None or item.deadline > case.fired_through
        ):
            armed.append(item.deadline)
    assert schedule.immediate_updates == immediate
    assert schedule.immediate == (NOW if immediate else None)
    assert schedule.deadline == (min(armed) if armed else None)
    anything = any(item.install_at is not None for item in plan.items)
    assert schedule.window == plan.next_window == (WINDOW if anything else None)
    assert plans.due_items(plan, forced_only=True, now=NOW) == [
        i for i in plans.due_items(plan, forced_only=False, now=NOW) if i.forced
    ]
    for due in plans.due_items(plan, forced_only=True, now=NOW):
        [item] = [i for i in plan.items if i.update_id == due.update_id]
        assert item.deadline is not None
        assert item.deadline <= NOW
