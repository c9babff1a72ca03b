"""scheduler's handler table: every message the service reacts to, and its periodic work.

Agents: check-ins (answered with the plan), status and restart reports, install requests
(answered with an install instruction). Approval and
catalog events keep read copies and mark plans to recompute (one computer's row, or ranges of
computers for a change that reaches many); use_cases/planner.py recomputes them in bulk
and use_cases/timers.py fires what is due. Policies and agent releases are commands.
"""

from __future__ import annotations

from pathlib import Path

from libs.contracts import agents as ag
from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import policies as p
from libs.contracts import windows as w
from libs.contracts.scheduler import AGENT_CHECKIN
from libs.contracts.system import PING
from libs.read_copies.groups import group_copy
from libs.service import Answer, Every, On, ServiceDefinition
from libs.service.system import answer_ping
from services.scheduler.use_cases import (
    checkins,
    planner,
    policies,
    read_copies,
    releases,
    reports,
    requests,
    timers,
    windows,
)

SERVICE = ServiceDefinition(
    name="scheduler",
    migrations=Path(__file__).parent / "migrations",
    events=(
        On(
            AGENT_CHECKIN,
            queue="agent-checkins",
            handle=checkins.record_checkin,
            sends_rejected=True,
        ),
        On(
            ag.AGENT_STATUS,
            queue="agent-reports",
            handle=reports.record_status,
            sends_rejected=True,
        ),
        On(
            ag.AGENT_RESTART,
            queue="agent-reports",
            handle=reports.record_restart,
            sends_rejected=True,
        ),
        On(
            ag.INSTALL_REQUEST,
            queue="agent-reports",
            handle=requests.request_install,
            sends_rejected=True,
        ),
        On(a.UPDATE_APPROVAL_CHANGED, queue="approvals", handle=read_copies.learn_approvals),
        # Bound before approval.update-approval.changed.v1 existed: left queued ones still count.
        On(a.APPROVAL_CHANGED, queue="approvals", handle=read_copies.learn_approval, bound=False),
        On(c.UPDATE_PUBLISHED, queue="updates", handle=read_copies.learn_update),
        On(c.UPDATE_REVISED, queue="updates", handle=read_copies.learn_update),
        On(c.UPDATE_OFFERED, queue="updates", handle=read_copies.learn_offer),
        On(c.UPDATE_WITHDRAWN, queue="updates", handle=read_copies.learn_offer),
        On(c.UPDATE_DELETED, queue="updates", handle=read_copies.forget_update),
    ),
    commands=(
        Answer(PING["scheduler"], answer_ping),
        Answer(ag.GET_PLAN, planner.get_plan),
        Answer(p.CREATE_POLICY, policies.create_policy),
        Answer(p.EDIT_POLICY, policies.edit_policy),
        Answer(p.DELETE_POLICY, policies.delete_policy),
        Answer(p.ASSIGN_POLICY, policies.assign_policy),
        Answer(p.UNASSIGN_POLICY, policies.unassign_policy),
        Answer(p.LIST_POLICIES, policies.list_policies),
        Answer(p.PUBLISH_AGENT_RELEASE, releases.publish_agent_release),
        Answer(p.LIST_AGENT_RELEASES, releases.list_agent_releases),
        Answer(w.SET_WINDOWS, windows.set_windows),
        Answer(w.CLEAR_WINDOWS, windows.clear_windows),
        Answer(w.LIST_WINDOWS, windows.list_windows),
    ),
    read_copies=(
        group_copy(
            queue="approvals",
            moved=read_copies.replan_all,
            deleted=read_copies.forget_group,
            membership_changed=read_copies.replan_computer,
        ),
    ),
    tasks=(
        Every("planner", lambda s: s.planner_poll_seconds, planner.plan_dirty_computers),
        Every("timers", lambda s: s.timer_poll_seconds, timers.fire_due_timers),
        Every("timer-gauges", lambda s: s.metrics_sample_seconds, timers.sample_gauges),
    ),
)
