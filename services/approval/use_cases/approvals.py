"""Approving and declining: explicit approvals in, effective approvals and events out."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from libs.contracts import approval as a
from libs.service import HandlerContext, InvalidInput, NotFound
from services.approval import store
from services.approval.domain.approvals import (
    ExplicitApproval,
    changes,
    computer_approval,
    explicit_choice,
    group_state,
)
from services.approval.domain.groups import Groups
from services.approval.domain.resolution import resolve_each
from services.approval.domain.rules import approvals_by
from services.approval.domain.tree import Explicit, effective
from services.approval.domain.updates import Update, check_approvable, search_text, shown, view
from services.approval.use_cases.lookups import find_group, find_update


async def recompute(
    ctx: HandlerContext,
    groups: Groups,
    update: Update,
    cause: str,
    only: Collection[str] | None = None,
) -> int:
    """Bring the stored effective approvals of one update in line with its explicit ones.

    Publishes one `approval.approval.changed.v1` per (group, update) that changed; `only`
    limits the comparison to groups that may have changed (a moved subtree). Returns how
    many changed.
    """
    explicit = await store.approvals.explicit_for(ctx.conn, update.update_id)
    wanted = effective(groups.tree, explicit)
    stored = await store.approvals.effective_for(ctx.conn, update.update_id)
    diff = changes(groups.tree, wanted, stored, only)
    await store.approvals.save_effective(ctx.conn, update.update_id, diff)
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
            for g in diff.changed
            if g in groups.names
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


def same_decision(held: Explicit | None, wanted: Explicit) -> bool:
    """The group already has this very approval (action, resolved deadline, who set it): a
    repeated call, such as a client retrying after a crash lost its answer, changes nothing,
    keeps when it was set and publishes no event. A relative deadline (`one_week`, ...,
    `as_soon_as_possible`) resolves anew at each call, so its repeat is a new decision."""
    return held is not None and (held.action, held.deadline, held.approved_by) == (
        wanted.action,
        wanted.deadline,
        wanted.approved_by,
    )


async def approve(ctx: HandlerContext, command: a.Approve) -> a.ApproveResult:
    """Set an action and deadline per group on each update; declined ones come back."""
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
    declined = [u.update_id for u in unique if u.declined_at is not None]
    if declined:
        await store.updates.set_declined(ctx.conn, declined, None)
    written = 0
    inherit = [g for g, value in choices.items() if value is None]
    if inherit:
        written += await store.approvals.drop_explicit(ctx.conn, update_ids, inherit)
    held = await store.approvals.explicit_for_each(ctx.conn, update_ids)
    explicit = [
        ExplicitApproval(update_id, group, value)
        for update_id in update_ids
        for group, value in choices.items()
        if value is not None and not same_decision(held[update_id].get(group), value)
    ]
    await store.approvals.put_explicit(ctx.conn, explicit)
    written += len(explicit)
    changed = 0
    for update in unique:
        changed += await recompute(ctx, groups, update, "approve")
    return a.ApproveResult(explicit_changed=written, effective_changed=changed)


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
    ctx: HandlerContext, groups: Groups, rule: a.Rule, updates: Sequence[Update]
) -> a.RuleRan:
    """Write a rule's approvals of these updates at once, then recompute each approved one;
    `rule.ran.v1` is published when it approved anything."""
    unique = {u.update_id: u for u in updates}
    explicit = await store.approvals.explicit_for_each(ctx.conn, list(unique))
    written = approvals_by(rule, groups, explicit, ctx.now)
    await store.approvals.put_explicit(ctx.conn, written)
    approved = list(dict.fromkeys(e.update_id for e in written))
    by = f"rule:{rule.rule_id}"
    for update_id in approved:
        await recompute(ctx, groups, unique[update_id], by)
    ran = a.RuleRan(rule_id=rule.rule_id, updates_approved=approved, explicit_changed=len(written))
    if approved:
        await ctx.outbox.add(a.RULE_RAN, ran, subject=rule.rule_id)
    return ran


async def list_updates(ctx: HandlerContext, query: a.ListUpdates) -> a.UpdateList:
    """Updates with their approval states; declined ones only when asked for."""
    rows = await store.updates.listed(
        ctx.conn, query.classification, query.product_family, search_text(query.search)
    )
    found = [row for row in rows if shown(row, query.states)]
    return a.UpdateList(
        updates=[view(row) for row in found[query.offset : query.offset + query.limit]],
        total=len(found),
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
