"""The console's Alertmanager webhook, without a broker: what each alert of a payload asks
for (services/console/alerts.py `triage`); tests/integration/test_rollout_controls.py runs
it against the services."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from libs.contracts import approval as a
from services.console.alerts import AlertmanagerAlert, AlertmanagerPayload, AlertOutcome, triage

LABELS = {
    "alertname": "LockgateUpdateFailureRateHigh",
    "severity": "critical",
    "update": "KB5036000",
}
FIRING = {
    "status": "firing",
    "labels": LABELS,
    "annotations": {"summary": "KB5036000 fails on 33.33% of installs"},
    "startsAt": "2026-03-02T09:25:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
}


def alert(**changes: object) -> AlertmanagerAlert:
    return AlertmanagerAlert.model_validate({**FIRING, **changes})


def test_a_firing_failure_rate_alert_asks_for_a_fleet_wide_pause_naming_it() -> None:
    found = triage(alert())
    assert isinstance(found, a.PauseUpdate)
    assert (found.update, found.group, found.requested_by) == (
        "KB5036000",
        None,
        "alert:LockgateUpdateFailureRateHigh",
    )
    assert found.reason.startswith("alert LockgateUpdateFailureRateHigh fired for KB5036000")
    assert "33.33%" in found.reason


def test_a_long_summary_is_cut_to_what_a_reason_may_hold() -> None:
    found = triage(alert(annotations={"summary": "x" * 2000}))
    assert isinstance(found, a.PauseUpdate)
    assert len(found.reason) == 500


@pytest.mark.parametrize(
    ("changes", "done", "why"),
    [
        ({"status": "resolved"}, "ignored", "lifted only by an operator"),
        ({"labels": {"alertname": "LockgateServiceDown"}}, "ignored", "not one Lockgate acts on"),
        (
            {"labels": {"alertname": "LockgateUpdateFailureRateHigh"}},
            "refused",
            "no 'update' label",
        ),
    ],
)
def test_what_is_not_paused_says_why(changes: dict[str, object], done: str, why: str) -> None:
    found = triage(alert(**changes))
    assert isinstance(found, AlertOutcome)
    assert found.done == done
    assert why in found.detail


def test_only_version_4_payloads_are_read() -> None:
    with pytest.raises(ValidationError, match="version"):
        AlertmanagerPayload.model_validate({"version": "3", "status": "firing", "alerts": []})
    payload = AlertmanagerPayload.model_validate(
        {"version": "4", "status": "firing", "alerts": [FIRING], "truncatedAlerts": 0}
    )
    assert payload.alerts[0].labels["update"] == "KB5036000"


def test_an_update_label_a_message_cannot_carry_is_refused_not_a_failure() -> None:
    """Labels are the sender's text: one with a NUL character is refused, naming why."""
    found = triage(alert(labels={**LABELS, "update": "KB1\x00"}))
    assert isinstance(found, AlertOutcome)
    assert found.done == "refused"
    assert "update" in found.detail
