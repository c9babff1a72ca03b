"""Approving and declining: explicit approvals in, effective approvals and events out."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from libs.contracts import approval as a
from libs.service import Conflict, HandlerContext, InvalidInput, NotFound
from services.approval import store
from services.approval.domain import deadlines, resolution
from services.approval.domain.tree import Effective, Explicit, effective


def _approval(groups: store.Groups, value: Effective) -> a.Approval:
    at = value.approved_at
    if not isinstance(at, datetime):
        raise TypeError(f"approved_at is {at!r}")
    return a.Approval(
        action=value.action,
        deadline=a.Deadline(kind=value.deadline.kind, at=value.deadline.at),
        source_group_id=value.source_group,
        source_group_name=groups.names[value.source_group],
        approved_at=at,
        approved_by=value.approved_by,
    )


def group_state(
    groups: store.Groups,
    update: store.Update,
    group_id: str,
    explicit: Explicit | None,
    effective_now: Effective | None,
) -> a.GroupApprovalState:
    """The (group, update) state as events and queries show it."""
    if effective_now is None:
        why = "not approved"
    elif effective_now.source_group == group_id:
        why = "explicit here"
    else:
        why = f"inherited from {groups.names[effective_now.source_group]}"
    return a.GroupApprovalState(
        group_id=group_id,
        group_name=groups.names[group_id],
        update_id=update.update_id,
        kb=update.kb,
        title=update.title,
        explicit=None
        if explicit is None
        else _approval(groups, Effective.set_on(group_id, explicit)),
        effective=None if effective_now is None else _approval(groups, effective_now),
        why=why,
    )


async def recompute(
    ctx: HandlerContext,
    groups: store.Groups,
    update: store.Update,
    cause: str,
    only: Collection[str] | None = None,
) -> int:
    """Bring the stored effective approvals of one update in line with its explicit ones.

    Publishes one `approval.changed.v1` per (group, update) that changed; `only` limits the
    comparison to groups that may have changed (a moved subtree). Returns how many changed.
    """
    explicit = await store.explicit_for(ctx.conn, update.update_id)
    wanted = effective(groups.tree, explicit)
    stored = await store.effective_for(ctx.conn, update.update_id)
    scope = set(groups.tree.parents) | set(stored) if only is None else set(only)
    upserts = {g: wanted[g] for g in scope if g in wanted and stored.get(g) != wanted[g]}
    removed = [g for g in scope if g in stored and g not in wanted]
    await store.save_effective(ctx.conn, update.update_id, upserts, removed)
    changed = sorted([*upserts, *removed], key=groups.tree.path)
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
            if g in groups.names
        ],
    )
    return len(changed)


async def find_update(ctx: HandlerContext, reference: str, field: str) -> store.Update:
    found = await store.find_update(ctx.conn, reference)
    if found is None:
        raise NotFound(
            f"{field}: update {reference!r} is unknown to approval (give an update id or a KB "
            "number the catalog has published)",
            field=field,
        )
    return found


async def find_group(ctx: HandlerContext, reference: str, field: str) -> str:
    found = await store.find_group(ctx.conn, reference)
    if found is None:
        raise NotFound(
            f"{field}: group {reference!r} does not exist (give a group id or name)", field=field
        )
    return found


def check_approvable(update: store.Update, field: str) -> None:
    if update.expired_at is not None:
        raise Conflict(
            f"{field}: update {update.kb or update.update_id} expired at "
            f"{update.expired_at.isoformat()}; expired updates cannot be approved",
            field=field,
        )


def explicit_choice(choice: a.GroupChoice, now: datetime, field: str, by: str) -> Explicit | None:
    """The explicit approval a choice sets (None: `inherit`), with its deadline resolved."""
    if choice.action == "inherit":
        if choice.deadline.kind != "none":
            raise InvalidInput(f"{field}.deadline: `inherit` takes no deadline", field=field)
        return None
    if choice.action not in a.ACTIONS_WITH_DEADLINE and choice.deadline.kind != "none":
        raise InvalidInput(
            f"{field}.deadline: {choice.deadline.kind!r} is not allowed with action "
            f"{choice.action!r}; deadlines apply to {' and '.join(a.ACTIONS_WITH_DEADLINE)}",
            field=f"{field}.deadline",
        )
    deadline = deadlines.resolve(choice.deadline.kind, choice.deadline.at, now)
    return Explicit(choice.action, deadline, now, by)


async def approve(ctx: HandlerContext, command: a.Approve) -> a.ApproveResult:
    """Set an action and deadline per group on each update; declined ones come back."""
    await store.lock(ctx.conn)
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
    groups = await store.groups(ctx.conn)
    written = changed = 0
    for update in {u.update_id: u for u in updates}.values():
        if update.declined_at is not None:
            await store.set_declined(ctx.conn, [update.update_id], None)
        for group, value in choices.items():
            if value is None:
                written += await store.drop_explicit(ctx.conn, update.update_id, [group])
            else:
                await store.put_explicit(ctx.conn, update.update_id, group, value)
                written += 1
        changed += await recompute(ctx, groups, update, "approve")
    return a.ApproveResult(explicit_changed=written, effective_changed=changed)


async def decline(ctx: HandlerContext, command: a.Decline) -> a.DeclineResult:
    """Remove every approval of the updates and hide them from default views."""
    await store.lock(ctx.conn)
    updates = [
        await find_update(ctx, ref, f"updates[{i}]") for i, ref in enumerate(command.updates)
    ]
    groups = await store.groups(ctx.conn)
    declined: list[str] = []
    changed = 0
    for update in {u.update_id: u for u in updates}.values():
        await store.drop_explicit(ctx.conn, update.update_id)
        changed += await recompute(ctx, groups, update, "decline")
        if update.declined_at is None:
            declined.append(update.update_id)
            await ctx.outbox.add(
                a.UPDATE_DECLINED,
                a.UpdateDeclined(update_id=update.update_id, kb=update.kb, declined_at=ctx.now),
                subject=update.update_id,
            )
    await store.set_declined(ctx.conn, declined, ctx.now)
    return a.DeclineResult(declined=declined, effective_changed=changed)


async def recompute_all(
    ctx: HandlerContext, groups: store.Groups, cause: str, only: Collection[str]
) -> int:
    """After a tree change: every approved update, compared on the groups that moved."""
    changed = 0
    for update_id in await store.updates_with_explicit(ctx.conn):
        update = await store.update_by_id(ctx.conn, update_id)
        if update is not None:
            changed += await recompute(ctx, groups, update, cause, only)
    return changed


async def list_updates(ctx: HandlerContext, query: a.ListUpdates) -> a.UpdateList:
    """Updates with their approval states; declined ones only when asked for."""
    found, total = await store.list_updates(ctx.conn, query)
    return a.UpdateList(
        updates=[
            a.UpdateView(
                id=u.update_id,
                update_id=u.update_id,
                kb=u.kb,
                revision=u.revision,
                title=u.title,
                origin=u.origin,
                classification=u.classification,
                severity=u.severity,
                product_families=u.product_families,
                release_date=u.release_date,
                products=u.products,
                states=store.update_states(u, approved),
                approved_groups=approved,
                supersedes=u.supersedes,
                superseded_by=u.superseded_by,
                expired=u.expired_at is not None,
                declined=u.declined_at is not None,
            )
            for u, approved in found
        ],
        total=total,
    )


async def group_approvals(ctx: HandlerContext, query: a.GroupApprovals) -> a.GroupApprovalList:
    """Every update that applies to a group, explicit or inherited, with why."""
    group = await find_group(ctx, query.group, "group")
    groups = await store.groups(ctx.conn)
    return a.GroupApprovalList(
        group=groups.group(group),
        approvals=[
            group_state(groups, update, group, explicit, eff)
            for update, explicit, eff in await store.group_approvals(ctx.conn, group)
        ],
    )


def resolved_for_computer(
    per_update: dict[str, list[tuple[str, Effective]]],
) -> dict[str, resolution.Resolved]:
    found: dict[str, resolution.Resolved] = {}
    for update_id, pairs in per_update.items():
        resolved = resolution.resolve(pairs)
        if resolved is not None:
            found[update_id] = resolved
    return found


async def computer_approvals(
    ctx: HandlerContext, query: a.ComputerApprovals
) -> a.ComputerApprovalList:
    """What applies to one computer: its groups' approvals, conflicts resolved per update."""
    hostname = await store.hostname(ctx.conn, query.computer)
    if hostname is None:
        raise NotFound(
            f"computer: {query.computer!r} is not a managed computer (it has not checked in)",
            field="computer",
        )
    groups = await store.groups(ctx.conn)
    member_of = (await store.computer_groups(ctx.conn, [query.computer]))[query.computer]
    per_update = await store.effective_of_groups(ctx.conn, member_of)
    approvals: list[a.ComputerApproval] = []
    for update_id, resolved in sorted(resolved_for_computer(per_update).items()):
        update = await store.update_by_id(ctx.conn, update_id)
        if update is None:
            continue
        conflict = resolved.conflict
        if conflict is not None:
            for group_id, name in groups.names.items():
                conflict = conflict.replace(group_id, name)
        approvals.append(
            a.ComputerApproval(
                update_id=update_id,
                kb=update.kb,
                action=resolved.action,
                deadline=a.Deadline(kind=resolved.deadline.kind, at=resolved.deadline.at),
                from_groups=[groups.names[g] for g in resolved.groups],
                conflict=conflict,
            )
        )
    return a.ComputerApprovalList(
        computer_id=query.computer,
        hostname=hostname,
        groups=[groups.group(g) for g in member_of],
        approvals=approvals,
    )


async def approve_for_rule(
    ctx: HandlerContext,
    groups: store.Groups,
    rule: a.Rule,
    updates: Sequence[store.Update],
) -> a.RuleRan:
    """A rule's approvals: required install on its groups, leaving operators' choices alone.

    Groups that already hold an explicit approval of the update keep it.
    """
    by = f"rule:{rule.rule_id}"
    deadline = deadlines.resolve(rule.deadline, None, ctx.now)
    approved: list[str] = []
    written = 0
    for update in updates:
        explicit = await store.explicit_for(ctx.conn, update.update_id)
        targets = [g for g in rule.group_ids if g in groups.names and g not in explicit]
        if not targets:
            continue
        for group in targets:
            await store.put_explicit(
                ctx.conn,
                update.update_id,
                group,
                Explicit("required_install", deadline, ctx.now, by),
            )
        written += len(targets)
        approved.append(update.update_id)
        await recompute(ctx, groups, update, by)
    ran = a.RuleRan(rule_id=rule.rule_id, updates_approved=approved, explicit_changed=written)
    if approved:
        await ctx.outbox.add(a.RULE_RAN, ran, subject=rule.rule_id)
    return ran
