"""Policy commands: create, edit, delete, assign to groups, list."""

from __future__ import annotations

import uuid

from pydantic import ValidationError

from libs.bus.codec import describe_validation_error
from libs.contracts import policies as p
from libs.read_copies.groups import find_group
from libs.service import Conflict, HandlerContext, InvalidInput, NotFound
from services.scheduler import store


async def _find(ctx: HandlerContext, reference: str) -> p.Policy:
    found = await store.policies.find(ctx.conn, reference)
    if found is None:
        raise NotFound(f"policy: no policy has id or name {reference!r}", field="policy")
    return found


async def _group(ctx: HandlerContext, reference: str) -> str:
    found = await find_group(ctx.conn, reference)
    if found is None:
        raise NotFound(
            f"group: {reference!r} is not a group the scheduler knows (id or name)", field="group"
        )
    return found[0]


async def _changed(ctx: HandlerContext, policy_id: str) -> p.Policy:
    policy = await _find(ctx, policy_id)
    await ctx.outbox.add(p.POLICY_CHANGED, p.PolicyChanged(policy=policy), subject=policy_id)
    await store.plans.mark_all_dirty(ctx.conn, ctx.now)
    return policy


async def create_policy(ctx: HandlerContext, command: p.CreatePolicy) -> p.Policy:
    """A new policy (assigned to no group yet); unset settings are the recommended ones."""
    name = command.name.strip()
    if await store.policies.name_taken(ctx.conn, name):
        raise Conflict(f"name: a policy named {name!r} already exists", field="name")
    policy_id = str(uuid.uuid4())
    await store.policies.save(ctx.conn, policy_id, name, command.settings, ctx.now)
    return await _changed(ctx, policy_id)


async def edit_policy(ctx: HandlerContext, command: p.EditPolicy) -> p.Policy:
    """Change some settings; each is range-checked, the others keep their values."""
    policy = await _find(ctx, command.policy)
    unknown = sorted(set(command.settings) - set(p.PolicySettings.model_fields))
    if unknown:
        raise InvalidInput(
            f"settings: {', '.join(unknown)} is not a policy setting; settings are "
            f"{', '.join(p.PolicySettings.model_fields)}",
            field="settings",
        )
    try:
        settings = p.PolicySettings.model_validate(
            {**policy.settings.model_dump(), **command.settings}
        )
    except ValidationError as error:
        raise InvalidInput(describe_validation_error(error, "settings"), field="settings") from None
    await store.policies.save(ctx.conn, policy.policy_id, policy.name, settings, ctx.now)
    return await _changed(ctx, policy.policy_id)


async def delete_policy(ctx: HandlerContext, command: p.PolicyRef) -> p.PolicyDeleted:
    """Delete a policy; its groups' computers fall back to what else applies."""
    policy = await _find(ctx, command.policy)
    await store.policies.delete(ctx.conn, policy.policy_id)
    deleted = p.PolicyDeleted(policy_id=policy.policy_id, name=policy.name)
    await ctx.outbox.add(p.POLICY_DELETED, deleted, subject=policy.policy_id)
    await store.plans.mark_all_dirty(ctx.conn, ctx.now)
    return deleted


async def assign_policy(ctx: HandlerContext, command: p.AssignPolicy) -> p.Policy:
    """Assign to a group (replacing the group's previous policy)."""
    policy = await _find(ctx, command.policy)
    await store.policies.assign(
        ctx.conn, await _group(ctx, command.group), policy.policy_id, ctx.now
    )
    return await _changed(ctx, policy.policy_id)


async def unassign_policy(ctx: HandlerContext, command: p.UnassignPolicy) -> p.PolicyList:
    """Remove a group's policy: its computers get what else applies, or "no policy"."""
    group = await _group(ctx, command.group)
    before = {g: pol for pol in await store.policies.read_all(ctx.conn) for g in pol.groups}
    if not await store.policies.unassign(ctx.conn, group):
        raise NotFound(f"group: {command.group!r} has no policy assigned", field="group")
    await _changed(ctx, before[group].policy_id)
    return await list_policies(ctx, p.ListPolicies())


async def list_policies(ctx: HandlerContext, _: p.ListPolicies) -> p.PolicyList:
    return p.PolicyList(policies=await store.policies.read_all(ctx.conn), recommended=p.RECOMMENDED)
