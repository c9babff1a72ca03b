"""Each computer's own deadline (spread) and the grace before a forced restart
(libs/domain/deadline_spread.py, services/scheduler/domain/deadlines.py, docs/product.md
section 1), without I/O."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.contracts.catalog import ReturnCode
from libs.contracts.policies import PolicySettings
from libs.domain import deadline_spread
from libs.domain.resolution import Deadline
from services.scheduler.domain import deadlines, plans, restarts
from services.scheduler.domain.timers import timer_plan

FAST = settings(max_examples=200, deadline=None, database=None)
FEW = settings(max_examples=15, deadline=None, database=None)
NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)

computer_ids = st.text(min_size=1, max_size=64)
plan_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
"""Computer ids as agents have them (libs/contracts/spec.py SUBJECT)."""
instants = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@FAST
@given(computer_id=computer_ids, deadline=instants, spread=st.integers(0, 24))
def test_a_computers_deadline_is_within_the_spread_and_never_earlier(
    computer_id: str, deadline: datetime, spread: int
) -> None:
    own = deadline_spread.computer_deadline(deadline, computer_id, spread)
    assert own is not None
    assert deadline <= own <= deadline + timedelta(hours=spread)
    if spread:
        assert own < deadline + timedelta(hours=spread)
    else:
        assert own == deadline


@FAST
@given(computer_id=computer_ids, deadline=instants, spread=st.integers(0, 24))
def test_the_shift_is_deterministic_and_a_whole_number_of_seconds(
    computer_id: str, deadline: datetime, spread: int
) -> None:
    first = deadline_spread.spread_offset(computer_id, spread)
    # Recomputed from a copy of the id (another replica, another process start): the same.
    again = deadline_spread.spread_offset("".join(list(computer_id)), spread)
    assert first == again
    assert first.microseconds == 0
    assert deadline_spread.computer_deadline(deadline, computer_id, spread) == deadline + first


@FAST
@given(computer_id=computer_ids, spread=st.integers(1, 24))
def test_the_share_is_the_same_for_every_spread(computer_id: str, spread: int) -> None:
    """A wider spread moves a computer proportionally: its place in the fleet's order stays."""
    share = deadline_spread.spread_share(computer_id)
    assert 0 <= share < 1
    seconds = deadline_spread.spread_offset(computer_id, spread).total_seconds()
    assert seconds == min(math.floor(share * spread * 3600), spread * 3600 - 1)


def test_no_deadline_stays_none() -> None:
    assert deadline_spread.computer_deadline(None, "pc-1", 24) is None


def test_known_ids_keep_their_offsets() -> None:
    """Pinned: changing the hash (salt, bytes, scale) would move every computer's deadline
    after an upgrade, so two values are fixed here."""
    assert deadline_spread.spread_offset("pc-0042", 24) == timedelta(hours=5, minutes=2, seconds=13)
    assert deadline_spread.spread_offset("pc-0001", 6) == timedelta(seconds=5299)


IDS_PER_SAMPLE = 4800
BUCKETS = 24


