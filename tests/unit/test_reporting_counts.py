"""Reporting's counts for every action, no status and not reporting (docs/product.md
section 6), and the fleet list's cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts.reporting import StateCounts
from libs.domain.agent_reports import Observation
from services.reporting.domain import fleet
from services.reporting.domain.counts import (
    ComputerMove,
    Reach,
    behind_states,
    computer_deltas,
    counts_of,
    fleet_counts,
    is_behind,
    tally,
)


@pytest.mark.parametrize(
    ("state", "behind"),
    [
        ("needed", True),
        ("failed", True),
        ("no_status", True),
        ("installed", False),
        ("installed_pending_restart", False),
        ("not_applicable", False),
    ],
)
def test_a_required_install_is_behind_where_the_computer_lacks_it(state: str, behind: bool) -> None:
    assert is_behind("required_install", state) is behind


@pytest.mark.parametrize(
    ("state", "behind"),
    [
        ("installed", True),
        ("installed_pending_restart", True),
        ("needed", False),
        ("failed", True),
        ("no_status", False),
        ("not_applicable", False),
    ],
)
def test_an_uninstall_is_behind_where_the_computer_still_holds_it(state: str, behind: bool) -> None:
    assert is_behind("uninstall", state) is behind


@pytest.mark.parametrize("action", ["available_install", "do_not_install"])
def test_an_available_install_or_do_not_install_is_never_behind(action: str) -> None:
    assert behind_states(action) == ()  # type: ignore[arg-type]


def test_fleet_counts_count_silent_computers_as_not_reporting_only() -> None:
    # 10 targeted: 6 reported (2 of them silent: one failed, one installed), 3 silent in all
    # (so one silent never reported), 3 in contact never reported; one outside reported.
    counts = fleet_counts(
        {"installed": 3, "failed": 2, "needed": 1, "not_applicable": 1},
        {"failed": 1, "installed": 1},
        Reach(targeted=10, targeted_reported=6, targeted_silent=3, targeted_both=2),
    )
    assert counts == StateCounts(
        applies_to=4,
        installed=2,
        needed=1,
        failed=1,
        installed_pending_restart=0,
        not_applicable=1,
        no_status=3,
        not_reporting=3,
    )


def test_counts_of_keeps_no_status_and_not_reporting_apart() -> None:
    counts = counts_of({"failed": 2, "no_status": 1, "not_reporting": 4}, targeted=9)
    assert (counts.failed, counts.no_status, counts.not_reporting) == (2, 3, 4)


def test_a_silent_computers_updates_all_count_as_not_reporting() -> None:
    assert tally(["failed", "no_status"], silent=True).not_reporting == 2
    assert tally(["failed", "no_status"]).failed == 1
    assert tally(["failed", "no_status"]).no_status == 1


def test_computer_counters_move_with_each_state_change() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    seen = Observation("pc-1", "u1", at, "failed", 1, 1603)
    again = Observation("pc-1", "u2", at, "installed", 1, 0)
    assert computer_deltas([(seen, "needed"), (again, "none")]) == [
        ComputerMove("pc-1", "failed", 1),
        ComputerMove("pc-1", "installed", 1),
        ComputerMove("pc-1", "needed", -1),
    ]


def test_a_cursor_names_its_position_and_its_sort() -> None:
    position = fleet.Position("failed", "-3", "pc-0042")
    assert fleet.decode(fleet.encode(position), "failed") == position
    with pytest.raises(fleet.BadCursor):
        fleet.decode(fleet.encode(position), "name")
    with pytest.raises(fleet.BadCursor):
        fleet.decode("not a cursor!", "name")


def test_silent_since_is_the_setting_before_now() -> None:
    now = datetime(2026, 3, 8, tzinfo=UTC)
    assert fleet.silent_since(now, 7) == now - timedelta(days=7)
