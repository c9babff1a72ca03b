"""Plans: recomputed for computers marked dirty, in batches, by any number of replicas.

Events only mark computers (`plan_dirty_at`); this module computes their plans, stores
them, keeps their timers in line and publishes `computer.<id>.plan.v1` when a plan changed
(or always, in answer to a check-in).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from libs.contracts.agents import PLAN, ComputerPlan
from libs.contracts.policies import RECOMMENDED
from libs.db.outbox import Outbox
from libs.db.pool import Connection
from libs.observability import metrics
from libs.service import TaskContext
from services.scheduler import store
from services.scheduler.domain.agent_updates import agent_update
from services.scheduler.domain.plans import (
    NO_POLICY,
    Computer,
    PolicyInForce,
    build_plan,
    plan_digest,
)
from services.scheduler.domain.policy import effective_policy

log = structlog.get_logger(__name__)

BATCH = 200


async def replan(
    conn: Connection,
    outbox: Outbox,
    computer_ids: Sequence[str],
    now: datetime,
    *,
    always_publish: bool = False,
    dirty_seen: dict[str, datetime] | None = None,
) -> dict[str, ComputerPlan]:
    """Recompute, store and (when changed) publish the plans of these computers."""
    rows = await store.computers(conn, computer_ids)
    ids = sorted(rows)
    member_of = await store.memberships(conn, ids)
    groups = sorted({g for gs in member_of.values() for g in gs})
    per_group = await store.approvals_of_groups(conn, groups)
    facts = await store.facts(
        conn, sorted({u for items in per_group.values() for u, _, _ in items})
    )
    progress = await store.progress(conn, ids)
    context = await store.policy_context(conn)
    mandatory = await store.latest_mandatory(conn)
    plans: dict[str, ComputerPlan] = {}
    publish: list[tuple[ComputerPlan, str]] = []
    for computer_id in ids:
        row = rows[computer_id]
        chosen = effective_policy(member_of[computer_id], context.parents, context.assignments)
        if chosen.assignment is None:
            policy = PolicyInForce(None, NO_POLICY, RECOMMENDED, None)
        else:
            name, settings = context.settings[chosen.assignment.policy_id]
            policy = PolicyInForce(chosen.assignment.policy_id, name, settings, chosen.conflict)
        approvals = [
            (group, update_id, action, deadline)
            for group in member_of[computer_id]
            for update_id, action, deadline in per_group.get(group, [])
        ]
        plan, schedule = build_plan(
            Computer(computer_id, row.timezone, row.deadline_fired_through),
            policy,
            approvals,
            facts,
            progress[computer_id],
            now,
        )
        upgrade = agent_update(policy.settings, row.timezone, row.agent_version, mandatory, now)
        plan = plan.model_copy(update={"agent_update": upgrade})
        unplanned = [i.update_id for i in plan.items if i.update_id not in progress[computer_id]]
        if unplanned:
            await store.mark_planned(conn, computer_id, unplanned, now)
        await store.set_timer(conn, computer_id, "window", schedule.window)
        await store.set_timer(conn, computer_id, "deadline", schedule.deadline)
        await store.set_timer(conn, computer_id, "immediate", schedule.immediate)
        await store.set_timer(
            conn, computer_id, "agent_update", None if upgrade is None else upgrade.install_at
        )
        digest = plan_digest(plan)
        seen = None if dirty_seen is None else dirty_seen.get(computer_id)
        await store.save_plan(conn, computer_id, plan.model_dump_json(), digest, seen)
        if always_publish or digest != row.plan_hash:
            publish.append((plan, computer_id))
        plans[computer_id] = plan
    await outbox.add_many(PLAN, publish)
    metrics.PLANS_PUBLISHED.inc(len(publish))
    return plans


async def plan_dirty_computers(task: TaskContext) -> int:
    """Recompute every plan marked dirty, a batch per transaction; returns how many."""
    done = 0
    while True:
        async with task.pool.acquire() as conn, conn.transaction():
            claimed = await store.claim_dirty(conn, BATCH)
            if not claimed:
                return done
            await replan(
                conn,
                task.outbox(conn),
                [c for c, _ in claimed],
                task.clock.now(),
                dirty_seen=dict(claimed),
            )
        done += len(claimed)
        log.debug("plans.recomputed", count=len(claimed))
