"""What an agent's report means (libs/domain/agent_reports.py): the rule scheduler and
reporting share, so both store the same state for the same report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.contracts.agents import AgentStatus, DetectionResult, InstallResult
from libs.contracts.catalog import ReturnCode
from libs.domain.agent_reports import (
    DEFAULT_RETURN_CODES,
    NO_REPORT,
    Observation,
    after_restart,
    detection,
    install_result,
    latest,
    moves,
    outcome_of,
    read_report,
    state_after,
)

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def result(code: int, operation: str = "install", update_id: str = "u") -> InstallResult:
    return InstallResult.model_validate(
        {
            "update_id": update_id,
            "operation": operation,
            "return_code": code,
            "started_at": T - timedelta(minutes=2),
            "finished_at": T - timedelta(minutes=1),
        }
    )


def installed(code: int, at: datetime = T, operation: str = "install") -> Observation:
    return install_result("pc", at, result(code, operation), DEFAULT_RETURN_CODES)


def test_the_default_map_reads_0_and_3010_and_fails_every_other_code() -> None:
    """docs/product.md section 4: the map every update has unless the operator changes it."""
    assert outcome_of(0, []) == "success"
    assert outcome_of(3010, []) == "success_restart_required"
    assert outcome_of(1603, []) == "failure"


def test_an_update_map_replaces_the_default_one() -> None:
    """An operator's map decides alone: a code it leaves out is a failure, even 0."""
    codes = [ReturnCode(code=1641, outcome="success_restart_required")]
    assert outcome_of(1641, codes) == "success_restart_required"
    assert outcome_of(0, codes) == "failure"


def test_return_codes_lead_to_states() -> None:
    assert installed(0).state == "installed"
    assert installed(3010).state == "installed_pending_restart"
    assert installed(1603).state == "failed"


def test_a_successful_uninstall_leaves_the_update_needed_not_inapplicable() -> None:
    """The decision: removed means applicable and absent, so a later required install plans."""
    assert installed(0, operation="uninstall").state == "needed"
    assert installed(3010, operation="uninstall").state == "needed"
    assert installed(1603, operation="uninstall").state == "failed"
    assert state_after("uninstall", "success") == "needed"


def test_a_first_report_always_applies() -> None:
    assert moves(NO_REPORT, None, detection("pc", "u", T, "needed"))
    assert moves("unknown", None, detection("pc", "u", T, "needed"))


def test_an_older_report_never_moves_the_state_back() -> None:
    assert not moves("installed", T, detection("pc", "u", T - timedelta(hours=1), "needed"))
    assert moves("needed", T, detection("pc", "u", T + timedelta(hours=1), "installed"))


def test_at_the_same_time_an_install_result_outranks_a_detection() -> None:
    assert moves("needed", T, installed(1603))
    assert not moves("failed", T, detection("pc", "u", T, "needed"))


def test_a_failure_stays_visible_while_the_update_is_still_needed() -> None:
    later = detection("pc", "u", T + timedelta(hours=8), "needed")
    assert not moves("failed", T, later)
    assert moves("failed", T, detection("pc", "u", T + timedelta(hours=8), "installed"))


def test_a_pending_restart_is_not_erased_by_a_detection_of_installed() -> None:
    assert not moves(
        "installed_pending_restart", T, detection("pc", "u", T + timedelta(hours=1), "installed")
    )
    assert after_restart("installed_pending_restart") == "installed"
    assert after_restart("failed") == "failed"


def test_latest_keeps_the_newest_observation_per_computer_and_update() -> None:
    old = detection("pc", "u", T, "needed")
    new = installed(0)
    other = detection("pc2", "u", T, "not_applicable")
    found = latest([new, old, other])
    assert found[("pc", "u")] == new
    assert found[("pc2", "u")] == other


def test_one_report_naming_an_update_twice_yields_one_observation() -> None:
    """A detection and an install result for the same update in one report (the contract
    allows it) must reach a store once: the install result wins at equal report times."""
    status = AgentStatus(
        computer_id="pc",
        reported_at=T,
        detections=[DetectionResult(update_id="u", state="installed")],
        installs=[result(0)],
    )
    found = latest(read_report(status, {}))
    assert list(found) == [("pc", "u")]
    assert found[("pc", "u")].rank == 1
    assert found[("pc", "u")].state == "installed"
