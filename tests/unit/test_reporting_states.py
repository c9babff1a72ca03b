"""How agent reports move one update's state on one computer (reporting's pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.reporting.domain.states import NONE, detection, install, latest, moves

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_a_first_report_always_applies() -> None:
    assert moves(NONE, None, detection("pc", "u", T, "needed"))


def test_an_older_report_never_moves_the_state_back() -> None:
    assert not moves("installed", T, detection("pc", "u", T - timedelta(hours=1), "needed"))
    assert moves("needed", T, detection("pc", "u", T + timedelta(hours=1), "installed"))


def test_at_the_same_time_an_install_result_outranks_a_detection() -> None:
    assert moves("needed", T, install("pc", "u", T, "failure", 1603))
    assert not moves("failed", T, detection("pc", "u", T, "needed"))


def test_a_failure_stays_visible_while_the_update_is_still_needed() -> None:
    later = detection("pc", "u", T + timedelta(hours=8), "needed")
    assert not moves("failed", T, later)
    assert moves("failed", T, detection("pc", "u", T + timedelta(hours=8), "installed"))


def test_a_pending_restart_is_not_erased_by_a_detection_of_installed() -> None:
    assert not moves(
        "installed_pending_restart", T, detection("pc", "u", T + timedelta(hours=1), "installed")
    )


def test_return_codes_map_to_states() -> None:
    assert install("pc", "u", T, "success", 0).state == "installed"
    assert install("pc", "u", T, "success_restart_required", 3010).state == (
        "installed_pending_restart"
    )
    assert install("pc", "u", T, "failure", 1603).state == "failed"
    assert install("pc", "u", T, "success", 0, uninstall=True).state == "needed"


def test_latest_keeps_the_newest_observation_per_computer_and_update() -> None:
    old = detection("pc", "u", T, "needed")
    new = install("pc", "u", T, "success", 0)
    other = detection("pc2", "u", T, "not_applicable")
    found = latest([new, old, other])
    assert found[("pc", "u")] == new
    assert found[("pc2", "u")] == other
