"""Plans: recomputed for computers marked dirty, in batches, by any number of replicas.

Events only mark computers (`plan_dirty_at`); this module computes their plans, stores
them, keeps their timers in line and publishes `computer.<id>.plan.v1` when a plan changed
(or always, in answer to a check-in), and `scheduler.computer.policy-changed.v1` when the
policy in force for a computer is not the one last announced for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from libs.contracts.agents import PLAN, ComputerPlan, GetPlan
from libs.contracts.scheduler import COMPUTER_POLICY_CHANGED, ComputerPolicyChanged
from libs.db.outbox import Outbox
from libs.db.pool import Connection
from libs.domain.content_urls import ContentLinks
from libs.observability import metrics
from libs.service import HandlerContext, NotFound, TaskContext
from services.scheduler import store
from services.scheduler.domain.agent_updates import agent_update
from services.scheduler.domain.computers import PublishedPolicy
from services.scheduler.domain.plans import Computer, build_plan, plan_digest
from services.scheduler.domain.policy import policy_in_force, policy_to_announce
from services.scheduler.domain.timers import TimerChange, plan_timers

log = structlog.get_logger(__name__)

BATCH = 200


async def replan(
    conn: Connection,
    outbox: Outbox,
    computer_ids: Sequence[str],
    now: datetime,
    *,
    links: ContentLinks,
    always_publish: bool = False,
    dirty_seen: dict[str, datetime] | None = None,
) -> dict[str, ComputerPlan]:
    """Recompute, store and (when changed) publish the plans of these computers; their
    timers are written in one batch. Content URLs are signed with `links`."""
    rows = await store.computers.find(conn, computer_ids)
    ids = sorted(rows)
    member_of = await store.groups.memberships(conn, ids)
    groups = sorted({g for gs in member_of.values() for g in gs})
    per_group = await store.approvals.of_groups(conn, groups)
    facts = await store.updates.facts(
        conn, sorted({a.update_id for listed in per_group.values() for a in listed})
    )
    progress = await store.progress.of_computers(conn, ids)
    context = await store.policies.context(conn)
    mandatory = await store.releases.latest_mandatory(conn)
    plans: dict[str, ComputerPlan] = {}
    publish: list[tuple[ComputerPlan, str]] = []
    timers: list[TimerChange] = []
    announced: list[tuple[str, PublishedPolicy]] = []
    for computer_id in ids:
        row = rows[computer_id]
        policy = policy_in_force(member_of[computer_id], context)
        announce = policy_to_announce(row.published_policy, policy)
        if announce is not None:
            announced.append((computer_id, announce))
        approvals = [a for group in member_of[computer_id] for a in per_group.get(group, [])]
        plan, schedule = build_plan(
            Computer(computer_id, row.timezone, row.deadline_fired_through, row.inventory),
            policy,
            approvals,
            facts,
            progress[computer_id],
            now,
            links,
        )
        upgrade = agent_update(policy.settings, row.timezone, row.agent_version, mandatory, now)
        plan = plan.model_copy(update={"agent_update": upgrade})
        unplanned = [i.update_id for i in plan.items if i.update_id not in progress[computer_id]]
        if unplanned:
            await store.progress.mark_planned(conn, computer_id, unplanned, now)
        timers.extend(plan_timers(computer_id, schedule, upgrade))
        digest = plan_digest(plan)
        seen = None if dirty_seen is None else dirty_seen.get(computer_id)
        await store.plans.save(conn, computer_id, plan, digest, seen)
        if always_publish or digest != row.plan_hash:
            publish.append((plan, computer_id))
        plans[computer_id] = plan
    await store.timers.schedule(conn, timers)
    await outbox.add_many(PLAN, publish)
    await _announce_policies(conn, outbox, announced, now)
    metrics.PLANS_PUBLISHED.inc(len(publish))
    return plans


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
                ),
                computer_id,
            )
            for computer_id, policy in announced
        ],
    )


async def plan_dirty_computers(task: TaskContext) -> int:
    """Recompute every plan marked dirty, a batch per transaction; returns how many."""
    done = 0
    while True:
        async with task.pool.acquire() as conn, conn.transaction():
            claimed = await store.plans.claim_dirty(conn, BATCH)
            if not claimed:
                return done
            await replan(
                conn,
                task.outbox(conn),
                [c for c, _ in claimed],
                task.clock.now(),
                links=task.settings.content_links(),
                dirty_seen=dict(claimed),
            )
        done += len(claimed)
        log.debug("plans.recomputed", count=len(claimed))


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
