"""Plans: recomputed in bulk for computers marked dirty and for ranges of computers a change
reached, by any number of replicas.

Events only mark work (one computer's row, or ranges of computer ids: store/plans.py); this
module computes plans a batch at a time with a handful of statements per batch (inputs read
for the whole batch, plans stored in one statement, timers and `planned_at` in one each),
keeps their timers in line, and publishes `computer.<id>.plan.v1` when a plan changed and
the change reached few computers (domain/plans.py PUSH_LIMIT; always in answer to a
check-in), and `scheduler.computer.policy-changed.v1` when the policy in force for a
computer is not the one last announced for it.

Computers with the same inputs (groups, time zone, inventory, progress, agent version) get
the same plan but for their id: it is built once per batch and its JSON reused (PlanText),
so a computer costs a string and a digest, not a plan built and serialised anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from libs.contracts.agents import PLAN, ComputerPlan, GetPlan
from libs.contracts.scheduler import COMPUTER_POLICY_CHANGED, ComputerPolicyChanged
from libs.contracts.windows import MaintenanceWindow
from libs.db.outbox import Outbox
from libs.db.pool import Connection
from libs.domain.content_urls import ContentLinks
from libs.domain.deadline_spread import spread_offset
from libs.observability import metrics
from libs.service import HandlerContext, NotFound, TaskContext
from services.scheduler import store
from services.scheduler.domain.agent_updates import agent_update
from services.scheduler.domain.computers import ManagedComputer, PublishedPolicy
from services.scheduler.domain.plans import (
    Computer,
    GroupApproval,
    PlanText,
    PolicyInForce,
    Progress,
    Schedule,
    UpdateFacts,
    build_plan,
)
from services.scheduler.domain.policy import PolicyContext, policy_in_force, policy_to_announce
from services.scheduler.domain.timers import TimerChange, plan_timers, timer_plan
from services.scheduler.domain.windows import windows_of
from services.scheduler.store.plans import PlanRow

log = structlog.get_logger(__name__)

BATCH = 1000
"""Computers marked dirty one transaction re-plans."""
WORKERS = 2
"""Transactions one replica keeps re-planning at once: one computes while the database
writes the other's batch."""


@dataclass(frozen=True)
class _Shared:
    """A plan computed once for every computer of a batch with the same inputs."""

    plan: ComputerPlan
    text: PlanText
    schedule: Schedule
    policy: PolicyInForce
    unplanned: list[str]
    """Its updates with no progress row yet (when they entered the plan is remembered)."""
    firing: str
    """What firing its timers needs, as JSON (domain/timers.py TimerPlan: it does not name the
    computer); kept beside the timers (store/timers.py keep_plans)."""


@dataclass(frozen=True)
class _Planned:
    computer_id: str
    shared: _Shared

    def plan(self) -> ComputerPlan:
        """The plan as a model (made only for the few that are sent or returned)."""
        plan = self.shared.plan
        if plan.computer_id == self.computer_id:
            return plan
        return plan.model_copy(update={"computer_id": self.computer_id})


def _inputs(
    row: ManagedComputer,
    policy: PolicyInForce,
    approvals: Sequence[GroupApproval],
    progress: Mapping[str, Progress],
    windows: tuple[MaintenanceWindow, ...],
) -> tuple[object, ...]:
    """Everything of one computer its plan depends on, but its id (see PlanText): its
    share of a deadline spread stands for the id where the policy spreads deadlines.

    Approvals count by what they say (update, action, deadline), not by the group that
    carries them: a plan shows the action and deadline that win per update, whichever of
    the computer's groups they come from (libs/domain/resolution.py), so computers in
    different groups that inherit the same approvals share a plan.
    """
    return (
        policy.policy_id,
        policy.name,
        policy.conflict,
        frozenset((a.update_id, a.action, a.deadline, a.paused) for a in approvals),
        row.timezone,
        # Its deadlines are its own when the policy spreads them (domain/deadlines.py).
        spread_offset(row.computer_id, policy.settings.deadline_spread_hours),
        row.deadline_fired_through,
        row.inventory,
        row.agent_version,
        windows,
        tuple(sorted(progress.items())),
    )


