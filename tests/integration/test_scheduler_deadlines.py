"""Spread deadlines and a grace before the forced restart, end to end: the real catalog,
approval and scheduler against real RabbitMQ and PostgreSQL, one hand-moved clock for
approval (deadlines are resolved by it) and the scheduler (timers fire by it).

Agents are played by the test as in tests/integration/test_scheduler.py (Fleet, Agent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from libs.bus import Bus, RpcClient
from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.domain.deadline_spread import computer_deadline
from tests.integration.test_scheduler import (
    START,
    Agent,
    Fleet,
    db_suffix,
    first_kb,
    scheduler_system,
)
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def timed(infra: Infra, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    """A fleet whose approval service reads the same manual clock as the scheduler."""
    async with scheduler_system(infra, bus, db_suffix(request, "dl"), approval_on_clock=True) as (
        _,
        db,
        clock,
    ):
        found = Fleet(bus, RpcClient(bus, source="tests", timeout=60), db, clock)
        found.channel = await bus.connection.channel()
        try:
            yield found
        finally:
            await found.channel.close()


SPREAD_HOURS = 6
STEP = timedelta(minutes=20)


def forced_at(agent: Agent) -> list[datetime]:
    """When the deadline's forced installs were issued to this agent."""
    return [
        datetime.fromisoformat(i["issued_at"])
        for i in agent.of(ag.INSTALL)
        if i["reason"] == "deadline"
    ]


async def test_a_fleet_with_one_deadline_is_forced_over_the_policys_spread(timed: Fleet) -> None:
    update = await first_kb(timed, "always")
    await timed.policy(
        "Spread",
        a.ROOT_GROUP_NAME,
        use_maintenance_window=False,
        scheduled_day="saturday",  # the window is days after every deadline
        allow_immediate_install=False,
        deadline_spread_hours=SPREAD_HOURS,
    )
    agents = [await timed.agent(f"pc-spread-{n:02d}") for n in range(24)]
    approved = START + timedelta(hours=2)
    await timed.approve(
        update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="custom", at=approved)
    )
    await timed.quiet()

    own: dict[str, datetime] = {}
    for agent in agents:
        expected = computer_deadline(approved, agent.computer_id, SPREAD_HOURS)
        assert expected is not None
        (item,) = agent.of(ag.PLAN)[-1]["items"]
        assert datetime.fromisoformat(item["deadline"]) == expected, "the plan shows its own"
        assert datetime.fromisoformat(item["install_at"]) == expected
        own[agent.computer_id] = expected
    assert all(approved <= at < approved + timedelta(hours=SPREAD_HOURS) for at in own.values())
    assert max(own.values()) - min(own.values()) > timedelta(hours=SPREAD_HOURS / 2)

    # Move the clock in steps: each computer is forced in the step its own deadline falls in,
    # and not before.
    await timed.advance(approved - timed.clock.now() - timedelta(seconds=1))
    assert all(forced_at(agent) == [] for agent in agents), "nothing before the deadline"
    end = approved + timedelta(hours=SPREAD_HOURS) + STEP
    while timed.clock.now() < end:
        before = timed.clock.now()
        await timed.advance(STEP)
        now = timed.clock.now()
        for agent in agents:
            if before < own[agent.computer_id] <= now:
                await agent.wait_for(ag.INSTALL)
                assert forced_at(agent) == [now], agent.computer_id
            elif own[agent.computer_id] > now:
                assert forced_at(agent) == [], f"{agent.computer_id} forced before its deadline"
    steps = {forced_at(agent)[0] for agent in agents}
    assert len(steps) >= SPREAD_HOURS, f"forced installs came in only {len(steps)} steps"
    for agent in agents:
        (install,) = [i for i in agent.of(ag.INSTALL) if i["reason"] == "deadline"]
        assert [(u["update_id"], u["forced"]) for u in install["updates"]] == [
            (update.update_id, True)
        ]


async def test_a_grace_period_delays_the_forced_restart_by_its_days(timed: Fleet) -> None:
    update = await first_kb(timed, "always")
    await timed.policy(
        "Kiosk with grace",
        a.ROOT_GROUP_NAME,
        use_maintenance_window=False,
        scheduled_day="saturday",
        allow_immediate_install=False,
        user_controls_restart=False,
        restart_delay_minutes=1,
        restart_prompt_interval_minutes=720,
        deadline_grace_days=2,
    )
    agent = await timed.agent("pc-grace")
    approved = START + timedelta(hours=1)
    await timed.approve(
        update.kb or "", a.ROOT_GROUP_NAME, a.DeadlineChoice(kind="custom", at=approved)
    )
    await timed.quiet()
    await timed.advance(approved - timed.clock.now() + timedelta(seconds=1))
    (forced,) = await agent.wait_for(ag.INSTALL)
    assert forced["reason"] == "deadline"
    await agent.installed(update.update_id, 3010)
    finished = timed.clock.now()
    await timed.quiet()

    # Without the grace a policy without user control warns after the restart delay
    # (tests/integration/test_scheduler.py): here the user is only prompted, and may postpone.
    await timed.advance(timedelta(minutes=1, seconds=1))
    (first,) = await agent.wait_for(ag.RESTART_PROMPT)
    assert (first["may_postpone"], first["restart_at"]) == (True, None)
    await agent.restart_event("postponed")
    await timed.quiet()
    grace_end = finished + timedelta(days=2)
    while timed.clock.now() + timedelta(hours=6) < grace_end:
        await timed.advance(timedelta(hours=6))
    prompts = agent.of(ag.RESTART_PROMPT)
    assert len(prompts) >= 3, "prompts continue during the grace"
    assert all(p["may_postpone"] for p in prompts)
    assert agent.of(ag.RESTART) == [], "no restart forced during the grace"

    await timed.advance(grace_end - timed.clock.now())
    warning = agent.of(ag.RESTART_PROMPT)[-1]
    assert warning["may_postpone"] is False
    assert datetime.fromisoformat(warning["issued_at"]) == grace_end
    assert datetime.fromisoformat(warning["restart_at"]) == grace_end + timedelta(minutes=5)
    await timed.advance(timedelta(minutes=5))
    (restart,) = await agent.wait_for(ag.RESTART)
    assert restart["reason"] == "warning_elapsed"
