"""Approving and declining: explicit approvals in, effective approvals and events out."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from libs.contracts import approval as a
from libs.service import HandlerContext, InvalidInput, NotFound
from services.approval import store
from services.approval.domain.approvals import (
    Changes,
    Plan,
    approvals_of_update,
    changes,
    computer_approval,
    explicit_choice,
    fan_out,
    group_state,
    plan,
    previewed_groups,
    rule_preview,
    states_of,
)
from services.approval.domain.groups import Groups
from services.approval.domain.pauses import with_pauses
from services.approval.domain.resolution import resolve_each
from services.approval.domain.rules import approvals_by
from services.approval.domain.tree import Effective, Explicit, effective
from services.approval.domain.updates import Update, check_approvable, search_text, view
from services.approval.use_cases.lookups import find_group, find_update


async def effective_changes(
    ctx: HandlerContext,
    groups: Groups,
    update_id: str,
    explicit: Mapping[str, Explicit],
    only: Collection[str] | None = None,
) -> tuple[dict[str, Effective], Changes]:
    """What applies to every group given these explicit approvals of the update (with the
    pauses that hold them), and how the stored effective approvals would have to change
    (written or not)."""
    pauses = await store.pauses.of_update(ctx.conn, update_id)
    wanted = with_pauses(groups.tree, effective(groups.tree, explicit), pauses)
    stored = await store.approvals.effective_for(ctx.conn, update_id)
    return wanted, changes(groups.tree, wanted, stored, only)


async def recompute(
    ctx: HandlerContext,
    groups: Groups,
    update: Update,
    cause: str,
    only: Collection[str] | None = None,
) -> int:
    """Bring the stored effective approvals of one update in line with its explicit ones.

    Publishes first `approval.update-approval.changed.v1`, the changed groups listed per
    approval that now applies (what scheduler and reporting keep their copies from), then one
    `approval.approval.changed.v1` per (group, update) that changed, for other systems;
    `only` limits the comparison to groups that may have changed (a moved subtree). Returns
    how many changed.
    """
    explicit = await store.approvals.explicit_for(ctx.conn, update.update_id)
    wanted, diff = await effective_changes(ctx, groups, update.update_id, explicit, only)
    await store.approvals.save_effective(ctx.conn, update.update_id, diff)
    changed = [g for g in diff.changed if g in groups.names]
    await ctx.outbox.add_many(
        a.UPDATE_APPROVAL_CHANGED,
        [(event, update.update_id) for event in fan_out(groups, update, changed, wanted, cause)],
    )
    await ctx.outbox.add_many(
        a.APPROVAL_CHANGED,
        [
            (
                a.ApprovalChanged(
                    state=group_state(groups, update, g, explicit.get(g), wanted.get(g)),
                    cause=cause,
                ),
                update.update_id,
            )
            for g in changed
        ],
    )
    return len(diff.changed)


async def recompute_all(
    ctx: HandlerContext, groups: Groups, cause: str, only: Collection[str]
) -> int:
    """After a tree change: every approved update, compared on the groups that moved."""
    changed = 0
    for update in await store.updates.with_explicit(ctx.conn):
        changed += await recompute(ctx, groups, update, cause, only)
    return changed


async def approve(ctx: HandlerContext, command: a.Approve) -> a.ApproveResult:
    """Set an action and deadline per group on each update; declined ones come back.

    With `dry_run` the same checks and the same plan, then only a preview: nothing is
    written (so no writer lock is taken) and nothing published.
    """
    if not command.dry_run:
        await store.writers.lock(ctx.conn)
    updates = [
        await find_update(ctx, ref, f"updates[{i}]") for i, ref in enumerate(command.updates)
    ]
    for i, update in enumerate(updates):
        check_approvable(update, f"updates[{i}]")
    choices: dict[str, Explicit | None] = {}
    for i, choice in enumerate(command.groups):
        field = f"groups[{i}]"
        group = await find_group(ctx, choice.group, f"{field}.group")
        if group in choices:
            raise InvalidInput(
                f"{field}.group: group {choice.group!r} is listed twice", field=field
            )
        choices[group] = explicit_choice(choice, ctx.now, field, "operator")
    groups = await store.groups.load(ctx.conn)
    unique = list({u.update_id: u for u in updates}.values())
    update_ids = [u.update_id for u in unique]
    planned = plan(await store.approvals.explicit_for_each(ctx.conn, update_ids), choices)
    if command.dry_run:
        return await _preview(ctx, groups, unique, planned, list(choices))
    declined = [u.update_id for u in unique if u.declined_at is not None]
    if declined:
        await store.updates.set_declined(ctx.conn, declined, None)
    written = 0
    inherit = [g for g, value in choices.items() if value is None]
    if inherit:
        written += await store.approvals.drop_explicit(ctx.conn, update_ids, inherit)
    await store.approvals.put_explicit(ctx.conn, planned.written)
    written += len(planned.written)
    changed = 0
    for update in unique:
        changed += await recompute(ctx, groups, update, "approve")
    return a.ApproveResult(explicit_changed=written, effective_changed=changed)


async def _preview(
    ctx: HandlerContext, groups: Groups, updates: Sequence[Update], planned: Plan, chosen: list[str]
) -> a.ApproveResult:
    """A dry run's reply: what would change, and what the chosen groups and every group below
    them would have, worked out as `recompute` would on the planned explicit approvals."""
    shown = previewed_groups(groups.tree, chosen)
    preview: list[a.GroupApprovalState] = []
    changed = 0
    for update in updates:
        explicit = planned.after[update.update_id]
        wanted, diff = await effective_changes(ctx, groups, update.update_id, explicit)
        changed += len(diff.changed)
        room = a.PREVIEW_LIMIT - len(preview)
        if room > 0:
            preview += states_of(groups, update, shown[:room], explicit, wanted)
    return a.ApproveResult(
        explicit_changed=planned.dropped + len(planned.written),
        effective_changed=changed,
        preview=preview,
        preview_truncated=len(preview) < len(shown) * len(updates),
    )


async def decline(ctx: HandlerContext, command: a.Decline) -> a.DeclineResult:
    """Remove every approval of the updates and hide them from default views."""
    await store.writers.lock(ctx.conn)
    updates = [
        await find_update(ctx, ref, f"updates[{i}]") for i, ref in enumerate(command.updates)
    ]
    groups = await store.groups.load(ctx.conn)
    unique = list({u.update_id: u for u in updates}.values())
    await store.approvals.drop_explicit(ctx.conn, [u.update_id for u in unique])
    declined: list[str] = []
    changed = 0
    for update in unique:
        changed += await recompute(ctx, groups, update, "decline")
        if update.declined_at is None:
            declined.append(update.update_id)
            await ctx.outbox.add(
                a.UPDATE_DECLINED,
                a.UpdateDeclined(update_id=update.update_id, kb=update.kb, declined_at=ctx.now),
                subject=update.update_id,
            )
    await store.updates.set_declined(ctx.conn, declined, ctx.now)
    return a.DeclineResult(declined=declined, effective_changed=changed)


async def approve_for_rule(
    ctx: HandlerContext,
    groups: Groups,
    rule: a.Rule,
    updates: Sequence[Update],
    *,
    dry_run: bool = False,
) -> a.RuleRan:
    """Write a rule's approvals of these updates at once, then recompute each approved one;
    `rule.ran.v1` is published when it approved anything. A dry run writes and publishes
    nothing and lists the approvals it would write instead."""
    unique = {u.update_id: u for u in updates}
    explicit = await store.approvals.explicit_for_each(ctx.conn, list(unique))
    written = approvals_by(rule, groups, explicit, ctx.now)
    approved = list(dict.fromkeys(e.update_id for e in written))
    if dry_run:
        return a.RuleRan(
            rule_id=rule.rule_id,
            updates_approved=approved,
            explicit_changed=len(written),
            approvals=rule_preview(groups, unique, explicit, written, a.PREVIEW_LIMIT),
            approvals_truncated=len(written) > a.PREVIEW_LIMIT,
        )
    await store.approvals.put_explicit(ctx.conn, written)
    by = f"rule:{rule.rule_id}"
    for update_id in approved:
        await recompute(ctx, groups, unique[update_id], by)
    ran = a.RuleRan(rule_id=rule.rule_id, updates_approved=approved, explicit_changed=len(written))
    if approved:
        await ctx.outbox.add(a.RULE_RAN, ran, subject=rule.rule_id)
    return ran


async def list_updates(ctx: HandlerContext, query: a.ListUpdates) -> a.UpdateList:
    """Updates with their approval states, filtered, sorted and paged by the database;
    declined ones and those not offered only when asked for."""
    rows, total = await store.updates.listed(
        ctx.conn,
        store.updates.ListQuery(
            states=query.states,
            classification=query.classification,
            product_family=query.product_family,
            search=search_text(query.search),
            sort=query.sort,
            descending=query.descending,
            offset=query.offset,
            limit=query.limit,
        ),
    )
    return a.UpdateList(updates=[view(row) for row in rows], total=total)


async def update_approvals(ctx: HandlerContext, query: a.UpdateApprovals) -> a.UpdateApprovalList:
    """Every group where one update is set or applies, with why, in tree order."""
    update = await find_update(ctx, query.update, "update")
    groups = await store.groups.load(ctx.conn)
    explicit = await store.approvals.explicit_for(ctx.conn, update.update_id)
    stored = await store.approvals.effective_for(ctx.conn, update.update_id)
    return a.UpdateApprovalList(
        update_id=update.update_id,
        kb=update.kb,
        title=update.title,
        groups=approvals_of_update(groups, update, explicit, stored),
    )


async def group_approvals(ctx: HandlerContext, query: a.GroupApprovals) -> a.GroupApprovalList:
    """Every update that applies to a group, explicit or inherited, with why."""
    group = await find_group(ctx, query.group, "group")
    groups = await store.groups.load(ctx.conn)
    return a.GroupApprovalList(
        group=groups.group(group),
        approvals=[
            group_state(groups, row.update, group, row.explicit, row.effective)
            for row in await store.approvals.of_group(ctx.conn, group)
        ],
    )


async def computer_approvals(
    ctx: HandlerContext, query: a.ComputerApprovals
) -> a.ComputerApprovalList:
    """What applies to one computer: its groups' approvals, conflicts resolved per update."""
    hostname = await store.computers.hostname(ctx.conn, query.computer)
    if hostname is None:
        raise NotFound(
            f"computer: {query.computer!r} is not a managed computer (it has not checked in)",
            field="computer",
        )
    groups = await store.groups.load(ctx.conn)
    member_of = (await store.computers.groups_of(ctx.conn, [query.computer]))[query.computer]
    resolved = resolve_each(await store.approvals.effective_of_groups(ctx.conn, member_of))
    updates = await store.updates.by_ids(ctx.conn, list(resolved))
    return a.ComputerApprovalList(
        computer_id=query.computer,
        hostname=hostname,
        groups=[groups.group(g) for g in member_of],
        approvals=[
            computer_approval(groups, updates[update_id], value)
            for update_id, value in sorted(resolved.items())
            if update_id in updates
        ],
    )
