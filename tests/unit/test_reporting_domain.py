"""reporting's pure rules (services/reporting/domain): what a batch of reports says, the
counts a report shows and how the counters move (docs/product.md section 6)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from libs.contracts.agents import AgentStatus, DetectionResult, InstallResult
from libs.contracts.catalog import ReturnCode
from libs.contracts.reporting import Page, StateCounts
from libs.domain.agent_reports import NO_REPORT, detection
from libs.domain.references import as_id, kb_number
from services.reporting.domain.batches import (
    Attempt,
    Known,
    KnownUpdate,
    computers_named,
    read_batch,
    unusable,
    updates_named,
)
from services.reporting.domain.counts import (
    CounterMove,
    counter_deltas,
    counts_of,
    gauged_states,
    most_behind,
    restart_deltas,
    state_totals,
    sum_counts,
    tally,
)
from services.reporting.domain.gauges import ApprovedUpdate, past_deadline
from services.reporting.domain.pages import page_of

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def install(update_id: str, code: int) -> InstallResult:
    return InstallResult(
        update_id=update_id,
        return_code=code,
        started_at=T - timedelta(minutes=2),
        finished_at=T - timedelta(minutes=1),
    )


def status(
    computer_id: str, detected: dict[str, str], installs: list[InstallResult]
) -> AgentStatus:
    return AgentStatus.model_validate(
        {
            "computer_id": computer_id,
            "reported_at": T,
            "detections": [
                DetectionResult.model_validate({"update_id": u, "state": s})
                for u, s in detected.items()
            ],
            "installs": installs,
        }
    )


KNOWN = Known.of(
    {"pc1", "pc2"},
    [
        KnownUpdate("u1", [], declined=False),
        KnownUpdate("u2", [ReturnCode(code=7, outcome="success")], declined=False),
        KnownUpdate("u3", [], declined=True),
    ],
)


def test_known_reads_return_code_maps_and_declines() -> None:
    assert KNOWN.computers == {"pc1", "pc2"}
    assert set(KNOWN.return_codes) == {"u1", "u2", "u3"}
    assert KNOWN.declined == {"u3"}


def test_an_unknown_or_declined_update_is_unusable() -> None:
    assert unusable("u1", KNOWN) is None
    assert unusable("nope", KNOWN) == "unknown_update"
    assert unusable("u3", KNOWN) == "declined_update"


def test_a_batch_names_its_computers_and_updates_sorted() -> None:
    statuses = [
        status("pc2", {"u2": "needed"}, [install("u9", 0)]),
        status("pc1", {"u1": "needed", "u2": "installed"}, []),
    ]
    assert computers_named(statuses) == ["pc1", "pc2"]
    assert updates_named(statuses) == ["u1", "u2", "u9"]


def test_a_batch_keeps_usable_observations_and_attempts_and_counts_the_rest() -> None:
    statuses = [
        status("pc9", {"u1": "needed"}, [install("u1", 0)]),  # unknown computer
        status("pc1", {"u1": "needed", "u3": "needed", "u8": "needed"}, [install("u2", 7)]),
        status("pc2", {}, [install("u3", 0), install("u1", 1603)]),
    ]
    batch = read_batch(statuses, KNOWN)
    assert [(o.computer_id, o.update_id, o.state) for o in batch.observations] == [
        ("pc1", "u1", "needed"),
        ("pc1", "u2", "installed"),  # 7 is a success in u2's map
        ("pc2", "u1", "failed"),
    ]
    assert batch.attempts == [
        Attempt(
            "pc1", "u2", T - timedelta(minutes=2), T - timedelta(minutes=1), 7, "success", "install"
        ),
        Attempt(
            "pc2",
            "u1",
            T - timedelta(minutes=2),
            T - timedelta(minutes=1),
            1603,
            "failure",
            "install",
        ),
    ]
    assert batch.ignored == Counter(
        {"unknown_computer": 1, "declined_update": 2, "unknown_update": 1}
    )
    assert list(batch.ignored) == ["unknown_computer", "declined_update", "unknown_update"]


def test_counts_of_a_state_map_and_the_targeted_computers_without_a_report() -> None:
    counts = counts_of(
        {
            "installed": 3,
            "needed": 2,
            "failed": 1,
            "installed_pending_restart": 1,
            "not_applicable": 4,
            "none": 9,
        },
        targeted=15,
    )
    assert counts == StateCounts(
        applies_to=7,
        installed=3,
        needed=2,
        failed=1,
        installed_pending_restart=1,
        not_applicable=4,
        no_status=4,
    )
    assert counts_of({"needed": 5}, targeted=2).no_status == 0


def test_counts_add_up_field_by_field_and_tally_counts_states() -> None:
    a = counts_of({"installed": 1, "needed": 2}, 5)
    b = counts_of({"failed": 3}, 0)
    total = sum_counts([a, b])
    assert (total.installed, total.needed, total.failed, total.applies_to, total.no_status) == (
        1,
        2,
        3,
        6,
        2,
    )
    assert sum_counts([]) == counts_of({}, 0)
    assert tally(["needed", "needed", "installed"]) == counts_of({"needed": 2, "installed": 1}, 0)


def test_most_behind_orders_updates_by_needed_and_failed_keeping_ties_in_order() -> None:
    per_update = {
        "a": {"installed": 10},
        "b": {"needed": 1, "failed": 2},
        "c": {"needed": 3},
        "d": {"failed": 5},
    }
    assert most_behind(per_update) == ["d", "b", "c", "a"]


def test_state_totals_sum_over_updates() -> None:
    assert state_totals({"a": {"needed": 1}, "b": {"needed": 2, "failed": 1}}) == Counter(
        {"needed": 3, "failed": 1}
    )


def test_gauges_show_every_state_but_applies_to() -> None:
    shown = gauged_states(counts_of({"installed": 2}, 3))
    assert "applies_to" not in shown
    assert shown["installed"] == 2
    assert shown["no_status"] == 1


def test_counters_move_from_the_state_left_to_the_state_reached_in_one_order() -> None:
    changes = [
        (detection("pc1", "u2", T, "installed"), "needed"),
        (detection("pc2", "u1", T, "needed"), NO_REPORT),  # a placeholder is not counted
        (detection("pc3", "u2", T, "needed"), "installed"),  # cancels out the first
    ]
    assert counter_deltas(changes) == [CounterMove("u1", "needed", 1)]
    assert counter_deltas([(detection("pc1", "u1", T, "failed"), "needed")]) == [
        CounterMove("u1", "failed", 1),
        CounterMove("u1", "needed", -1),
    ]
    assert counter_deltas([]) == []


def test_a_restart_moves_pending_installs_to_installed() -> None:
    assert restart_deltas(["u2", "u1"]) == [
        CounterMove("u1", "installed", 1),
        CounterMove("u1", "installed_pending_restart", -1),
        CounterMove("u2", "installed", 1),
        CounterMove("u2", "installed_pending_restart", -1),
    ]


def test_past_deadline_lists_updates_whose_earliest_deadline_has_come() -> None:
    updates = [
        ApprovedUpdate("u1", "KB1", "Security Updates", "Critical", T - timedelta(seconds=1)),
        ApprovedUpdate("u2", "KB2", "Security Updates", "Critical", T),
        ApprovedUpdate("u3", "KB3", "Updates", "none", T + timedelta(seconds=1)),
        ApprovedUpdate("u4", "KB4", "Updates", "none", None),
    ]
    assert past_deadline(updates, T) == ["u1", "u2"]


def test_a_page_of_items() -> None:
    items = list(range(10))
    assert page_of(items, Page(offset=2, limit=3)) == [2, 3, 4]
    assert page_of(items, Page(offset=9, limit=3)) == [9]
    assert page_of(items, Page(offset=20)) == []


def test_an_update_is_named_by_id_or_kb_number() -> None:
    known = uuid.uuid4()
    assert as_id(str(known)) == known
    assert as_id("KB5034441") is None
    assert kb_number(" kb5034441 ") == "5034441"
    assert kb_number("5034441") == "5034441"