@dataclass(frozen=True)
class _Batch:
    """What every plan of a batch is computed from, read once for the batch."""

    per_group: Mapping[str, Sequence[GroupApproval]]
    facts: Mapping[str, UpdateFacts]
    context: PolicyContext
    mandatory: tuple[str, datetime] | None
    """The newest mandatory agent release (version, published at), if any."""
    now: datetime
    links: ContentLinks
    windows: Mapping[str, Sequence[MaintenanceWindow]]
    """Every group's own maintenance windows, by group id."""

    def approvals(self, groups: Sequence[str]) -> list[GroupApproval]:
        """The effective approvals of a computer in these groups."""
        return [a for group in groups for a in self.per_group.get(group, ())]

    def limits(self, groups: Sequence[str]) -> tuple[MaintenanceWindow, ...]:
        """The maintenance windows of a computer in these groups (and their ancestors)."""
        return windows_of(groups, self.context.parents, self.windows)

    def build(
        self,
        row: ManagedComputer,
        policy: PolicyInForce,
        approvals: Sequence[GroupApproval],
        progress: Mapping[str, Progress],
        windows: tuple[MaintenanceWindow, ...],
    ) -> _Shared:
        """One computer's plan (domain/plans.py build_plan), its timers and agent update."""
        plan, schedule = build_plan(
            Computer(
                row.computer_id, row.timezone, row.deadline_fired_through, row.inventory, windows
            ),
            policy,
            approvals,
            self.facts,
            progress,
            self.now,
            self.links,
        )
        upgrade = agent_update(
            policy.settings, row.timezone, row.agent_version, self.mandatory, self.now
        )
        plan = plan.model_copy(update={"agent_update": upgrade})
        unplanned = [i.update_id for i in plan.items if i.update_id not in progress]
        return _Shared(
            plan, PlanText.of(plan), schedule, policy, unplanned, timer_plan(plan).model_dump_json()
        )


async def _plan_batch(
    conn: Connection,
    outbox: Outbox,
    computer_ids: Sequence[str],
    now: datetime,
    *,
    links: ContentLinks,
    always_publish: bool,
    push: bool,
    dirty_seen: Mapping[str, datetime | None] | None,
) -> list[_Planned]:
    """Recompute, store and (when changed and `push`) publish the plans of these computers,
    with a handful of statements for the whole batch."""
    rows = await store.computers.find(conn, computer_ids)
    ids = sorted(rows)
    if not ids:
        return []
    member_of = await store.groups.memberships(conn, ids)
    per_group = await store.approvals.of_groups(
        conn, sorted({g for gs in member_of.values() for g in gs})
    )
    batch = _Batch(
        per_group=per_group,
        facts=await store.updates.facts(
            conn, sorted({a.update_id for listed in per_group.values() for a in listed})
        ),
        context=await store.policies.context(conn),
        mandatory=await store.releases.latest_mandatory(conn),
        now=now,
        links=links,
        windows=await store.windows.by_group(conn),
    )
    progress = await store.progress.of_computers(conn, ids)
    shared: dict[tuple[object, ...], _Shared] = {}
    policies: dict[frozenset[str], PolicyInForce] = {}
    planned: list[_Planned] = []
    saved: list[PlanRow] = []
    publish: list[tuple[ComputerPlan, str]] = []
    timers: list[TimerChange] = []
    firings: list[tuple[str, str, str]] = []
    announced: list[tuple[str, PublishedPolicy]] = []
    first_planned: list[tuple[str, str]] = []
    for computer_id in ids:
        row, groups, mine = rows[computer_id], member_of[computer_id], progress[computer_id]
        group_set = frozenset(groups)
        policy = policies.get(group_set)
        if policy is None:
            policy = policies[group_set] = policy_in_force(groups, batch.context)
        approvals, limits = batch.approvals(groups), batch.limits(groups)
        key = _inputs(row, policy, approvals, mine, limits)
        found = shared.get(key)
        if found is None or not found.text.shareable:
            found = shared[key] = batch.build(row, policy, approvals, mine, limits)
        announce = policy_to_announce(row.published_policy, found.policy)
        if announce is not None:
            announced.append((computer_id, announce))
        first_planned += [(computer_id, u) for u in found.unplanned]
        timers.extend(plan_timers(computer_id, found.schedule, found.plan.agent_update))
        digest = found.text.digest
        firings.append((computer_id, digest, found.firing))
        seen = None if dirty_seen is None else dirty_seen.get(computer_id)
        saved.append(PlanRow(computer_id, found.text.text(computer_id), digest, seen))
        result = _Planned(computer_id, found)
        if always_publish or (push and digest != row.plan_hash):
            publish.append((result.plan(), computer_id))
        planned.append(result)
    await store.progress.mark_planned_many(conn, first_planned, now)
    await store.plans.save_many(conn, saved)
    kept = await store.plans.timers_kept(conn, ids)
    await store.timers.schedule(conn, [t for t in timers if _moves(t, kept)])
    await store.timers.keep_plans(conn, firings)
    await outbox.add_many(PLAN, publish)
    await _announce_policies(conn, outbox, announced, now)
    metrics.PLANS_PUBLISHED.inc(len(publish))
    return planned


def _moves(change: TimerChange, kept: Mapping[tuple[str, str], datetime]) -> bool:
    """Whether writing this timer change changes anything (a timer set elsewhere, or one to
    drop that exists)."""
    key = (change.computer_id, change.kind)
    return key in kept if change.due_at is None else kept.get(key) != change.due_at


