"""Policy commands: create, edit, delete, assign to groups, list."""

from __future__ import annotations

import uuid

from pydantic import ValidationError

from libs.bus.codec import describe_validation_error
from libs.contracts import policies as p
from libs.read_copies import groups as group_copy
from libs.service import Conflict, HandlerContext, InvalidInput, NotFound
from services.scheduler import store
from services.scheduler.domain.agent_updates import version_key


async def _find(ctx: HandlerContext, reference: str) -> p.Policy:
    found = await store.find_policy(ctx.conn, reference)
    if found is None:
        raise NotFound(f"policy: no policy has id or name {reference!r}", field="policy")
    return found


async def _group(ctx: HandlerContext, reference: str) -> str:
    found = await group_copy.find_group(ctx.conn, reference)
    if found is None:
        raise NotFound(
            f"group: {reference!r} is not a group the scheduler knows (id or name)", field="group"
        )
    return found[0]


async def _changed(ctx: HandlerContext, policy_id: str) -> p.Policy:
    policy = await _find(ctx, policy_id)
    await ctx.outbox.add(p.POLICY_CHANGED, p.PolicyChanged(policy=policy), subject=policy_id)
    await store.mark_all_dirty(ctx.conn, ctx.now)
    return policy


async def create_policy(ctx: HandlerContext, command: p.CreatePolicy) -> p.Policy:
    """A new policy (assigned to no group yet); unset settings are the recommended ones."""
    name = command.name.strip()
    if await store.policy_name_taken(ctx.conn, name):
        raise Conflict(f"name: a policy named {name!r} already exists", field="name")
    policy_id = str(uuid.uuid4())
    await store.save_policy(ctx.conn, policy_id, name, command.settings, ctx.now)
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
    await store.save_policy(ctx.conn, policy.policy_id, policy.name, settings, ctx.now)
    return await _changed(ctx, policy.policy_id)


async def delete_policy(ctx: HandlerContext, command: p.PolicyRef) -> p.PolicyDeleted:
    """Delete a policy; its groups' computers fall back to what else applies."""
    policy = await _find(ctx, command.policy)
    await store.delete_policy(ctx.conn, policy.policy_id)
    deleted = p.PolicyDeleted(policy_id=policy.policy_id, name=policy.name)
    await ctx.outbox.add(p.POLICY_DELETED, deleted, subject=policy.policy_id)
    await store.mark_all_dirty(ctx.conn, ctx.now)
    return deleted


async def assign_policy(ctx: HandlerContext, command: p.AssignPolicy) -> p.Policy:
    """Assign to a group (replacing the group's previous policy)."""
    policy = await _find(ctx, command.policy)
    await store.assign(ctx.conn, await _group(ctx, command.group), policy.policy_id, ctx.now)
    return await _changed(ctx, policy.policy_id)


async def unassign_policy(ctx: HandlerContext, command: p.UnassignPolicy) -> p.PolicyList:
    """Remove a group's policy: its computers get what else applies, or "no policy"."""
    group = await _group(ctx, command.group)
    before = {g: pol for pol in await store.policies(ctx.conn) for g in pol.groups}
    if not await store.unassign(ctx.conn, group):
        raise NotFound(f"group: {command.group!r} has no policy assigned", field="group")
    await _changed(ctx, before[group].policy_id)
    return await list_policies(ctx, p.ListPolicies())


async def list_policies(ctx: HandlerContext, _: p.ListPolicies) -> p.PolicyList:
    return p.PolicyList(policies=await store.policies(ctx.conn), recommended=p.RECOMMENDED)


async def publish_agent_release(
    ctx: HandlerContext, command: p.PublishAgentRelease
) -> p.AgentRelease:
    """A new agent version; if mandatory, every computer's plan is recomputed so outdated ones
    schedule it (at their policy's agent_update_schedule)."""
    key = version_key(command.version)
    if key is None:  # the contract's pattern already refuses it; kept for direct callers
        raise InvalidInput(
            f"version: {command.version!r} is not major.minor.patch", field="version"
        )
    existing = await store.releases(ctx.conn)
    newest = max((k for r in existing if (k := version_key(r.version)) is not None), default=None)
    if newest is not None and key <= newest:
        raise Conflict(
            f"version: {command.version} is not newer than the latest release "
            f"{'.'.join(map(str, newest))}; versions only go up",
            field="version",
        )
    release = p.AgentRelease(
        version=command.version,
        mandatory=command.mandatory,
        notes=command.notes,
        published_at=ctx.now,
    )
    await store.save_release(ctx.conn, release, key)
    await ctx.outbox.add(
        p.AGENT_RELEASE_PUBLISHED, p.AgentReleasePublished(release=release), subject=release.version
    )
    if release.mandatory:
        await store.mark_all_dirty(ctx.conn, ctx.now)
    return release


async def list_agent_releases(
    ctx: HandlerContext, _command: p.ListAgentReleases
) -> p.AgentReleaseList:
    releases = await store.releases(ctx.conn)
    latest = await store.latest_mandatory(ctx.conn)
    return p.AgentReleaseList(
        releases=releases, latest_mandatory=None if latest is None else latest[0]
    )
