"""reporting's handler table: every message the service reacts to, and its periodic work.

Agent status reports are taken in batches (use_cases/ingest.py); approval, catalog and
scheduler events keep the read copies that say what is targeted where (use_cases/copies.py);
every handler is a use case in use_cases/.
"""

from __future__ import annotations

from pathlib import Path

from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import reporting as r
from libs.contracts.scheduler import AGENT_CHECKIN, COMPUTER_POLICY_CHANGED, COMPUTER_REGISTERED
from libs.contracts.system import HEARTBEAT, PING
from libs.read_copies.groups import group_copy
from libs.service import Answer, Every, On, ServiceDefinition
from libs.service.system import answer_ping
from libs.settings import SERVICE_NAMES
from services.reporting.use_cases import (
    copies,
    fleet,
    gauges,
    heartbeats,
    history,
    ingest,
    publishing,
    reports,
)

SERVICE = ServiceDefinition(
    name="reporting",
    migrations=Path(__file__).parent / "migrations",
    events=(
        *(
            On(HEARTBEAT[service], queue="service-heartbeats", handle=heartbeats.record_heartbeat)
            for service in SERVICE_NAMES
        ),
        On(
            ag.AGENT_STATUS,
            queue="agent-reports",
            handle=ingest.ingest_one,
            handle_many=ingest.ingest,
        ),
        On(ag.AGENT_RESTART, queue="agent-reports", handle=ingest.record_restart),
        On(
            AGENT_CHECKIN,
            queue="agent-checkins",
            handle=ingest.check_in_one,
            handle_many=ingest.check_in,
        ),
        On(COMPUTER_REGISTERED, queue="computers", handle=copies.learn_computer),
        On(COMPUTER_POLICY_CHANGED, queue="computers", handle=copies.learn_policy),
        On(c.UPDATE_PUBLISHED, queue="updates", handle=copies.learn_update),
        On(c.UPDATE_REVISED, queue="updates", handle=copies.learn_update),
        On(c.UPDATE_SUPERSEDED, queue="updates", handle=copies.learn_superseded),
        On(c.UPDATE_OFFERED, queue="updates", handle=copies.learn_offer),
        On(c.UPDATE_WITHDRAWN, queue="updates", handle=copies.learn_offer),
        On(c.UPDATE_DELETED, queue="updates", handle=copies.forget_update),
        On(a.UPDATE_APPROVAL_CHANGED, queue="approvals", handle=copies.learn_approvals),
        # Bound before approval.update-approval.changed.v1 existed: left queued ones still count.
        On(a.APPROVAL_CHANGED, queue="approvals", handle=copies.learn_approval, bound=False),
        On(a.UPDATE_DECLINED, queue="approvals", handle=copies.learn_declined),
    ),
    commands=(
        Answer(PING["reporting"], answer_ping),
        Answer(r.LIST_SERVICE_INSTANCES, heartbeats.list_service_instances),
        Answer(r.SUMMARY, reports.summary),
        Answer(r.UPDATE_REPORT, reports.update_report),
        Answer(r.GROUP_REPORT, reports.group_report),
        Answer(r.COMPUTER_REPORT, reports.computer_report),
        Answer(r.LIST_COMPUTERS, fleet.list_computers),
        Answer(r.COMPLIANCE_HISTORY, history.compliance_history),
        Answer(r.UPDATE_COMPUTERS, reports.update_computers),
        Answer(r.GROUPS_COUNTS, reports.groups_counts),
    ),
    read_copies=(group_copy(queue="approvals", deleted=copies.forget_group),),
    tasks=(
        Every("compliance", lambda s: s.compliance_publish_seconds, publishing.publish_changes),
        Every("gauges", lambda s: s.metrics_sample_seconds, gauges.sample_gauges),
        Every(
            "compliance-history",
            lambda s: s.compliance_sample_seconds,
            history.sample_compliance,
        ),
    ),
)
