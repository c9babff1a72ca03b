"""Rollouts: start, show, list, go, cancel, and the periodic task that measures gates.

A ring starts by writing an explicit approval on its group and recomputing the update, the
very path an operator's approval takes (use_cases/approvals.py `recompute`), so the read
copies and the public per-group events follow as for any approval.

The gate's figures come from reporting by a command over RabbitMQ
(`reporting.update.groups-counts.v1`): approval never reads reporting's schema, and the
figures are the ones `lockgate reports` shows. The task asks outside any transaction, then
takes the writer lock and re-reads the rollout before moving it, so two replicas measuring
the same gate move it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog

from libs.bus import Bus, RpcClient
from libs.bus.rpc import BrokerUnavailable, RpcError, RpcTimeout, ServiceUnavailable
from libs.contracts import approval as a
from libs.contracts import reporting as r
from libs.contracts import rollouts as ro
from libs.contracts.envelope import Envelope, source_of
from libs.contracts.rings import RingGate
from libs.service import Conflict, HandlerContext, NotFound, TaskContext
from services.approval import store
from services.approval.domain import rollouts as rules
from services.approval.domain.approvals import ExplicitApproval, rule_preview, same_decision
from services.approval.domain.deadlines import resolve
from services.approval.domain.groups import Groups
from services.approval.domain.rollouts import RolloutRecord
from services.approval.domain.tree import Explicit, Paused
from services.approval.domain.updates import Update, check_approvable
from services.approval.store import rollouts as saved
from services.approval.use_cases.approvals import recompute
from services.approval.use_cases.lookups import find_group, find_update

log = structlog.get_logger(__name__)

GATE_BATCH = 100
"""Rollouts whose gate is due, measured per run of the task."""


async def _update(ctx: HandlerContext, update_id: str) -> Update:
    update = await store.updates.by_id(ctx.conn, update_id)
    if update is None:  # the row cascades with its update: cannot happen while locked
        raise NotFound(f"update: {update_id} is unknown to approval", field="update")
    return update


def _named(update: Update) -> str:
    return f"KB{update.kb}" if update.kb else update.update_id


async def _find(ctx: HandlerContext, reference: str) -> RolloutRecord:
    found = await saved.find(ctx.conn, reference, lock=True)
    if found is None:
        raise NotFound(
            f"rollout: {reference!r} is neither a rollout id nor an update (id or KB number) "
            "that has a rollout",
            field="rollout",
        )
    return found


async def _approve_ring(
    ctx: HandlerContext, groups: Groups, update: Update, rollout: RolloutRecord, index: int
) -> None:
    """The ring's group gets the rollout's approval. A rollout a rule started leaves a group
    that already holds an explicit approval of the update alone, as the rule itself would."""
    group = rollout.rings[index].group_id
    if group not in groups.names:
        return  # deleted since: nothing to approve there
    value = rules.ring_approval(rollout, ctx.now)
    held = (await store.approvals.explicit_for(ctx.conn, update.update_id)).get(group)
    if held is not None and rollout.started_by.startswith("rule:"):
        return
    if same_decision(held, value):
        return
    await store.approvals.put_explicit(ctx.conn, [ExplicitApproval(update.update_id, group, value)])
    await recompute(ctx, groups, update, f"rollout:{rollout.rollout_id}")


async def _moved(
    ctx: HandlerContext,
    groups: Groups,
    update: Update,
    before: RolloutRecord,
    after: RolloutRecord,
    *,
    by: str,
) -> None:
    """Save the rollout, approve the ring it started (if any) and publish what happened:
    the ring started, then completed if it was the last."""
    await saved.save(ctx.conn, after)
    if after.rings_started > before.rings_started:
        index = after.rings_started - 1
        await _approve_ring(ctx, groups, update, after, index)
        await ctx.outbox.add(
            ro.RING_STARTED,
            ro.RolloutTransition(
                rollout=rules.view(after, update, groups.names),
                ring=rules.ring_view(after, index, groups.names),
                figures=after.figures,
                by=by,
            ),
            subject=after.rollout_id,
        )
    if after.state == "completed" and before.state != "completed":
        await ctx.outbox.add(
            ro.ROLLOUT_COMPLETED,
            ro.RolloutTransition(rollout=rules.view(after, update, groups.names), by=by),
            subject=after.rollout_id,
        )


async def begin(
    ctx: HandlerContext,
    groups: Groups,
    update: Update,
    ring_ids: list[str],
    *,
    action: ro.RolloutAction,
    deadline: a.DeadlineChoice,
    gate: RingGate,
    by: str,
) -> RolloutRecord:
    """A new rollout: saved, its first ring approved, `started` and `ring-started` published
    (the writer lock is held by the caller)."""
    rollout = rules.start(
        rollout_id=str(uuid.uuid4()),
        update_id=update.update_id,
        ring_ids=ring_ids,
        action=action,
        deadline=deadline,
        gate=gate,
        now=ctx.now,
        by=by,
    )
    await saved.save(ctx.conn, rollout)
    await _approve_ring(ctx, groups, update, rollout, 0)
    shown = rules.view(rollout, update, groups.names)
    await ctx.outbox.add(
        ro.ROLLOUT_STARTED, ro.RolloutTransition(rollout=shown, by=by), subject=rollout.rollout_id
    )
    await ctx.outbox.add(
        ro.RING_STARTED,
        ro.RolloutTransition(rollout=shown, ring=rules.ring_view(rollout, 0, groups.names), by=by),
        subject=rollout.rollout_id,
    )
    return rollout


async def start_rollout(ctx: HandlerContext, command: ro.StartRollout) -> ro.Rollout:
    """Start a rollout: checks, then the first ring is approved at once."""
    await store.writers.lock(ctx.conn)
    update = await find_update(ctx, command.update, "update")
    check_approvable(update, "update")
    ring_ids = [await find_group(ctx, ref, f"rings[{i}]") for i, ref in enumerate(command.rings)]
    groups = await store.groups.load(ctx.conn)
    rules.check_rings(groups.tree, ring_ids, command.rings)
    rules.check_deadline(command.action, command.deadline)
    running = await saved.active_for(ctx.conn, update.update_id)
    if running is not None:
        raise Conflict(
            f"update: {_named(update)} already has a "
            f"rollout {running.state} ({running.rollout_id}); give it go or cancel it first",
            field="update",
        )
    if update.declined_at is not None:  # approving brings a declined update back
        await store.updates.set_declined(ctx.conn, [update.update_id], None)
    rollout = await begin(
        ctx,
        groups,
        update,
        ring_ids,
        action=command.action,
        deadline=command.deadline,
        gate=command.gate,
        by=command.requested_by,
    )
    return rules.view(rollout, update, groups.names)


async def roll_out_for_rule(
    ctx: HandlerContext,
    groups: Groups,
    rule: a.Rule,
    updates: Sequence[Update],
    *,
    dry_run: bool = False,
) -> a.RuleRan:
    """A rule with a rollout starts one per update it picks, over its groups in order (its
    first group approved now, with the rule's deadline); an update that was ever rolled out
    is left alone, as is a ring group that holds an explicit approval already. `rule.ran.v1`
    is published when it started any. A dry run writes and publishes nothing and lists the
    first ring's approvals it would write."""
    assert rule.rollout is not None  # noqa: S101 - callers check
    rings = [g for g in rule.group_ids if g in groups.names]
    unique = {u.update_id: u for u in updates}
    chosen = [u for u in unique.values() if not await saved.has_any(ctx.conn, u.update_id)]
    if len(rings) < ro.MIN_RINGS:  # groups deleted since the rule was made
        chosen = []
    explicit = await store.approvals.explicit_for_each(ctx.conn, [u.update_id for u in chosen])
    by = f"rule:{rule.rule_id}"
    deadline = a.DeadlineChoice(kind=rule.deadline)
    first = [
        ExplicitApproval(
            u.update_id,
            rings[0],
            Explicit("required_install", resolve(rule.deadline, None, ctx.now), ctx.now, by),
        )
        for u in chosen
        if rings[0] not in explicit.get(u.update_id, {})
    ]
    if dry_run:
        return a.RuleRan(
            rule_id=rule.rule_id,
            updates_approved=[u.update_id for u in chosen],
            explicit_changed=len(first),
            approvals=rule_preview(groups, unique, explicit, first, a.PREVIEW_LIMIT),
            approvals_truncated=len(first) > a.PREVIEW_LIMIT,
        )
    for update in chosen:
        await begin(
            ctx,
            groups,
            update,
            rings,
            action="required_install",
            deadline=deadline,
            gate=rule.rollout,
            by=by,
        )
    ran = a.RuleRan(
        rule_id=rule.rule_id,
        updates_approved=[u.update_id for u in chosen],
        explicit_changed=len(first),
    )
    if chosen:
        await ctx.outbox.add(a.RULE_RAN, ran, subject=rule.rule_id)
    return ran


async def show_rollout(ctx: HandlerContext, query: ro.RolloutRef) -> ro.Rollout:
    found = await saved.find(ctx.conn, query.rollout)
    if found is None:
        raise NotFound(
            f"rollout: {query.rollout!r} is neither a rollout id nor an update (id or KB "
            "number) that has a rollout",
            field="rollout",
        )
    groups = await store.groups.load(ctx.conn)
    return rules.view(found, await _update(ctx, found.update_id), groups.names)


async def list_rollouts(ctx: HandlerContext, query: ro.ListRollouts) -> ro.RolloutList:
    groups = await store.groups.load(ctx.conn)
    found = await saved.listed(ctx.conn, query.states, query.limit)
    updates = await store.updates.by_ids(ctx.conn, list({f.update_id for f in found}))
    return ro.RolloutList(
        rollouts=[rules.view(f, updates[f.update_id], groups.names) for f in found]
    )


async def go_rollout(ctx: HandlerContext, command: ro.RolloutDecision) -> ro.Rollout:
    """An operator's go: the next ring starts now, whatever its delay and gate."""
    await store.writers.lock(ctx.conn)
    before = await _find(ctx, command.rollout)
    after = rules.go(before, ctx.now, command.requested_by)
    update = await _update(ctx, before.update_id)
    ended = _ended(update)
    if ended is not None:
        raise Conflict(
            f"rollout: {before.rollout_id} cannot go on: {ended}; cancel it", field="rollout"
        )
    groups = await store.groups.load(ctx.conn)
    index = after.rings_started - 1
    await ctx.outbox.add(
        ro.ROLLOUT_GO,
        ro.RolloutTransition(
            rollout=rules.view(after, update, groups.names),
            ring=rules.ring_view(after, index, groups.names),
            figures=before.figures,
            by=command.requested_by,
            reason=command.reason,
        ),
        subject=after.rollout_id,
    )
    await _moved(ctx, groups, update, before, after, by=command.requested_by)
    return rules.view(after, update, groups.names)


async def cancel_rollout(ctx: HandlerContext, command: ro.RolloutDecision) -> ro.Rollout:
    """No further ring starts; approvals already given stay (pause or roll them back)."""
    await store.writers.lock(ctx.conn)
    before = await _find(ctx, command.rollout)
    update = await _update(ctx, before.update_id)
    return await _cancel(ctx, before, update, by=command.requested_by, reason=command.reason)


async def _cancel(
    ctx: HandlerContext, before: RolloutRecord, update: Update, *, by: str, reason: str
) -> ro.Rollout:
    after = rules.cancel(before, ctx.now)
    groups = await store.groups.load(ctx.conn)
    await saved.save(ctx.conn, after)
    shown = rules.view(after, update, groups.names)
    await ctx.outbox.add(
        ro.ROLLOUT_CANCELLED,
        ro.RolloutTransition(rollout=shown, by=by, reason=reason),
        subject=after.rollout_id,
    )
    return shown


def _ended(update: Update) -> str | None:
    """Why no further ring may start, whatever the gate: the update was declined or has
    expired since the rollout started (the gate task cancels the rollout then)."""
    if update.declined_at is not None:
        return f"the update was declined at {update.declined_at.isoformat()}"
    if update.expired_at is not None:
        return f"the update expired at {update.expired_at.isoformat()}"
    return None


# --- the gate task --------------------------------------------------------------------------

_clients: dict[int, tuple[Bus, RpcClient]] = {}


def _rpc(task: TaskContext) -> RpcClient | None:
    """One RPC client per broker connection of this process."""
    if task.bus is None:
        return None
    found = _clients.get(id(task.bus))
    if found is None or found[0] is not task.bus:
        client = RpcClient(
            task.bus,
            source=source_of(task.instance.service),
            timeout=task.settings.rpc_timeout_seconds,
        )
        found = _clients[id(task.bus)] = (task.bus, client)
    return found[1]


async def _measure(rpc: RpcClient, rollout: RolloutRecord) -> r.StateCounts | None:
    """Reporting's counts over the rings started so far; None (logged) when reporting cannot
    say now: the gate waits, it never passes or holds on figures nobody measured."""
    try:
        found = await rpc.call(
            r.GROUPS_COUNTS,
            r.GroupsCounts(update=rollout.update_id, groups=rollout.measured_groups()),
        )
    except (RpcError, RpcTimeout, ServiceUnavailable, BrokerUnavailable) as error:
        log.warning("rollout.gate_unmeasured", rollout_id=rollout.rollout_id, error=str(error))
        return None
    return found.counts


async def evaluate_gates(task: TaskContext) -> int:
    """Measure the gate of every running rollout whose delay is over, and move it: the next
    ring starts (passed), it is held with why (too many failures), or it keeps waiting with
    the figures shown. Returns how many rollouts moved to another ring or state."""
    rpc = _rpc(task)
    if rpc is None:
        return 0
    now = task.clock.now()
    async with task.pool.acquire() as conn:
        due = await saved.due(conn, now, GATE_BATCH)
    moved = 0
    for candidate in due:
        counts = await _measure(rpc, candidate)
        if counts is None:
            continue
        async with task.pool.acquire() as conn, conn.transaction():
            ctx = HandlerContext(
                conn=conn,
                envelope=Envelope.new(
                    source=source_of(task.instance.service), type=ro.GATE_PASSED.type, now=now
                ),
                outbox=task.outbox(conn),
                now=now,
                instance=task.instance,
                settings=task.settings,
            )
            await store.writers.lock(conn)
            before = await saved.find(conn, candidate.rollout_id, lock=True)
            if (
                before is None
                or not rules.due(before, now)
                or before.rings_started != candidate.rings_started
            ):
                continue  # moved meanwhile (another replica, an operator)
            update = await _update(ctx, before.update_id)
            ended = _ended(update)
            if ended is not None:
                await _cancel(ctx, before, update, by="approval", reason=ended)
                moved += 1
                continue
            figures = rules.measure(before.gate, counts, before.rings_started, now)
            pause = rules.holding_pause(
                before, await store.pauses.of_update(conn, before.update_id)
            )
            if pause is not None:
                figures = rules.while_paused(figures, pause, await _where(ctx, pause))
            after = rules.after_gate(before, figures, now)
            moved += await _gate_moved(ctx, before, after, figures)
    return moved


async def _where(ctx: HandlerContext, pause: Paused) -> str:
    """Where a pause is set, as a gate's why says it."""
    if pause.group is None:
        return "fleet-wide"
    groups = await store.groups.load(ctx.conn)
    return f"on {groups.names.get(pause.group, pause.group)}"


async def _gate_moved(
    ctx: HandlerContext, before: RolloutRecord, after: RolloutRecord, figures: ro.GateFigures
) -> int:
    update = await _update(ctx, before.update_id)
    groups = await store.groups.load(ctx.conn)
    next_ring = before.next_ring
    assert next_ring is not None  # noqa: S101 - a due rollout has a ring left
    if figures.verdict == "waiting":
        await saved.save(ctx.conn, after)
        return 0
    shown = rules.view(after, update, groups.names)
    ring = rules.ring_view(after, next_ring, groups.names)
    spec = ro.GATE_PASSED if figures.verdict == "passed" else ro.GATE_HELD
    await ctx.outbox.add(
        spec,
        ro.RolloutTransition(
            rollout=shown, ring=ring, figures=figures, by="gate", reason=figures.why
        ),
        subject=after.rollout_id,
    )
    if figures.verdict == "held":
        await saved.save(ctx.conn, after)
    else:
        await _moved(ctx, groups, update, before, after, by="gate")
    return 1