@FEW
@given(prefix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=0, max_size=12))
def test_a_fleet_is_spread_roughly_uniformly(prefix: str) -> None:
    """4,800 computers over a 24-hour spread, counted per hour: each hour expects 200.

    For uniform shares a bucket's count is binomial(n=4800, p=1/24): sd = sqrt(n p (1-p))
    = 13.8. The tolerance is 6 sd (83): a uniform hash fails it with probability below
    1e-8 per bucket, while a spread biased by even 2 % of the range per hour, or one that
    leaves an hour empty or puts everyone in the first hours, is far outside it. Ids are
    shaped like real ones (a common prefix, a counter) since those are what fleets have.
    """
    spread = 24
    counts = [0] * BUCKETS
    for number in range(IDS_PER_SAMPLE):
        offset = deadline_spread.spread_offset(f"{prefix}{number:05d}", spread)
        counts[int(offset.total_seconds() // 3600)] += 1
    expected = IDS_PER_SAMPLE / BUCKETS
    sd = math.sqrt(IDS_PER_SAMPLE * (1 / BUCKETS) * (1 - 1 / BUCKETS))
    assert all(abs(count - expected) <= 6 * sd for count in counts), counts


# Grace: the restart state machine with deadline_grace_days.

policies = st.builds(
    PolicySettings,
    restart_delay_minutes=st.integers(1, 30),
    restart_prompt_interval_minutes=st.integers(1, 1440),
    user_controls_restart=st.booleans(),
    deadline_grace_days=st.integers(0, 7),
)


def run_cycle(
    settings_: PolicySettings,
    finished_at: datetime,
    *,
    forced: bool,
    user: bool,
    steps: int = 40,
    postpone_every: int = 0,
) -> list[tuple[datetime, restarts.Instruction, restarts.RestartState]]:
    """Fire the restart timer until it restarts (or `steps`), postponing every nth prompt."""
    state = restarts.after_install(
        restarts.IDLE, settings_, finished_at, user_logged_on=user, deadline_forced=forced
    )
    seen: list[tuple[datetime, restarts.Instruction, restarts.RestartState]] = []
    for step in range(steps):
        if state.due_at is None:
            break
        now = state.due_at
        state, told = restarts.on_due(state, settings_, now, user_logged_on=user)
        seen.append((now, told, state))
        if postpone_every and isinstance(told, restarts.Prompt) and step % postpone_every == 0:
            state = restarts.on_postponed(state, settings_, now + timedelta(seconds=30))
    return seen


@FAST
@given(policy=policies, finished_at=instants, user=st.booleans(), forced=st.booleans())
def test_grace_zero_is_the_cycle_of_before(
    policy: PolicySettings, finished_at: datetime, user: bool, forced: bool
) -> None:
    """With no grace, a deadline-forced install restarts exactly as any other install."""
    without = policy.model_copy(update={"deadline_grace_days": 0})
    assert run_cycle(without, finished_at, forced=forced, user=user, postpone_every=3) == (
        run_cycle(without, finished_at, forced=False, user=user, postpone_every=3)
    )


@FAST
@given(policy=policies, finished_at=instants, user=st.booleans())
def test_grace_changes_nothing_for_installs_before_the_deadline_or_user_controlled_restarts(
    policy: PolicySettings, finished_at: datetime, user: bool
) -> None:
    not_forced = run_cycle(policy, finished_at, forced=False, user=user)
    assert not_forced == run_cycle(
        policy.model_copy(update={"deadline_grace_days": 0}), finished_at, forced=False, user=user
    )
    controlled = policy.model_copy(update={"user_controls_restart": True})
    assert run_cycle(controlled, finished_at, forced=True, user=user) == run_cycle(
        controlled, finished_at, forced=False, user=user
    )


@settings(max_examples=60, deadline=None, database=None)
@given(
    policy=policies,
    finished_at=instants,
    grace=st.integers(1, 7),
    postpone_every=st.integers(0, 3),
)
def test_a_grace_holds_the_forced_restart_for_its_days_with_prompts_meanwhile(
    policy: PolicySettings, finished_at: datetime, grace: int, postpone_every: int
) -> None:
    forcing = policy.model_copy(
        update={"user_controls_restart": False, "deadline_grace_days": grace}
    )
    end = finished_at + timedelta(days=grace)
    steps = grace * 1440 // forcing.restart_prompt_interval_minutes + 10
    seen = run_cycle(
        forcing, finished_at, forced=True, user=True, steps=steps, postpone_every=postpone_every
    )
    prompts = [(now, told) for now, told, _ in seen if isinstance(told, restarts.Prompt)]
    before = [told for now, told in prompts if now < end]
    assert before, "the user is prompted during the grace"
    assert all(told.may_postpone and told.restart_at is None for told in before)
    warning_at, warning = next((now, t) for now, t in prompts if not t.may_postpone)
    assert warning_at == end, "the warning comes when the grace ends, not later"
    assert warning.restart_at == end + restarts.WARNING_BEFORE_RESTART
    last_at, last, final = seen[-1]
    assert isinstance(last, restarts.Restart)
    assert last.reason == "warning_elapsed"
    assert last_at == end + restarts.WARNING_BEFORE_RESTART
    assert final.phase == "restarting"
    numbers = [told.number for _, told in prompts]
    assert numbers == list(range(1, len(numbers) + 1))


def test_nobody_logged_on_restarts_at_once_even_with_a_grace() -> None:
    policy = PolicySettings(user_controls_restart=False, deadline_grace_days=3)
    state = restarts.after_install(
        restarts.IDLE, policy, NOW, user_logged_on=False, deadline_forced=True
    )
    assert state == restarts.RestartState("restart_now", NOW)


def test_the_user_may_restart_during_the_grace() -> None:
    policy = PolicySettings(user_controls_restart=False, deadline_grace_days=2)
    state = restarts.after_install(
        restarts.IDLE, policy, NOW, user_logged_on=True, deadline_forced=True
    )
    state, _ = restarts.on_due(state, policy, state.due_at or NOW, user_logged_on=True)
    assert state.phase == "prompting"
    assert restarts.on_restarted(state) == restarts.IDLE


def test_forced_by_deadline_reads_the_computers_own_deadline() -> None:
    own = {"u1": NOW, "u2": None, "u3": NOW + timedelta(hours=1)}
    assert deadlines.forced_by_deadline(["u1"], own, NOW)
    assert not deadlines.forced_by_deadline(["u2", "u3", "unknown"], own, NOW)
    assert deadlines.forced_by_deadline(["u3"], own, NOW + timedelta(hours=1))


# The plan: every item shows the computer's own deadline, and timers follow it.

RESTARTS = plans.UpdateFacts(
    kb="5034441",
    title="Cumulative update",
    restart="always",
    command_line=None,
    return_codes=[ReturnCode(code=0, outcome="success")],
)


@FAST
@given(computer_id=plan_ids, spread=st.integers(0, 24), days=st.integers(-3, 30))
def test_the_plan_shows_and_fires_at_the_computers_own_deadline(
    computer_id: str, spread: int, days: int
) -> None:
    approved = NOW + timedelta(days=days)
    policy = plans.PolicyInForce(
        "p1",
        "Spread",
        PolicySettings(deadline_spread_hours=spread, allow_immediate_install=False),
        None,
    )
    plan, schedule = plans.build_plan(
        plans.Computer(computer_id, "Europe/Paris"),
        policy,
        [("g1", "u1", "required_install", Deadline("custom", approved))],
        {"u1": RESTARTS},
        {},
        NOW,
    )
    own = deadline_spread.computer_deadline(approved, computer_id, spread)
    [item] = plan.items
    assert item.deadline == own
    assert schedule.deadline == own
    assert timer_plan(plan).deadlines == [own]
    assert own is not None
    if own <= (plan.next_window or own):
        assert item.install_at == own
