"""approval's handler table: every message the service reacts to, and its periodic work.

Catalog events keep the read copy of updates (approval never asks the catalog); every handler
is a use case in use_cases/ (groups, approvals, controls, rules, updates). Rollouts
(use_cases/rollouts.py) measure their gates in a periodic task, asking reporting for the
counts (`calls`).
"""

from __future__ import annotations

from pathlib import Path

from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import reporting as r
from libs.contracts import rollouts as ro
from libs.contracts.scheduler import COMPUTER_REGISTERED
from libs.contracts.system import PING
from libs.service import Answer, Every, On, ServiceDefinition
from libs.service.system import answer_ping
from services.approval.use_cases import (
    approvals,
    controls,
    groups,
    rollouts,
    rules,
    updates,
)

SERVICE = ServiceDefinition(
    name="approval",
    migrations=Path(__file__).parent / "migrations",
    events=(
        On(COMPUTER_REGISTERED, queue="computers", handle=groups.learn_computer),
        On(c.UPDATE_PUBLISHED, queue="updates", handle=updates.learn_published),
        On(c.UPDATE_REVISED, queue="updates", handle=updates.learn_revised),
        On(c.UPDATE_SUPERSEDED, queue="updates", handle=updates.learn_superseded),
        On(c.UPDATE_EXPIRED, queue="updates", handle=updates.learn_expired),
        On(c.UPDATE_DELETED, queue="updates", handle=updates.learn_deleted),
        On(c.UPDATE_OFFERED, queue="updates", handle=updates.learn_offer),
        On(c.UPDATE_WITHDRAWN, queue="updates", handle=updates.learn_offer),
    ),
    commands=(
        Answer(PING["approval"], answer_ping),
        Answer(a.CREATE_GROUP, groups.create_group),
        Answer(a.RENAME_GROUP, groups.rename_group),
        Answer(a.MOVE_GROUP, groups.move_group),
        Answer(a.DELETE_GROUP, groups.delete_group),
        Answer(a.LIST_GROUPS, groups.list_groups),
        Answer(a.CHANGE_MEMBERSHIP, groups.change_membership),
        Answer(a.APPROVE, approvals.approve),
        Answer(a.DECLINE, approvals.decline),
        Answer(a.LIST_UPDATES, approvals.list_updates),
        Answer(a.UPDATE_APPROVALS, approvals.update_approvals),
        Answer(a.GROUP_APPROVALS, approvals.group_approvals),
        Answer(a.COMPUTER_APPROVALS, approvals.computer_approvals),
        Answer(a.PAUSE_UPDATE, controls.pause),
        Answer(a.RESUME_UPDATE, controls.resume),
        Answer(a.ROLLBACK_UPDATE, controls.rollback),
        Answer(a.CREATE_RULE, rules.create_rule),
        Answer(a.EDIT_RULE, rules.edit_rule),
        Answer(a.DELETE_RULE, rules.delete_rule),
        Answer(a.RUN_RULE, rules.run_rule),
        Answer(a.LIST_RULES, rules.list_rules),
        Answer(ro.START_ROLLOUT, rollouts.start_rollout),
        Answer(ro.SHOW_ROLLOUT, rollouts.show_rollout),
        Answer(ro.LIST_ROLLOUTS, rollouts.list_rollouts),
        Answer(ro.GO_ROLLOUT, rollouts.go_rollout),
        Answer(ro.CANCEL_ROLLOUT, rollouts.cancel_rollout),
    ),
    tasks=(Every("rollout-gates", lambda s: s.rollout_poll_seconds, rollouts.evaluate_gates),),
    calls=(r.GROUPS_COUNTS,),
)
