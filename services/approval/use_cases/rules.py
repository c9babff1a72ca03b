"""Auto-approval rules: create, edit, delete, run, and matching newly published updates."""

from __future__ import annotations

import uuid

from libs.contracts import approval as a
from libs.service import Conflict, HandlerContext, NotFound
from services.approval import store
from services.approval.domain.rollouts import check_rings
from services.approval.domain.rules import candidate, criteria, define, matches
from services.approval.domain.updates import Update
from services.approval.use_cases.approvals import approve_for_rule
from services.approval.use_cases.lookups import find_group
from services.approval.use_cases.rollouts import roll_out_for_rule


async def _find(ctx: HandlerContext, reference: str) -> a.Rule:
    rule = await store.rules.find(ctx.conn, reference)
    if rule is None:
        raise NotFound(f"rule: no rule has id or name {reference!r}", field="rule")
    return rule


async def _build(
    ctx: HandlerContext, spec: a.RuleSpec, field: str, existing: a.Rule | None
) -> a.Rule:
    name = spec.name.strip()
    if await store.rules.name_taken(ctx.conn, name, None if existing is None else existing.rule_id):
        raise Conflict(f"{field}.name: a rule named {name!r} already exists", field=f"{field}.name")
    group_ids = [
        await find_group(ctx, ref, f"{field}.groups[{i}]") for i, ref in enumerate(spec.groups)
    ]
    if spec.rollout is not None:  # its groups are rings, in order
        tree = (await store.groups.load(ctx.conn)).tree
        check_rings(tree, group_ids, spec.groups, f"{field}.groups")
    return define(
        spec,
        rule_id=str(uuid.uuid4()) if existing is None else existing.rule_id,
        group_ids=group_ids,
        created_at=ctx.now if existing is None else existing.created_at,
        now=ctx.now,
    )


async def create_rule(ctx: HandlerContext, command: a.CreateRule) -> a.Rule:
    """A new rule; it touches only updates published from now on, until it is run."""
    await store.writers.lock(ctx.conn)
    rule = await _build(ctx, command.rule, "rule", None)
    await store.rules.save(ctx.conn, rule)
    await ctx.outbox.add(a.RULE_CREATED, a.RuleChanged(rule=rule), subject=rule.rule_id)
    return rule


async def edit_rule(ctx: HandlerContext, command: a.EditRule) -> a.Rule:
    """Replace a rule's definition; approvals it made stay."""
    await store.writers.lock(ctx.conn)
    existing = await _find(ctx, command.rule)
    rule = await _build(ctx, command.definition, "definition", existing)
    await store.rules.save(ctx.conn, rule)
    await ctx.outbox.add(a.RULE_EDITED, a.RuleChanged(rule=rule), subject=rule.rule_id)
    return rule


async def delete_rule(ctx: HandlerContext, command: a.RuleRef) -> a.RuleDeleted:
    """Delete a rule; approvals it made stay."""
    await store.writers.lock(ctx.conn)
    rule = await _find(ctx, command.rule)
    await store.rules.delete(ctx.conn, rule.rule_id)
    deleted = a.RuleDeleted(rule_id=rule.rule_id, name=rule.name)
    await ctx.outbox.add(a.RULE_DELETED, deleted, subject=rule.rule_id)
    return deleted


async def list_rules(ctx: HandlerContext, _: a.ListRules) -> a.RuleList:
    return a.RuleList(rules=await store.rules.every(ctx.conn))


async def run_rule(ctx: HandlerContext, command: a.RunRule) -> a.RuleRan:
    """Apply a rule to every update already known that it matches; with `dry_run`, only
    say what it would approve (no writer lock, nothing written or published)."""
    if not command.dry_run:
        await store.writers.lock(ctx.conn)
    rule = await _find(ctx, command.rule)
    chosen = [
        u for u in await store.updates.every(ctx.conn) if matches(criteria(rule), candidate(u))
    ]
    groups = await store.groups.load(ctx.conn)
    if rule.rollout is not None:
        return await roll_out_for_rule(ctx, groups, rule, chosen, dry_run=command.dry_run)
    return await approve_for_rule(ctx, groups, rule, chosen, dry_run=command.dry_run)


async def apply_rules_to_new(ctx: HandlerContext, update: Update) -> None:
    """A newly published update is approved at once by every rule it matches (a rule with a
    rollout starts one instead: its first group now, the others after their gates)."""
    rules = [
        r for r in await store.rules.every(ctx.conn) if matches(criteria(r), candidate(update))
    ]
    if not rules:
        return
    groups = await store.groups.load(ctx.conn)
    for rule in rules:
        if rule.rollout is not None:
            await roll_out_for_rule(ctx, groups, rule, [update])
        else:
            await approve_for_rule(ctx, groups, rule, [update])
