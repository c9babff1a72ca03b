"""What firing a scheduler timer does, which timers a plan keeps, and when missed installs
catch up (docs/product.md section 1). Pure rules: no database, the clock is a value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Histogram

from libs.contracts.agents import AgentUpdatePlan, ComputerPlan, PlanItem
from libs.contracts.approval import ActionName
from libs.contracts.catalog import RestartName
from libs.contracts.policies import AgentUpdateSchedule, PolicySettings
from services.scheduler.domain.agent_updates import next_install
from services.scheduler.domain.computers import ManagedComputer
from services.scheduler.domain.plans import Progress, Schedule
from services.scheduler.domain.restarts import IDLE, WARNING_BEFORE_RESTART, RestartState
from services.scheduler.domain.timers import (
    Decision,
    TimerChange,
    TimerPlan,
    catch_up_at,
    decide,
    fire,
    plan_timers,
    timer_plan,
)
from services.scheduler.domain.windows import next_window
from services.scheduler.use_cases.timers import observe_many

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
ZONE = "Europe/Paris"


def item(
    update_id: str,
    *,
    action: ActionName = "required_install",
    state: str = "needed",
    deadline: datetime | None = None,
    install_at: datetime | None = NOW,
    restart: RestartName = "always",
) -> PlanItem:
    return PlanItem.model_validate(
        {
            "update_id": update_id,
            "kb": None,
            "title": update_id,
            "action": action,
            "deadline": deadline,
            "state": state,
            "install_at": install_at,
            "restart": restart,
            "command_line": None,
            "return_codes": [],
        }
    )


def plan_with(
    *items: PlanItem,
    settings: PolicySettings | None = None,
    agent_update: AgentUpdatePlan | None = None,
) -> ComputerPlan:
    return ComputerPlan(
        computer_id="pc-0001",
        policy_id=None,
        policy_name="no policy",
        policy_conflict=None,
        settings=settings or PolicySettings(),
        timezone=ZONE,
        next_window=None,
        items=list(items),
        agent_update=agent_update,
        computed_at=NOW - timedelta(hours=1),
    )


def computer(restart: RestartState = IDLE, *, user_logged_on: bool = True) -> ManagedComputer:
    return ManagedComputer(
        computer_id="pc-0001",
        timezone=ZONE,
        user_logged_on=user_logged_on,
        last_checkin_at=NOW - timedelta(minutes=5),
        last_window_at=None,
        deadline_fired_through=None,
        plan_hash=None,
        restart=restart,
        agent_version="1.0.0",
    )


def test_plan_timers_keeps_what_the_schedule_asks_and_drops_the_rest() -> None:
    window, deadline = NOW + timedelta(hours=17), NOW + timedelta(days=2)
    upgrade = AgentUpdatePlan(version="2.0.0", install_at=NOW, prompt_restart=True)
    assert plan_timers("pc-1", Schedule(window=window, deadline=deadline), upgrade) == [
        TimerChange("pc-1", "window", window),
        TimerChange("pc-1", "deadline", deadline),
        TimerChange("pc-1", "immediate", None),
        TimerChange("pc-1", "agent_update", NOW),
    ]
    assert [t.due_at for t in plan_timers("pc-1", Schedule(), None)] == [None] * 4


def test_window_installs_every_pending_item_and_rearms_at_the_next_window() -> None:
    plan = plan_with(item("u1"), item("u2", state="installed", install_at=None))
    decision = decide("window", plan, computer(), NOW)
    assert decision.install is not None
    assert decision.install.reason == "window"
    assert [u.update_id for u in decision.install.updates] == ["u1"]
    assert decision.install.prompt_user is False
    assert decision.last_window_at == NOW
    assert decision.next_due == next_window(plan.settings, ZONE, NOW)


def test_window_with_nothing_pending_sends_nothing_and_drops_the_timer() -> None:
    decision = decide("window", plan_with(item("u1", state="installed")), computer(), NOW)
    assert decision.install is None
    assert decision.next_due is None
    assert decision.last_window_at == NOW  # the window fired all the same


def test_prompt_user_mode_asks_unless_every_item_is_forced() -> None:
    prompting = PolicySettings(install_mode="prompt_user")
    past = NOW - timedelta(minutes=1)
    mixed = plan_with(item("u1", deadline=past), item("u2"), settings=prompting)
    install = decide("window", mixed, computer(), NOW).install
    assert install is not None
    assert install.prompt_user is True
    forced = plan_with(item("u1", deadline=past), settings=prompting)
    install = decide("window", forced, computer(), NOW).install
    assert install is not None
    assert install.prompt_user is False


def test_deadline_installs_passed_deadlines_and_rearms_at_the_next_one() -> None:
    later, latest = NOW + timedelta(hours=3), NOW + timedelta(days=1)
    plan = plan_with(
        item("u1", deadline=NOW - timedelta(minutes=1)),
        item("u2", deadline=later),
        item("u3", deadline=latest),
        item("u4", deadline=NOW + timedelta(hours=1), state="installed", install_at=None),
    )
    decision = decide("deadline", plan, computer(), NOW)
    assert decision.install is not None
    assert decision.install.reason == "deadline"
    assert [(u.update_id, u.forced) for u in decision.install.updates] == [("u1", True)]
    assert decision.deadline_fired == NOW
    assert decision.next_due == later  # u4 has nothing left to do


def test_immediate_sends_only_updates_needing_no_restart_once() -> None:
    plan = plan_with(item("u1", restart="never"), item("u2", restart="always"))
    decision = decide("immediate", plan, computer(), NOW)
    assert decision.install is not None
    assert decision.install.reason == "immediate"
    assert [u.update_id for u in decision.install.updates] == ["u1"]
    assert decision.immediate_sent == ["u1"]
    assert decision.next_due is None


def test_catch_up_installs_every_pending_item_once() -> None:
    decision = decide("catch_up", plan_with(item("u1"), item("u2")), computer(), NOW)
    assert decision.install is not None
    assert decision.install.reason == "catch_up"
    assert [u.update_id for u in decision.install.updates] == ["u1", "u2"]
    assert (decision.next_due, decision.last_window_at, decision.deadline_fired) == (
        None,
        None,
        None,
    )


def test_restart_timer_prompts_then_restarts() -> None:
    """The restart state machine's step, turned into the agent's instructions."""
    waiting = RestartState("waiting", NOW)
    strict = plan_with(settings=PolicySettings(user_controls_restart=False))
    decision = decide("restart", strict, computer(waiting), NOW)
    assert decision.prompt is not None
    assert (decision.prompt.may_postpone, decision.prompt.prompt) == (False, 1)
    assert decision.prompt.restart_at == NOW + WARNING_BEFORE_RESTART
    assert decision.next_due == NOW + WARNING_BEFORE_RESTART
    assert decision.restart is not None
    assert decision.restart.phase == "warning"
    warned = decide("restart", strict, computer(decision.restart), decision.restart.due_at or NOW)
    assert warned.restart_now is not None
    assert warned.restart_now.reason == "warning_elapsed"
    assert warned.next_due is None
    nobody = decide("restart", plan_with(), computer(waiting, user_logged_on=False), NOW)
    assert nobody.restart_now is not None
    assert nobody.restart_now.reason == "nobody_logged_on"
    assert nobody.prompt is None


def test_restart_timer_in_idle_says_nothing() -> None:
    decision = decide("restart", plan_with(), computer(IDLE), NOW)
    assert decision == Decision(next_due=None, restart=IDLE)


def test_agent_update_is_sent_and_resent_at_the_schedule() -> None:
    upgrade = AgentUpdatePlan(version="2.0.0", install_at=NOW, prompt_restart=False)
    decision = decide("agent_update", plan_with(agent_update=upgrade), computer(), NOW)
    assert decision.agent_update is not None
    assert (decision.agent_update.version, decision.agent_update.prompt_restart) == (
        "2.0.0",
        False,
    )
    assert decision.next_due is None  # no schedule: again at its next check-in
    sunday = AgentUpdateSchedule(day="sunday", time="04:00")
    scheduled = PolicySettings(agent_update_schedule=sunday)
    decision = decide(
        "agent_update", plan_with(settings=scheduled, agent_update=upgrade), computer(), NOW
    )
    assert decision.next_due == next_install(sunday, ZONE, NOW)
    assert decision.agent_update is not None


def test_agent_update_timer_without_an_update_is_dropped() -> None:
    assert decide("agent_update", plan_with(), computer(), NOW) == Decision()


@pytest.mark.parametrize(
    ("deadline", "planned_at", "last_window_at", "missed"),
    [
        (NOW - timedelta(minutes=1), None, None, True),  # deadline passed
        (NOW, None, None, True),  # deadline now
        (NOW + timedelta(minutes=1), None, None, False),  # deadline ahead
        (None, NOW - timedelta(days=2), NOW - timedelta(days=1), True),  # window fired since
        (None, NOW - timedelta(days=1), NOW - timedelta(days=1), True),  # at the same instant
        (None, NOW - timedelta(hours=1), NOW - timedelta(days=1), False),  # planned later
        (None, None, NOW - timedelta(days=1), False),  # never planned
        (None, NOW - timedelta(days=2), None, False),  # no window fired
    ],
)
def test_catch_up_at_after_the_missed_install_delay_only_when_something_was_missed(
    deadline: datetime | None,
    planned_at: datetime | None,
    last_window_at: datetime | None,
    missed: bool,
) -> None:
    plan = plan_with(item("u1", deadline=deadline), settings=PolicySettings())
    progress = {"u1": Progress("needed", planned_at)}
    expected = NOW + timedelta(minutes=PolicySettings().missed_install_delay_minutes)
    assert catch_up_at(plan, progress, last_window_at, NOW) == (expected if missed else None)


def test_catch_up_at_ignores_items_with_nothing_to_do() -> None:
    done = item("u1", deadline=NOW - timedelta(days=1), state="installed", install_at=None)
    assert catch_up_at(plan_with(done), {}, NOW - timedelta(days=1), NOW) is None


@pytest.mark.parametrize("kind", ["window", "deadline", "immediate", "catch_up", "restart"])
@pytest.mark.parametrize("offset_hours", [-30, 0, 2, 30])
def test_firing_from_the_stored_timer_plan_decides_as_the_plan(
    kind: str, offset_hours: int
) -> None:
    """What firing reads (a TimerPlan kept as JSON beside the timers) decides exactly what the
    whole plan decides, at any time and for every kind."""
    plan = plan_with(
        item("u1", deadline=NOW - timedelta(days=1)),
        item("u2", deadline=NOW + timedelta(days=1), restart="never"),
        item("u3", state="installed", deadline=NOW + timedelta(hours=1)),
        item("u4", state="installed", install_at=None, deadline=NOW + timedelta(hours=3)),
        item("u5", action="uninstall", state="installed"),
        item("u6", action="available_install", state="needed", deadline=NOW + timedelta(hours=4)),
        settings=PolicySettings(install_mode="prompt_user"),
        agent_update=AgentUpdatePlan(version="2.0.0", install_at=NOW, prompt_restart=True),
    )
    stored = TimerPlan.model_validate_json(timer_plan(plan).model_dump_json())
    assert [i.install.update_id for i in stored.items] == ["u1", "u2", "u5"]
    at = NOW + timedelta(hours=offset_hours)
    for state in (IDLE, RestartState("waiting", at), RestartState("warning", at, 1)):
        for logged_on in (True, False):
            expected = decide(kind, plan, computer(state, user_logged_on=logged_on), at)
            got = fire(kind, plan.computer_id, stored, at, restart=state, user_logged_on=logged_on)
            assert got == expected
            assert (got.install and got.install.model_dump_json()) == (
                expected.install and expected.install.model_dump_json()
            )


def test_observe_many_fills_the_histogram_as_one_observe_per_value() -> None:
    """The fired timers' lags are observed once per batch: same buckets, count and sum."""
    buckets = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
    one, many = CollectorRegistry(), CollectorRegistry()
    singly = Histogram("lag", "lag", ["kind"], buckets=buckets, registry=one)
    batched = Histogram("lag", "lag", ["kind"], buckets=buckets, registry=many)
    values = [0.0, 0.05, 0.051, 0.3, 1.0, 7.5, 900.0, 901.0, 12_345.0, 0.1]
    for value in values:
        singly.labels("window").observe(value)
    observe_many(batched.labels("window"), values)

    def samples(registry: CollectorRegistry) -> dict[str, float]:
        return {
            f"{s.name}{sorted(s.labels.items())}": s.value
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    assert samples(many) == samples(one)
