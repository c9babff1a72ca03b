"""The console's HTTP API, as a table: which method and path sends which command.

The console serves these routes (each turns into the command's RPC to its service) and the
CLI calls them; both read this one table, so they cannot disagree. Path parameters are
fields of the command's request; for GET and DELETE the other fields are query parameters
(fields of a nested model such as `page` are flattened: `offset`, `limit`); for the other
methods they are the JSON body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from libs.contracts import (
    agents,
    approval,
    catalog,
    policies,
    reporting,
    rollouts,
    uploads,
    windows,
)
from libs.contracts.spec import CommandSpec

PREFIX = "/api/v1"
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Route:
    method: Method
    path: str
    """Below PREFIX, with `{field}` path parameters."""
    spec: CommandSpec[Any, Any]
    tag: str
    timeout_seconds: float | None = None
    """How long the console waits for the service (None: LOCKGATE_RPC_TIMEOUT_SECONDS)."""

    @property
    def path_fields(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    @property
    def writes(self) -> bool:
        """Changes state: admin only, and written to the audit log."""
        return self.method != "GET"

    @property
    def name(self) -> str:
        return self.spec.type.removesuffix(".v1").replace(".", "_").replace("-", "_")


def _r(
    method: Method, path: str, spec: CommandSpec[Any, Any], tag: str, timeout: float | None = None
) -> Route:
    return Route(method, path, spec, tag, timeout)


ROUTES: tuple[Route, ...] = (
    # catalog
    _r("POST", "/catalog/imports", catalog.IMPORT_DOCUMENT, "catalog", timeout=120),
    _r("GET", "/catalog/imports", catalog.LIST_IMPORTS, "catalog"),
    _r("GET", "/catalog/settings", catalog.GET_SETTINGS, "catalog"),
    _r("PUT", "/catalog/settings", catalog.CHANGE_SETTINGS, "catalog"),
    _r("GET", "/catalog/updates", catalog.LIST_UPDATES, "catalog"),
    _r("GET", "/catalog/updates/{update}", catalog.GET_UPDATE, "catalog"),
    _r("POST", "/catalog/updates/{update}/expire", catalog.EXPIRE_UPDATE, "catalog"),
    _r("PATCH", "/catalog/updates/{update}", uploads.EDIT_UPDATE, "catalog"),
    _r("DELETE", "/catalog/updates/{update}", uploads.DELETE_UPDATE, "catalog"),
    # third-party upload procedure
    _r("POST", "/uploads", uploads.START_UPLOAD, "uploads"),
    _r("GET", "/uploads", uploads.LIST_UPLOADS, "uploads"),
    _r("GET", "/uploads/{upload_id}", uploads.GET_UPLOAD, "uploads"),
    _r("POST", "/uploads/{upload_id}/chunks", uploads.SEND_CHUNK, "uploads"),
    _r("PUT", "/uploads/{upload_id}/description", uploads.DESCRIBE, "uploads"),
    _r("PUT", "/uploads/{upload_id}/requirements", uploads.SET_REQUIREMENTS, "uploads"),
    _r("PUT", "/uploads/{upload_id}/detection-rules", uploads.SET_DETECTION, "uploads"),
    _r("PUT", "/uploads/{upload_id}/prerequisites", uploads.SET_PREREQUISITES, "uploads"),
    _r("PUT", "/uploads/{upload_id}/command-line", uploads.SET_COMMAND_LINE, "uploads"),
    _r("PUT", "/uploads/{upload_id}/return-codes", uploads.SET_RETURN_CODES, "uploads"),
    _r("POST", "/uploads/{upload_id}/commit", uploads.COMMIT_UPLOAD, "uploads"),
    _r("POST", "/uploads/{upload_id}/cancel", uploads.CANCEL_UPLOAD, "uploads"),
    # approvals
    _r("GET", "/updates", approval.LIST_UPDATES, "updates"),
    _r("POST", "/updates/approve", approval.APPROVE, "updates"),
    _r("POST", "/updates/decline", approval.DECLINE, "updates"),
    _r("GET", "/updates/{update}/approvals", approval.UPDATE_APPROVALS, "updates"),
    _r("POST", "/updates/{update}/pause", approval.PAUSE_UPDATE, "updates"),
    _r("POST", "/updates/{update}/resume", approval.RESUME_UPDATE, "updates"),
    _r("POST", "/updates/{update}/rollback", approval.ROLLBACK_UPDATE, "updates"),
    _r("GET", "/groups", approval.LIST_GROUPS, "groups"),
    _r("POST", "/groups", approval.CREATE_GROUP, "groups"),
    _r("PUT", "/groups/{group}/name", approval.RENAME_GROUP, "groups"),
    _r("PUT", "/groups/{group}/parent", approval.MOVE_GROUP, "groups"),
    _r("DELETE", "/groups/{group}", approval.DELETE_GROUP, "groups"),
    _r("POST", "/groups/{group}/members", approval.CHANGE_MEMBERSHIP, "groups"),
    _r("GET", "/groups/{group}/approvals", approval.GROUP_APPROVALS, "groups"),
    _r("GET", "/computers/{computer}/approvals", approval.COMPUTER_APPROVALS, "computers"),
    _r("GET", "/rules", approval.LIST_RULES, "rules"),
    _r("POST", "/rules", approval.CREATE_RULE, "rules"),
    _r("PUT", "/rules/{rule}", approval.EDIT_RULE, "rules"),
    _r("DELETE", "/rules/{rule}", approval.DELETE_RULE, "rules"),
    _r("POST", "/rules/{rule}/run", approval.RUN_RULE, "rules"),
    # rollouts (rings)
    _r("GET", "/rollouts", rollouts.LIST_ROLLOUTS, "rollouts"),
    _r("POST", "/rollouts", rollouts.START_ROLLOUT, "rollouts"),
    _r("GET", "/rollouts/{rollout}", rollouts.SHOW_ROLLOUT, "rollouts"),
    _r("POST", "/rollouts/{rollout}/go", rollouts.GO_ROLLOUT, "rollouts"),
    _r("POST", "/rollouts/{rollout}/cancel", rollouts.CANCEL_ROLLOUT, "rollouts"),
    # policies and plans
    _r("GET", "/policies", policies.LIST_POLICIES, "policies"),
    _r("POST", "/policies", policies.CREATE_POLICY, "policies"),
    _r("PATCH", "/policies/{policy}", policies.EDIT_POLICY, "policies"),
    _r("DELETE", "/policies/{policy}", policies.DELETE_POLICY, "policies"),
    _r("POST", "/policies/{policy}/assignments", policies.ASSIGN_POLICY, "policies"),
    _r("DELETE", "/groups/{group}/policy", policies.UNASSIGN_POLICY, "policies"),
    _r("GET", "/computers/{computer}/plan", agents.GET_PLAN, "computers"),
    _r("GET", "/agent-releases", policies.LIST_AGENT_RELEASES, "policies"),
    _r("POST", "/agent-releases", policies.PUBLISH_AGENT_RELEASE, "policies"),
    _r("GET", "/maintenance-windows", windows.LIST_WINDOWS, "policies"),
    _r("PUT", "/groups/{group}/maintenance-windows", windows.SET_WINDOWS, "policies"),
    _r("DELETE", "/groups/{group}/maintenance-windows", windows.CLEAR_WINDOWS, "policies"),
    # reports
    _r("GET", "/reports/overview", reporting.SUMMARY, "reports"),
    _r("GET", "/reports/history", reporting.COMPLIANCE_HISTORY, "reports"),
    _r("GET", "/reports/updates/{update}", reporting.UPDATE_REPORT, "reports"),
    _r("GET", "/reports/updates/{update}/computers", reporting.UPDATE_COMPUTERS, "reports"),
    _r("GET", "/reports/groups/{group}", reporting.GROUP_REPORT, "reports"),
    _r("GET", "/reports/computers/{computer}", reporting.COMPUTER_REPORT, "reports"),
    _r("GET", "/computers", reporting.LIST_COMPUTERS, "computers"),
    _r("GET", "/services", reporting.LIST_SERVICE_INSTANCES, "system"),
)

FILLED_BY_CONSOLE = ("requested_by",)
"""Command fields the console sets from its caller (`token:<name>`): never read from the
request (a client cannot speak for someone else)."""

BY_COMMAND: dict[str, Route] = {route.spec.type: route for route in ROUTES}


def route_for(spec: CommandSpec[Any, Any]) -> Route:
    """The route that sends `spec` (every command operators use has one)."""
    try:
        return BY_COMMAND[spec.type]
    except KeyError:
        raise LookupError(f"{spec.type} has no HTTP route in libs/contracts/api.py") from None
