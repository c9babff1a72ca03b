"""Rollouts (rings), pure rules (services/approval/domain/rollouts.py): which rings are
allowed, the gate's arithmetic, the delay between rings, holding, go, cancel and completing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from libs.contracts import approval as a
from libs.contracts import reporting as r
from libs.contracts import rollouts as ro
from libs.contracts.rings import RingGate
from libs.service.errors import Conflict, InvalidInput
from services.approval.domain import rollouts as rules
from services.approval.domain.rollouts import RolloutRecord
from services.approval.domain.tree import Paused, Tree
from services.approval.domain.updates import Update
from services.cli.rollout_commands import rollout_text

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ROOT = a.ROOT_GROUP_ID
TREE = Tree({ROOT: None, "pilot": ROOT, "early": ROOT, "broad": ROOT, "pilot-lab": "pilot"})
NAMES = {ROOT: a.ROOT_GROUP_NAME, "pilot": "Pilot", "early": "Early", "broad": "Broad"}
GATE = RingGate(delay_hours=24, min_installed_percent=95, max_failed_percent=2, min_reports=20)
UPDATE = Update(
    update_id="0496b64b-4a42-52f3-a887-fcddb4f2f23d",
    kb="5073455",
    revision=1,
    origin="microsoft",
    title="2026-02 Security Update for Windows",
    classification="Security Updates",
    severity="Critical",
    product_families=["Windows"],
    release_date=T0,
    superseded_by=[],
    expired_at=None,
    declined_at=None,
    products=["Windows 11"],
    supersedes=[],
)


def counts(
    *, installed: int = 0, pending: int = 0, needed: int = 0, failed: int = 0, **rest: int
) -> r.StateCounts:
    return r.StateCounts(
        applies_to=installed + pending + needed + failed,
        installed=installed,
        needed=needed,
        failed=failed,
        installed_pending_restart=pending,
        not_applicable=rest.get("not_applicable", 0),
        no_status=rest.get("no_status", 0),
        not_reporting=rest.get("not_reporting", 0),
    )


def three_rings(gate: RingGate = GATE) -> RolloutRecord:
    return rules.start(
        rollout_id="r-1",
        update_id=UPDATE.update_id,
        ring_ids=["pilot", "early", "broad"],
        action="required_install",
        deadline=a.DeadlineChoice(kind="one_week"),
        gate=gate,
        now=T0,
        by="operator",
    )


# --- which rings ----------------------------------------------------------------------------


def test_rings_in_separate_branches_and_all_computers_last_are_allowed() -> None:
    rules.check_rings(TREE, ["pilot", "early", ROOT], ["Pilot", "Early", "All computers"])


@pytest.mark.parametrize(
    ("rings", "field", "words"),
    [
        pytest.param(["pilot", "pilot"], "rings[1]", "already ring 1", id="twice"),
        pytest.param(["pilot", "pilot-lab"], "rings[1]", "below ring 1", id="below-earlier"),
        pytest.param([ROOT, "pilot"], "rings[1]", "below ring 1", id="all-computers-first"),
        pytest.param(["pilot"], "rings", "at least 2 rings", id="one-ring"),
    ],
)
def test_a_ring_that_would_start_with_an_earlier_one_is_refused_naming_it(
    rings: list[str], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words) as refused:
        rules.check_rings(TREE, rings, [f"ref-{g}" for g in rings])
    assert refused.value.field == field
    if len(rings) > 1:
        assert f"'ref-{rings[1]}'" in str(refused.value)


def test_a_rules_rings_are_named_by_the_rules_field() -> None:
    with pytest.raises(InvalidInput) as refused:
        rules.check_rings(TREE, ["early", "early"], ["Early", "early"], "rule.groups")
    assert refused.value.field == "rule.groups[1]"


def test_a_deadline_goes_with_required_install_only() -> None:
    rules.check_deadline("required_install", a.DeadlineChoice(kind="one_week"))
    rules.check_deadline("available_install", a.DeadlineChoice())
    with pytest.raises(InvalidInput, match="'one_week' is not allowed with action") as refused:
        rules.check_deadline("available_install", a.DeadlineChoice(kind="one_week"))
    assert refused.value.field == "deadline"


def test_the_gate_settings_are_range_checked_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="max_failed_percent"):
        RingGate(max_failed_percent=0)
    with pytest.raises(ValidationError, match="min_installed_percent"):
        RingGate(min_installed_percent=101)
    with pytest.raises(ValidationError, match="min_reports"):
        RingGate(min_reports=0)
    with pytest.raises(ValidationError, match="delay_hours"):
        RingGate(delay_hours=-1)
    with pytest.raises(ValidationError, match="rings"):
        ro.StartRollout(update="5073455", rings=["Pilot"])


# --- the gate's arithmetic --------------------------------------------------------------------


def test_too_few_reports_wait_whatever_the_shares() -> None:
    figures = rules.measure(GATE, counts(installed=19), 1, T0)
    assert (figures.verdict, figures.reported) == ("waiting", 19)
    assert figures.why == "19 report(s) so far, at least 20 needed"


def test_enough_installs_and_few_failures_pass() -> None:
    figures = rules.measure(GATE, counts(installed=37, pending=1, needed=2), 1, T0)
    assert figures.verdict == "passed"
    assert (figures.reported, figures.installed, figures.installed_percent) == (40, 38, 95.0)
    assert figures.failed_percent == 0.0
    assert "95% installed (at least 95% needed)" in figures.why


def test_failures_at_the_threshold_hold_the_rollout_with_the_figures() -> None:
    """2 failures in 100 reports is 2%: failures must stay *below* 2%."""
    figures = rules.measure(GATE, counts(installed=98, failed=2), 1, T0)
    assert figures.verdict == "held"
    assert figures.why == "2% failed (2 of 100 reports): failures must stay below 2%"
    below = rules.measure(GATE, counts(installed=99, failed=1), 1, T0)
    assert below.verdict == "passed"


def test_failures_hold_even_when_enough_is_installed() -> None:
    figures = rules.measure(GATE, counts(installed=96, failed=4), 2, T0)
    assert (figures.verdict, figures.rings_measured, figures.failed_percent) == ("held", 2, 4.0)


def test_not_enough_installed_yet_waits() -> None:
    figures = rules.measure(GATE, counts(installed=90, needed=10), 1, T0)
    assert figures.verdict == "waiting"
    assert figures.why == "90% installed (90 of 100 reports), at least 95% needed"


def test_not_applicable_no_status_and_silent_computers_are_not_reports() -> None:
    figures = rules.measure(
        GATE,
        counts(installed=20, not_applicable=50, no_status=30, not_reporting=7),
        1,
        T0,
    )
    assert (figures.reported, figures.verdict) == (20, "passed")
    assert (figures.no_status, figures.not_reporting) == (30, 7)


def test_thresholds_compare_whole_counts_not_rounded_percents() -> None:
    """2 of 3 installed is 66.67% rounded, below a 66.67% threshold on whole counts."""
    gate = RingGate(min_installed_percent=66.67, max_failed_percent=50, min_reports=3)
    figures = rules.measure(gate, counts(installed=2, needed=1), 1, T0)
    assert figures.installed_percent == 66.67
    assert figures.verdict == "waiting"


# --- delays, order, holding, go, cancel -------------------------------------------------------


def test_the_first_ring_starts_at_once_and_the_next_after_the_delay() -> None:
    rollout = three_rings()
    assert (rollout.rings_started, rollout.next_ring, rollout.state) == (1, 1, "running")
    assert rollout.rings[0].started_by == "start"
    assert rollout.next_due() == T0 + timedelta(hours=24)
    assert not rules.due(rollout, T0 + timedelta(hours=23, minutes=59))
    assert rules.due(rollout, T0 + timedelta(hours=24))
    assert rollout.measured_groups() == ["pilot"]


def test_rings_start_in_order_each_gate_over_every_ring_so_far_and_then_complete() -> None:
    rollout = three_rings()
    t1 = T0 + timedelta(hours=25)
    rollout = rules.after_gate(rollout, rules.measure(GATE, counts(installed=20), 1, t1), t1)
    assert [ring.started_by for ring in rollout.rings] == ["start", "gate", None]
    assert rollout.measured_groups() == ["pilot", "early"]
    assert rollout.next_due() == t1 + timedelta(hours=24)
    t2 = t1 + timedelta(hours=24)
    rollout = rules.after_gate(rollout, rules.measure(GATE, counts(installed=60), 2, t2), t2)
    assert (rollout.state, rollout.rings_started, rollout.finished_at) == ("completed", 3, t2)
    assert rollout.next_due() is None
    assert rollout.figures is not None
    assert rollout.figures.rings_measured == 2


def test_a_waiting_gate_keeps_the_figures_and_the_ring() -> None:
    rollout = three_rings()
    t1 = T0 + timedelta(hours=25)
    waiting = rules.after_gate(rollout, rules.measure(GATE, counts(installed=5), 1, t1), t1)
    assert (waiting.state, waiting.rings_started) == ("running", 1)
    assert waiting.figures is not None
    assert waiting.figures.verdict == "waiting"
    assert rules.due(waiting, t1)


def test_a_held_rollout_says_why_and_waits_for_an_operator_not_for_time() -> None:
    rollout = three_rings()
    t1 = T0 + timedelta(hours=25)
    held = rules.after_gate(rollout, rules.measure(GATE, counts(installed=17, failed=3), 1, t1), t1)
    assert (held.state, held.rings_started) == ("held", 1)
    assert held.held_because == "15% failed (3 of 20 reports): failures must stay below 2%"
    assert held.next_due() is None
    assert not rules.due(held, t1 + timedelta(days=30))


def test_a_pause_where_the_rollout_reaches_holds_its_next_ring_until_resumed() -> None:
    rollout = three_rings()
    t1 = T0 + timedelta(hours=25)
    fleet = Paused("alice", "bad patch", T0, None)
    on_early = Paused("bob", "lab first", T0, "early")
    # Fleet-wide, or on a ring started so far or the next one: it holds the rollout.
    assert rules.holding_pause(rollout, {None: fleet, "early": on_early}) is fleet
    assert rules.holding_pause(rollout, {"early": on_early}) is on_early
    assert rules.holding_pause(rollout, {"pilot": on_early}) is on_early
    # Not on a later ring, nor above a ring (a ring's approval is explicit on its group).
    assert rules.holding_pause(rollout, {"broad": on_early}) is None
    assert rules.holding_pause(rollout, {ROOT: on_early}) is None

    passing = rules.measure(GATE, counts(installed=20), 1, t1)
    waits = rules.while_paused(passing, fleet, "fleet-wide")
    assert waits.verdict == "waiting"
    assert waits.why.startswith("paused fleet-wide by alice (bad patch): the next ring starts")
    assert waits.installed == 20
    after = rules.after_gate(rollout, waits, t1)
    assert (after.state, after.rings_started) == ("running", 1)
    assert rules.due(after, t1 + timedelta(minutes=1))  # measured again at the next run
    # Failures still hold, too few reports still wait, and no pause changes nothing.
    failing = rules.measure(GATE, counts(installed=17, failed=3), 1, t1)
    assert rules.while_paused(failing, fleet, "fleet-wide") is failing
    assert rules.while_paused(passing, None, "fleet-wide") is passing


def test_go_starts_the_next_ring_at_once_even_when_held() -> None:
    rollout = three_rings()
    t1 = T0 + timedelta(hours=1)
    went = rules.go(rollout, t1, "alice")
    assert (went.rings_started, went.rings[1].started_by, went.state) == (2, "go:alice", "running")
    held = rules.after_gate(
        went, rules.measure(GATE, counts(failed=20), 2, t1 + timedelta(days=1)), t1
    )
    assert held.state == "held"
    done = rules.go(held, t1 + timedelta(days=2), "bob")
    assert (done.state, done.held_because, done.rings[2].started_by) == (
        "completed",
        None,
        "go:bob",
    )


def test_cancel_stops_a_running_or_held_rollout_and_nothing_moves_a_finished_one() -> None:
    cancelled = rules.cancel(three_rings(), T0 + timedelta(hours=2))
    assert (cancelled.state, cancelled.finished_at) == ("cancelled", T0 + timedelta(hours=2))
    assert not rules.due(cancelled, T0 + timedelta(days=3))
    with pytest.raises(Conflict, match="is cancelled; only a running or held rollout"):
        rules.go(cancelled, T0, "alice")
    with pytest.raises(Conflict, match="is cancelled"):
        rules.cancel(cancelled, T0)


def test_a_rings_approval_is_the_rollouts_action_with_the_deadline_from_the_rings_start() -> None:
    rollout = three_rings()
    later = T0 + timedelta(days=3)
    value = rules.ring_approval(rollout, later)
    assert (value.action, value.approved_at, value.approved_by) == (
        "required_install",
        later,
        "rollout:r-1",
    )
    assert value.deadline.at == later + timedelta(weeks=1)


def test_the_view_names_rings_and_shows_when_the_next_gate_is_measured() -> None:
    rollout = three_rings()
    shown = rules.view(rollout, UPDATE, {**NAMES, "early": "Early"})
    assert [(ring.position, ring.group_name) for ring in shown.rings] == [
        (1, "Pilot"),
        (2, "Early"),
        (3, "Broad"),
    ]
    assert shown.next_ring_due_at == T0 + timedelta(hours=24)
    gone = rules.view(rollout, UPDATE, {"pilot": "Pilot"})
    assert gone.rings[2].group_name == "(deleted)"
    held = rules.after_gate(
        rollout, rules.measure(GATE, counts(installed=10, failed=10), 1, T0), T0
    )
    text = rollout_text(rules.view(held, UPDATE, NAMES))
    assert "HELD: 50% failed (10 of 20 reports): failures must stay below 2%" in text
    assert "gate held" in text
    assert "10 failed (50%)" in text