async def replan(
    conn: Connection,
    outbox: Outbox,
    computer_ids: Sequence[str],
    now: datetime,
    *,
    links: ContentLinks,
    always_publish: bool = False,
    push: bool = True,
    dirty_seen: Mapping[str, datetime | None] | None = None,
) -> dict[str, ComputerPlan]:
    """Recompute, store and (when changed and `push`, or `always_publish`) publish the plans
    of these computers; their timers are written in one batch. Content URLs are signed with
    `links`. Returns the plans (for the few computers a check-in or a query asks about)."""
    planned = await _plan_batch(
        conn,
        outbox,
        computer_ids,
        now,
        links=links,
        always_publish=always_publish,
        push=push,
        dirty_seen=dirty_seen,
    )
    return {p.computer_id: p.plan() for p in planned}


async def _announce_policies(
    conn: Connection,
    outbox: Outbox,
    announced: Sequence[tuple[str, PublishedPolicy]],
    now: datetime,
) -> None:
    """Publish the computers' new policies in force and remember them, in one batch."""
    if not announced:
        return
    await store.computers.set_published_policies(conn, announced)
    await outbox.add_many(
        COMPUTER_POLICY_CHANGED,
        [
            (
                ComputerPolicyChanged(
                    computer_id=computer_id,
                    policy_id=policy.policy_id,
                    policy_name=policy.name,
                    changed_at=now,
                    deadline_spread_hours=policy.deadline_spread_hours,
                ),
                computer_id,
            )
            for computer_id, policy in announced
        ],
    )


async def _plan_marked(task: TaskContext) -> int:
    """One batch of computers marked dirty, in one transaction; how many."""
    async with task.pool.acquire() as conn, conn.transaction():
        claimed = await store.plans.claim_dirty(conn, BATCH)
        if claimed:
            await _plan_batch(
                conn,
                task.outbox(conn),
                [c for c, _ in claimed],
                task.clock.now(),
                links=task.settings.content_links(),
                always_publish=False,
                push=True,
                dirty_seen=dict(claimed),
            )
    return len(claimed)


async def _plan_range(task: TaskContext) -> int | None:
    """One range of computers a change reached, in one transaction; how many (None: no
    range was left)."""
    async with task.pool.acquire() as conn, conn.transaction():
        taken = await store.plans.claim_range(conn)
        if taken is None:
            return None
        locked = await store.plans.lock_range(conn, taken)
        await _plan_batch(
            conn,
            task.outbox(conn),
            [c for c, _ in locked],
            task.clock.now(),
            links=task.settings.content_links(),
            always_publish=False,
            push=taken.push,
            dirty_seen=dict(locked),
        )
        await store.plans.finish_range(conn, taken)
    return len(locked)


async def _work(task: TaskContext) -> int:
    """Computers marked dirty first (one computer's change waits for no sweep), then a
    range, until neither is left; how many computers were re-planned."""
    done = 0
    while True:
        marked = await _plan_marked(task)
        ranged = await _plan_range(task)
        done += marked + (ranged or 0)
        if not marked and ranged is None:
            return done


async def plan_dirty_computers(task: TaskContext) -> int:
    """Recompute every plan marked dirty and every range waiting, a batch per transaction,
    WORKERS transactions at once; returns how many computers were re-planned."""
    found = await asyncio.gather(*(_work(task) for _ in range(WORKERS)), return_exceptions=True)
    for result in found:
        if isinstance(result, BaseException):
            raise result  # after every worker has stopped; classified as the runner does
    done = sum(r for r in found if isinstance(r, int))
    if done:
        log.debug("plans.recomputed", count=done)
    return done


async def current_plan(ctx: HandlerContext, computer_id: str) -> ComputerPlan:
    """The computer's stored plan; computed now if it has none yet."""
    found = await store.plans.find(ctx.conn, computer_id)
    if found is not None:
        return found
    return (await fresh_plans(ctx, [computer_id]))[computer_id]


async def fresh_plans(ctx: HandlerContext, computer_ids: Sequence[str]) -> dict[str, ComputerPlan]:
    """Plans recomputed now (published to the computers whose plan changed)."""
    return await replan(
        ctx.conn, ctx.outbox, computer_ids, ctx.now, links=ctx.settings.content_links()
    )


async def get_plan(ctx: HandlerContext, query: GetPlan) -> ComputerPlan:
    """A computer's plan, recomputed now (and sent to it if it changed)."""
    if not await store.computers.known(ctx.conn, query.computer):
        raise NotFound(
            f"computer: {query.computer!r} has never checked in; every registered computer is "
            "at least in All computers and has a plan",
            field="computer",
        )
    return (await fresh_plans(ctx, [query.computer]))[query.computer]
