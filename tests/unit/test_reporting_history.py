"""The compliance history's rules: one interval name per instant whatever the replica, and
the overview's totals from summed counters equal to the sum of every update's counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from libs.contracts import reporting as r
from services.reporting.domain.counts import Reach, fleet_counts, sum_counts, total_reach
from services.reporting.domain.history import interval_start, kept_from

T = datetime(2026, 11, 20, 12, 3, 17, 250_000, tzinfo=UTC)


def test_an_instant_falls_in_the_interval_counted_from_the_epoch() -> None:
    assert interval_start(T, 300) == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert interval_start(T, 1) == datetime(2026, 11, 20, 12, 3, 17, tzinfo=UTC)
    assert interval_start(T, 0.5) == T - timedelta(microseconds=250_000)


@pytest.mark.parametrize("seconds", [1, 1.1, 7, 300, 3600])
def test_two_replicas_name_an_interval_alike(seconds: float) -> None:
    """Any two instants of one interval name the same start, to the microsecond: the primary
    key that keeps one point per interval depends on it (no float rounding)."""
    start = interval_start(T, seconds)
    step = timedelta(seconds=seconds)
    assert start <= T < start + step
    for offset in (timedelta(0), step / 3, step - timedelta(microseconds=1)):
        assert interval_start(start + offset, seconds) == start
    assert interval_start(start + step, seconds) == start + step


def test_an_instant_in_another_zone_names_the_same_interval() -> None:
    kolkata = T.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert interval_start(kolkata, 300) == interval_start(T, 300)
    assert interval_start(kolkata, 300).utcoffset() == timedelta(0)


def test_points_are_kept_for_the_history_days() -> None:
    assert kept_from(T, 90) == T - timedelta(days=90)
    assert kept_from(T, 0.5) == T - timedelta(hours=12)


def test_totals_from_summed_counters_equal_the_sum_of_every_update() -> None:
    """fleet_totals reads counters added up over updates: fleet_counts is a sum of its
    inputs, so one call on the sums gives the summary's totals without counting per update."""
    per_update = [
        ({"installed": 5, "needed": 2, "failed": 1}, {"failed": 1}, Reach(10, 8, 2, 1)),
        ({"installed_pending_restart": 3, "not_applicable": 4}, {}, Reach()),
        ({"needed": 7}, {"needed": 2}, Reach(9, 7, 3, 2)),
    ]
    expected = sum_counts([fleet_counts(c, s, reach) for c, s, reach in per_update])

    def added(maps: list[dict[str, int]]) -> dict[str, int]:
        found: dict[str, int] = {}
        for states in maps:
            for state, n in states.items():
                found[state] = found.get(state, 0) + n
        return found

    totals = fleet_counts(
        added([c for c, _, _ in per_update]),
        added([s for _, s, _ in per_update]),
        total_reach(reach for _, _, reach in per_update),
    )
    assert totals == expected
    assert (totals.no_status, totals.not_reporting) == (1 + 1, 1 + 1 + 2 + 1)


def test_history_since_is_read_in_utc_and_an_unrepresentable_one_is_refused() -> None:
    query = r.ComplianceHistory.model_validate({"since": "2026-11-20T13:00:00+01:00"})
    assert query.since == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert query.since is not None
    assert query.since.tzinfo == UTC
    with pytest.raises(ValidationError, match="out of range"):
        r.ComplianceHistory.model_validate({"since": "0001-01-01T00:00:00+01:00"})
    with pytest.raises(ValidationError):
        r.ComplianceHistory(limit=2001)


def test_update_computers_refuses_an_unknown_state() -> None:
    with pytest.raises(ValidationError):
        r.UpdateComputers.model_validate({"update": "5073455", "state": "not_reporting"})
