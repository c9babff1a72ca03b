"""Maintenance windows' arithmetic (services/scheduler/domain/windows.py): weekly and monthly
windows in the computer's local time, across midnight and DST changes, several at once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from libs.contracts import windows as w
from libs.contracts.agents import ComputerPlan
from libs.contracts.policies import PolicySettings
from libs.domain.resolution import Deadline
from services.scheduler.domain import plans, restarts
from services.scheduler.domain.timers import fire, timer_plan
from services.scheduler.domain.windows import (
    MaintenanceWindow,
    converted,
    inside,
    next_scheduled_install,
    openings,
    windows_of,
    within_windows,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
TUESDAY, FRIDAY, SATURDAY, SUNDAY = 1, 4, 5, 6
TUESDAY_NIGHT = MaintenanceWindow(TUESDAY, time(22), time(2))
"""tuesday 22:00-02:00: crosses midnight."""
PATCH_WEDNESDAY = MaintenanceWindow(TUESDAY, time(22), time(2), occurrence=2, offset_days=1)
"""second tuesday + 1 day, 22:00-02:00 (the weekday is the one counted: Tuesday)."""


def local(text: str, zone: str = PARIS) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_weekly_window_crossing_midnight() -> None:
    windows = [TUESDAY_NIGHT]
    # 2026-03-03 is a Tuesday.
    assert within_windows(windows, PARIS, local("2026-03-03T21:00")) == local("2026-03-03T22:00")
    assert within_windows(windows, PARIS, local("2026-03-03T23:59")) == local("2026-03-03T23:59")
    after_midnight = local("2026-03-04T01:30")
    assert inside(windows, PARIS, after_midnight)
    assert within_windows(windows, PARIS, after_midnight) == after_midnight
    assert not inside(windows, PARIS, local("2026-03-04T02:00")), "closed at its end"
    assert within_windows(windows, PARIS, local("2026-03-04T02:00")) == local("2026-03-10T22:00")
    assert openings(windows, PARIS, local("2026-03-03T00:00"), local("2026-03-05T00:00")) == [
        (local("2026-03-03T22:00"), local("2026-03-04T02:00"))
    ]


def test_a_monthly_window_second_tuesday_plus_one_day() -> None:
    windows = [PATCH_WEDNESDAY]
    # March 2026: Tuesdays are the 3rd and the 10th, so the window is Wednesday the 11th.
    assert within_windows(windows, PARIS, local("2026-03-01T00:00")) == local("2026-03-11T22:00")
    assert within_windows(windows, PARIS, local("2026-03-12T01:59")) == local("2026-03-12T01:59")
    # April 2026: Tuesdays the 7th and 14th; the 15th is in summer time (UTC+2).
    assert within_windows(windows, PARIS, local("2026-03-12T02:00")) == utc("2026-04-15T20:00")
    found = openings(windows, PARIS, utc("2026-01-01T00:00"), utc("2026-07-01T00:00"))
    assert [opens.astimezone(ZoneInfo(PARIS)).date().isoformat() for opens, _ in found] == [
        "2026-01-14",
        "2026-02-11",
        "2026-03-11",
        "2026-04-15",
        "2026-05-13",
        "2026-06-10",
    ]
    assert all(closes - opens == timedelta(hours=4) for opens, closes in found)


def test_an_offset_may_carry_the_window_into_the_next_month() -> None:
    # The last Friday of July 2026 is the 31st; + 3 days is Monday 3 August.
    window = MaintenanceWindow(FRIDAY, time(20), time(23), occurrence=5, offset_days=3)
    assert within_windows([window], PARIS, local("2026-07-25T00:00")) == local("2026-08-03T20:00")


def test_paris_spring_forward() -> None:
    # 2026-03-29, clocks jump from 02:00 to 03:00.
    over_the_jump = MaintenanceWindow(SUNDAY, time(1, 30), time(3, 30))
    (only,) = openings([over_the_jump], PARIS, local("2026-03-29T00:00"), local("2026-03-30T00:00"))
    assert only == (utc("2026-03-29T00:30"), utc("2026-03-29T01:30")), "one real hour"
    in_the_gap = MaintenanceWindow(SUNDAY, time(2, 30), time(4))
    (gap,) = openings([in_the_gap], PARIS, local("2026-03-29T00:00"), local("2026-03-30T00:00"))
    assert gap == (utc("2026-03-29T01:30"), utc("2026-03-29T02:00")), "opens just after the jump"
    # The next Sunday, the same window is its full length again.
    (later,) = openings([in_the_gap], PARIS, local("2026-04-05T00:00"), local("2026-04-06T00:00"))
    assert later[1] - later[0] == timedelta(hours=1, minutes=30)


def test_paris_fall_back() -> None:
    # 2026-10-25, clocks go back from 03:00 to 02:00: 02:00-03:00 happens twice.
    window = MaintenanceWindow(SUNDAY, time(1, 30), time(3))
    (only,) = openings([window], PARIS, local("2026-10-25T00:00"), local("2026-10-26T00:00"))
    assert only == (utc("2026-10-24T23:30"), utc("2026-10-25T02:00")), "two and a half hours"
    repeated = MaintenanceWindow(SUNDAY, time(2, 30), time(4))
    (first,) = openings([repeated], PARIS, local("2026-10-25T00:00"), local("2026-10-26T00:00"))
    assert first[0] == utc("2026-10-25T00:30"), "opens at the first 02:30"


def test_new_york_windows_crossing_midnight_over_both_changes() -> None:
    saturday_night = [MaintenanceWindow(SATURDAY, time(22), time(2))]
    # Spring forward on Sunday 2026-03-08 at 02:00: the window closes at 03:00 EDT.
    (spring,) = openings(saturday_night, NEW_YORK, utc("2026-03-07T12:00"), utc("2026-03-08T12:00"))
    assert spring == (utc("2026-03-08T03:00"), utc("2026-03-08T07:00"))
    # Fall back on Sunday 2026-11-01 at 02:00: 02:00 EST, one hour longer in real time.
    (fall,) = openings(saturday_night, NEW_YORK, utc("2026-10-31T12:00"), utc("2026-11-01T12:00"))
    assert fall == (utc("2026-11-01T02:00"), utc("2026-11-01T07:00"))
    assert fall[1] - fall[0] == timedelta(hours=5)
    assert within_windows(saturday_night, NEW_YORK, utc("2026-11-01T06:30")) == utc(
        "2026-11-01T06:30"
    )


def test_several_windows_the_earliest_opening_wins() -> None:
    windows = [TUESDAY_NIGHT, MaintenanceWindow(SATURDAY, time(9), time(12)), PATCH_WEDNESDAY]
    # From Wednesday 2026-03-04 03:00: Saturday 09:00 comes before the next Tuesday night.
    assert within_windows(windows, PARIS, local("2026-03-04T03:00")) == local("2026-03-07T09:00")
    # After Tuesday night's window closed, the monthly one (Wednesday 11 March) opens first.
    assert within_windows(windows, PARIS, local("2026-03-11T12:00")) == local("2026-03-11T22:00")
    assert within_windows([], PARIS, local("2026-03-11T12:00")) == local("2026-03-11T12:00")


def test_the_policy_time_moves_to_the_next_window_when_outside() -> None:
    at_three = PolicySettings(use_maintenance_window=False, scheduled_time="03:00")
    at_eleven = PolicySettings(use_maintenance_window=False, scheduled_time="23:00")
    monday = local("2026-03-02T10:00")
    assert next_scheduled_install(at_three, [TUESDAY_NIGHT], PARIS, monday) == local(
        "2026-03-03T22:00"
    )
    # Monday 23:00 is outside: the next window's opening, not the next 23:00 inside one.
    assert next_scheduled_install(at_eleven, [TUESDAY_NIGHT], PARIS, monday) == local(
        "2026-03-03T22:00"
    )
    in_the_window = local("2026-03-03T22:30")
    assert next_scheduled_install(at_eleven, [TUESDAY_NIGHT], PARIS, in_the_window) == local(
        "2026-03-03T23:00"
    ), "the policy's time inside a window is kept"
    assert next_scheduled_install(at_three, [], PARIS, monday) == local("2026-03-03T03:00")


def test_a_window_moved_install_is_kept_until_it_happens() -> None:
    """Tuesday's 03:00 moved to Tuesday 22:00: asked again on Tuesday afternoon (a plan
    recomputed after a report), the answer is still Tuesday 22:00, not the window after
    Wednesday's 03:00; once it happened, the next is the following Tuesday's."""
    at_three = PolicySettings(use_maintenance_window=False, scheduled_time="03:00")
    windows = [TUESDAY_NIGHT]
    for asked in ("2026-03-02T10:00", "2026-03-03T03:00", "2026-03-03T16:00", "2026-03-03T21:59"):
        assert next_scheduled_install(at_three, windows, PARIS, local(asked)) == local(
            "2026-03-03T22:00"
        ), asked
    for asked in ("2026-03-03T22:00", "2026-03-03T23:30", "2026-03-04T03:00"):
        assert next_scheduled_install(at_three, windows, PARIS, local(asked)) == local(
            "2026-03-10T22:00"
        ), asked


ZONES = (PARIS, NEW_YORK, "Australia/Sydney", "Asia/Kolkata", "UTC", "America/St_Johns")
times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
windows_strategy = st.lists(
    st.builds(
        MaintenanceWindow,
        weekday=st.integers(0, 6),
        start=times,
        end=times,
        occurrence=st.none() | st.integers(1, 5),
        offset_days=st.integers(0, 14),
    ).filter(lambda w: w.start != w.end and (w.occurrence is not None or w.offset_days == 0)),
    min_size=1,
    max_size=4,
)
instants = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2028, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=150, deadline=None, database=None)
@given(windows=windows_strategy, zone=st.sampled_from(ZONES), at=instants)
def test_the_first_instant_inside_a_window(
    windows: list[MaintenanceWindow], zone: str, at: datetime
) -> None:
    found = within_windows(windows, zone, at)
    assert found is not None
    assert found >= at
    assert inside(windows, zone, found)
    # Nothing earlier: no window is open anywhere in [at, found).
    if found > at:
        assert not inside(windows, zone, at)
        assert openings(windows, zone, at, found) == []


# The contract's text form, a computer's windows from its groups, and the plan.


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("tuesday 22:00-02:00", {"weekday": "tuesday", "start": "22:00", "end": "02:00"}),
        (
            "second tuesday + 1 day, 22:00-02:00",
            {"weekday": "tuesday", "occurrence": "second", "offset_days": 1},
        ),
        ("Last Friday +3 days 8:00-9:30", {"occurrence": "last", "start": "08:00"}),
    ],
)
def test_windows_are_written_as_operators_say_them(text: str, fields: dict[str, object]) -> None:
    window = w.MaintenanceWindow.model_validate(text)
    assert {key: getattr(window, key) for key in fields} == fields
    assert w.MaintenanceWindow.model_validate(window.text()) == window


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("tusday 01:00-02:00", ["'tusday'", "monday"]),
        ("fifth tuesday 01:00-02:00", ["'fifth'", "first, second, third, fourth, last"]),
        ("tuesday 22:00-22:00", ["22:00", "needs a length"]),
        ("tuesday + 2 days, 01:00-02:00", ["offset_days 2", "occurrence"]),
        ("second monday + 20 days, 01:00-02:00", ["offset_days", "14"]),
        ("tuesday 25:00-02:00", ["start", "25:00"]),
        ("whenever", ["'whenever'", "second tuesday + 1 day, 22:00-02:00"]),
    ],
)
def test_a_bad_window_is_refused_naming_it_and_what_is_allowed(text: str, named: list[str]) -> None:
    with pytest.raises(ValidationError) as refused:
        w.MaintenanceWindow.model_validate(text)
    message = str(refused.value)
    assert all(part in message for part in named), message


def test_a_computers_windows_are_its_groups_and_their_ancestors() -> None:
    parents: dict[str, str | None] = {"root": None, "dc": "root", "servers": "dc", "lab": "root"}
    tuesday = w.MaintenanceWindow.model_validate("tuesday 22:00-02:00")
    monthly = w.MaintenanceWindow.model_validate("second tuesday + 1 day, 22:00-02:00")
    saturday = w.MaintenanceWindow.model_validate("saturday 09:00-12:00")
    by_group = {"dc": [monthly], "servers": [tuesday], "lab": [saturday], "root": [tuesday]}
    found = windows_of(["root", "servers"], parents, by_group)
    assert set(found) == {tuesday, monthly}, "its own, its parent's, All computers' (once)"
    assert windows_of(["root", "servers", "lab"], parents, by_group) == tuple(
        sorted({tuesday, monthly, saturday}, key=lambda x: x.model_dump_json())
    )
    assert windows_of(["root"], parents, {}) == ()


NEEDS_RESTART = plans.UpdateFacts(
    kb="5034441", title="Cumulative update", restart="always", command_line=None, return_codes=[]
)
NO_RESTART = plans.UpdateFacts(
    kb="5034442", title="Definitions", restart="never", command_line=None, return_codes=[]
)
MONDAY = local("2026-03-02T10:00")


def plan_with_windows(
    deadline: datetime | None, facts: plans.UpdateFacts = NEEDS_RESTART
) -> tuple[ComputerPlan, plans.Schedule]:
    return plans.build_plan(
        plans.Computer(
            "pc-1",
            PARIS,
            windows=(w.MaintenanceWindow.model_validate("tuesday 22:00-02:00"),),
        ),
        plans.PolicyInForce(None, "no policy", PolicySettings(use_maintenance_window=False), None),
        [
            (
                "g1",
                "u1",
                "required_install",
                Deadline("none", None) if deadline is None else Deadline("custom", deadline),
            )
        ],
        {"u1": facts},
        {},
        MONDAY,
    )


def test_the_plan_installs_at_the_windows_opening_and_lists_the_windows() -> None:
    plan, schedule = plan_with_windows(None)
    assert plan.next_window == local("2026-03-03T22:00")
    assert plan.items[0].install_at == local("2026-03-03T22:00")
    assert schedule.window == local("2026-03-03T22:00")
    assert [x.text() for x in plan.maintenance_windows] == ["tuesday 22:00-02:00"]
    assert timer_plan(plan).maintenance_windows == plan.maintenance_windows


def test_a_deadline_outside_the_windows_is_kept() -> None:
    deadline = local("2026-03-03T12:00")
    plan, schedule = plan_with_windows(deadline)
    assert plan.items[0].install_at == deadline
    assert schedule.deadline == deadline
    fired = fire("deadline", "pc-1", timer_plan(plan), deadline)
    assert fired.install is not None
    assert [i.forced for i in fired.install.updates] == [True]


def test_an_update_needing_no_restart_waits_for_the_window() -> None:
    plan, schedule = plan_with_windows(None, NO_RESTART)
    assert schedule.immediate == local("2026-03-03T22:00")
    assert plan.items[0].install_at == local("2026-03-03T22:00")


def test_a_fired_window_comes_back_at_the_next_allowed_instant() -> None:
    plan, _ = plan_with_windows(None)
    fired = fire("window", "pc-1", timer_plan(plan), local("2026-03-03T22:00"))
    assert fired.install is not None
    assert fired.next_due == local("2026-03-10T22:00"), "Wednesday 03:00 is outside"


def test_a_catch_up_outside_the_windows_sends_only_what_a_deadline_forces() -> None:
    plan, _ = plan_with_windows(None)
    outside = fire("catch_up", "pc-1", timer_plan(plan), local("2026-03-04T10:00"))
    assert outside.install is None
    inside_window = fire("catch_up", "pc-1", timer_plan(plan), local("2026-03-03T23:00"))
    assert inside_window.install is not None


def test_a_restart_not_forced_waits_for_a_window() -> None:
    windows = converted([w.MaintenanceWindow.model_validate("tuesday 22:00-02:00")])

    def opening(at: datetime) -> datetime:
        return within_windows(windows, PARIS, at) or at

    waiting = restarts.RestartState("waiting", local("2026-03-04T01:55"))
    assert restarts.held_to_windows(waiting, opening) == waiting, "inside: unchanged"
    late = restarts.RestartState("waiting", local("2026-03-04T02:10"))
    assert restarts.held_to_windows(late, opening).due_at == local("2026-03-10T22:00")
    prompting = restarts.RestartState("prompting", local("2026-03-04T10:00"), 2)
    assert restarts.held_to_windows(prompting, opening) == prompting


@settings(max_examples=100, deadline=None, database=None)
@given(
    windows=windows_strategy,
    zone=st.sampled_from(ZONES),
    at=instants,
    policy_time=times,
    later=st.floats(0, 1),
)
def test_the_next_install_is_inside_a_window_and_stays_until_it_happens(
    windows: list[MaintenanceWindow], zone: str, at: datetime, policy_time: time, later: float
) -> None:
    policy = PolicySettings(
        use_maintenance_window=False, scheduled_time=policy_time.strftime("%H:%M")
    )
    found = next_scheduled_install(policy, windows, zone, at)
    assert found > at
    assert inside(windows, zone, found)
    # Asked again at any instant before it (a plan recomputed meanwhile): the same answer.
    between = at + (found - at) * later
    if between < found:
        assert next_scheduled_install(policy, windows, zone, between) == found
