"""Agent release commands: publish a new agent version, list them."""

from __future__ import annotations

from libs.contracts import policies as p
from libs.service import HandlerContext
from services.scheduler import store
from services.scheduler.domain.agent_updates import new_release_key


async def publish_agent_release(
    ctx: HandlerContext, command: p.PublishAgentRelease
) -> p.AgentRelease:
    """A new agent version; if mandatory, every computer's plan is recomputed so outdated ones
    schedule it (at their policy's agent_update_schedule)."""
    existing = await store.releases.read_all(ctx.conn)
    key = new_release_key(command.version, [r.version for r in existing])
    release = p.AgentRelease(
        version=command.version,
        mandatory=command.mandatory,
        notes=command.notes,
        published_at=ctx.now,
    )
    await store.releases.save(ctx.conn, release, key)
    await ctx.outbox.add(
        p.AGENT_RELEASE_PUBLISHED, p.AgentReleasePublished(release=release), subject=release.version
    )
    if release.mandatory:
        await store.plans.mark_all_dirty(ctx.conn, ctx.now)
    return release


async def list_agent_releases(
    ctx: HandlerContext, _command: p.ListAgentReleases
) -> p.AgentReleaseList:
    releases = await store.releases.read_all(ctx.conn)
    latest = await store.releases.latest_mandatory(ctx.conn)
    return p.AgentReleaseList(
        releases=releases, latest_mandatory=None if latest is None else latest[0]
    )
