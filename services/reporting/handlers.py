"""reporting's handler table: every message the service reacts to, and its periodic work.

Agent status reports are taken in batches (compliance.py); approval, catalog and
scheduler events keep the read copies that say what is targeted where.
"""

from __future__ import annotations

from pathlib import Path

from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import reporting as r
from libs.contracts.reporting import (
    LIST_SERVICE_INSTANCES,
    ListServiceInstances,
    ServiceInstances,
)
from libs.contracts.scheduler import COMPUTER_REGISTERED, ComputerRegistered
from libs.contracts.system import HEARTBEAT, PING, ServiceHeartbeat
from libs.read_copies.groups import group_copy
from libs.service import Answer, Every, HandlerContext, On, ServiceDefinition
from libs.service.system import answer_ping
from libs.settings import SERVICE_NAMES
from services.reporting import compliance, store
from services.reporting import compliance_store as reports


async def record_heartbeat(ctx: HandlerContext, heartbeat: ServiceHeartbeat) -> None:
    """Keep the instance's latest heartbeat and count it."""
    await store.record_heartbeat(ctx.conn, heartbeat, ctx.now)


async def list_service_instances(
    ctx: HandlerContext, query: ListServiceInstances
) -> ServiceInstances:
    """Instances heard from, most recently seen first."""
    instances = await store.service_instances(
        ctx.conn, query.service, include_stale=query.include_stale, now=ctx.now
    )
    return ServiceInstances(instances=instances)


async def learn_computer(ctx: HandlerContext, event: ComputerRegistered) -> None:
    await reports.put_computer(ctx.conn, event.computer_id, event.hostname, event.registered_at)


async def learn_update(ctx: HandlerContext, event: c.UpdatePublished | c.UpdateRevised) -> None:
    await reports.put_update(ctx.conn, event.update)


async def learn_superseded(ctx: HandlerContext, event: c.UpdateSuperseded) -> None:
    """Superseded updates are still counted; the flag lets views filter them."""
    await reports.mark_superseded(ctx.conn, event.update_id)


async def forget_update(ctx: HandlerContext, event: c.UpdateDeleted) -> None:
    await reports.forget_update(ctx.conn, event.update_id)


async def learn_approval(ctx: HandlerContext, event: a.ApprovalChanged) -> None:
    state = event.state
    effective = state.effective
    await reports.set_group_approval(
        ctx.conn,
        state.group_id,
        state.update_id,
        None if effective is None else effective.action,
        None if effective is None else effective.deadline.at,
    )
    action = None if effective is None else effective.action
    if action is not None:
        await reports.set_declined(ctx.conn, state.update_id, None)  # approved again


async def learn_declined(ctx: HandlerContext, event: a.UpdateDeclined) -> None:
    """Declining an update deletes its report data."""
    # Declined first: that row lock waits for ingest batches reading the update, so none
    # writes states after the deletion below (see compliance_store.known).
    await reports.set_declined(ctx.conn, event.update_id, event.declined_at)
    await reports.delete_reports(ctx.conn, event.update_id)


async def forget_group(ctx: HandlerContext, group_id: str) -> None:
    await reports.delete_group(ctx.conn, group_id)


SERVICE = ServiceDefinition(
    name="reporting",
    migrations=Path(__file__).parent / "migrations",
    events=(
        *(
            On(HEARTBEAT[service], queue="service-heartbeats", handle=record_heartbeat)
            for service in SERVICE_NAMES
        ),
        On(
            ag.AGENT_STATUS,
            queue="agent-reports",
            handle=compliance.ingest_one,
            handle_many=compliance.ingest,
        ),
        On(ag.AGENT_RESTART, queue="agent-reports", handle=compliance.record_restart),
        On(COMPUTER_REGISTERED, queue="computers", handle=learn_computer),
        On(c.UPDATE_PUBLISHED, queue="updates", handle=learn_update),
        On(c.UPDATE_REVISED, queue="updates", handle=learn_update),
        On(c.UPDATE_SUPERSEDED, queue="updates", handle=learn_superseded),
        On(c.UPDATE_DELETED, queue="updates", handle=forget_update),
        On(a.APPROVAL_CHANGED, queue="approvals", handle=learn_approval),
        On(a.UPDATE_DECLINED, queue="approvals", handle=learn_declined),
    ),
    commands=(
        Answer(PING["reporting"], answer_ping),
        Answer(LIST_SERVICE_INSTANCES, list_service_instances),
        Answer(r.SUMMARY, compliance.summary),
        Answer(r.UPDATE_REPORT, compliance.update_report),
        Answer(r.GROUP_REPORT, compliance.group_report),
        Answer(r.COMPUTER_REPORT, compliance.computer_report),
    ),
    read_copies=(group_copy(queue="approvals", deleted=forget_group),),
    tasks=(
        Every("compliance", lambda s: s.compliance_publish_seconds, compliance.publish_changes),
        Every("gauges", lambda s: s.metrics_sample_seconds, compliance.sample_gauges),
    ),
)
