"""Lockgate's Grafana dashboards, as data: the one source of the JSON in deploy/grafana/.

`python -m libs.observability.dashboards` writes the files; tests check that the committed
files match, that every expression parses (promtool) and names only metrics that exist;
`scripts/render_dashboards.py` plots the same expressions from a Prometheus for docs/.

Gauges computed from a service's database are exported identically by each replica, so
they are read with `max without (instance)` before any sum. Every process exports every
Lockgate metric (one registry), so an unlabelled gauge is selected by its service's `job`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SERVICES_RE = "catalog|approval|scheduler|reporting|console"
PENDING = "installed|installed_pending_restart|needed|failed|no_status|not_reporting"
"""States of targeted computers (approved updates), not_applicable left out; a silent
computer counts as not_reporting only, apart from failed."""


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel and how its series are named."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    kind: Literal["timeseries", "stat", "bargauge"] = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    stacked: bool = False


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("lockgate",))

    @property
    def filename(self) -> str:
        return f"{self.uid.removeprefix('lockgate-')}.json"


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def gauge(metric: str, selector: str = "") -> str:
    """A database-derived gauge, once over replicas."""
    return (
        f"max without (instance) ({metric}{{{selector}}})"
        if selector
        else (f"max without (instance) ({metric})")
    )


UPDATE_STATES = gauge("lockgate_update_computers", f'state=~"{PENDING}"')
INSTALLED = gauge("lockgate_update_computers", 'state="installed"')
FAILED = gauge("lockgate_update_computers", 'state="failed"')
ATTEMPTED = gauge(
    "lockgate_update_computers", 'state=~"installed|installed_pending_restart|failed"'
)
AWAITING = gauge("lockgate_updates_awaiting_approval")
GROUP_STATES = gauge("lockgate_group_update_states", 'state!="not_applicable"')
OVERDUE = gauge("lockgate_update_overdue_computers")
MANAGED = gauge("lockgate_computers_managed")
NOT_REPORTING = gauge("lockgate_computers_not_reporting")
FLEET_STATES = gauge("lockgate_fleet_update_states", 'state!="not_applicable"')

COMPLIANCE = Dashboard(
    uid="lockgate-compliance",
    title="Lockgate / Fleet compliance",
    description="Approved updates on the fleet: per classification and severity, what is "
    "installed, needed, failed, pending a restart or silent; what is past its deadline; what "
    "waits for an approval.",
    panels=(
        Panel(
            "Installed (approved updates, targeted computers)",
            (q(f"sum({INSTALLED}) / sum({UPDATE_STATES})"),),
            kind="stat",
            unit="percentunit",
            width=6,
            height=5,
        ),
        Panel(
            "Computer x update pairs past their deadline",
            (q(f"sum({OVERDUE}) or vector(0)"),),
            kind="stat",
            width=6,
            height=5,
            description="Computers behind on an approved update past their own deadline "
            "(the earliest over their groups' approvals): lacking a required install "
            "(needed, failed, no status) or still holding one to uninstall.",
        ),
        Panel(
            "Updates waiting for approval",
            (q(f"sum({AWAITING}) or vector(0)"),),
            kind="stat",
            width=6,
            height=5,
            description="Needed by at least one computer, neither approved nor declined.",
        ),
        Panel(
            "Failed installs",
            (q(f"sum({FAILED}) or vector(0)"),),
            kind="stat",
            width=6,
            height=5,
        ),
        Panel(
            "Computers managed",
            (q(f"sum({MANAGED}) or vector(0)"),),
            kind="stat",
            width=6,
            height=5,
            description="Every computer that checked in.",
        ),
        Panel(
            "Computers not reporting",
            (q(f"sum({NOT_REPORTING}) or vector(0)"),),
            kind="stat",
            width=6,
            height=5,
            description="No check-in and no report for LOCKGATE_NOT_REPORTING_DAYS: never "
            "heard back, counted apart from failed installs (lockgate computers list).",
        ),
        Panel(
            "Fleet: computer x update pairs per state",
            (q(f"sum by (state) ({FLEET_STATES})", "{{state}}"),),
            kind="bargauge",
            width=12,
            height=5,
            description="Over the approved updates: installed, needed, failed, pending "
            "restart, no status (never reported) and not reporting (silent).",
        ),
        Panel(
            "By classification: computers per state",
            (
                q(
                    f"sum by (classification, state) ({UPDATE_STATES})",
                    "{{classification}} {{state}}",
                ),
            ),
            stacked=True,
        ),
        Panel(
            "By severity: computers per state",
            (q(f"sum by (severity, state) ({UPDATE_STATES})", "{{severity}} {{state}}"),),
            stacked=True,
        ),
        Panel(
            "Past the deadline, by classification and severity",
            (
                q(
                    f"sum by (classification, severity) ({OVERDUE})",
                    "{{classification}} {{severity}}",
                ),
            ),
        ),
        Panel(
            "Waiting for approval, by classification and severity",
            (
                q(
                    f"sum by (classification, severity) ({AWAITING})",
                    "{{classification}} {{severity}}",
                ),
            ),
        ),
        Panel(
            "Least installed approved updates",
            (
                q(
                    f"bottomk(10, sum by (update) ({INSTALLED})"
                    f" / sum by (update) ({UPDATE_STATES}))",
                    "{{update}}",
                ),
            ),
            kind="bargauge",
            unit="percentunit",
        ),
        Panel(
            "Failure rate of install attempts, worst updates",
            (
                q(
                    f"topk(10, sum by (update) ({FAILED}) / sum by (update) ({ATTEMPTED}))",
                    "{{update}}",
                ),
            ),
            kind="bargauge",
            unit="percentunit",
            description="The 'block a bad patch' signal: alert LockgateUpdateFailureRateHigh.",
        ),
        Panel(
            "Groups (to LOCKGATE_REPORT_GROUP_DEPTH): computers per state",
            (
                q(
                    f"sum by (group, state) ({GROUP_STATES})",
                    "{{group}} {{state}}",
                ),
            ),
            width=24,
        ),
    ),
)

PIPELINE = Dashboard(
    uid="lockgate-pipeline",
    title="Lockgate / Pipeline",
    description="Messages through every handler, their latency and failures, dead letters, "
    "queue depth and consumers, the outboxes, and the broker.",
    panels=(
        Panel(
            "Service instances up",
            (q(f'sum by (job) (up{{job=~"{SERVICES_RE}"}})', "{{job}}"),),
            kind="stat",
            width=8,
            height=5,
        ),
        Panel(
            "Dead letters waiting (lockgate dlq list)",
            (
                # The console's store; the broker's queues only while no console keeps them.
                q(
                    "sum(max by (queue) (lockgate_dead_letters_waiting))"
                    ' or sum(max by (queue) (lockgate_queue_messages{queue=~".+\\\\.dlq"}))'
                    " or vector(0)"
                ),
            ),
            kind="stat",
            width=8,
            height=5,
        ),
        Panel(
            "Oldest unpublished event",
            (q("max(lockgate_outbox_lag_seconds)"),),
            kind="stat",
            unit="s",
            width=8,
            height=5,
        ),
        Panel(
            "Messages handled per second, by handler",
            (q("sum by (handler) (rate(lockgate_messages_handled_total[5m]))", "{{handler}}"),),
            unit="ops",
        ),
        Panel(
            "Handler latency p95 (delivery to commit)",
            (
                q(
                    "histogram_quantile(0.95, sum by (handler, le)"
                    " (rate(lockgate_handler_duration_seconds_bucket[5m])))",
                    "{{handler}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Failed attempts and dead letters per second",
            (
                q(
                    "sum by (handler) (rate(lockgate_messages_failed_total[5m]))",
                    "failed {{handler}}",
                ),
                q(
                    "sum by (queue, reason) (rate(lockgate_messages_dead_lettered_total[5m]))",
                    "dead-lettered {{queue}} {{reason}}",
                ),
                q(
                    "sum by (handler) (rate(lockgate_messages_duplicate_total[5m]))",
                    "duplicate {{handler}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Dead letters waiting, by dead-letter queue",
            (
                q("max by (queue) (lockgate_dead_letters_waiting)", "{{queue}} kept"),
                q(
                    'max by (queue) (lockgate_queue_messages{queue=~".+\\\\.dlq"})',
                    "{{queue}} in the broker, not kept yet",
                ),
            ),
        ),
        Panel(
            "Queue depth (messages ready)",
            (q('max by (queue) (lockgate_queue_messages{queue!~".+\\\\.dlq"})', "{{queue}}"),),
        ),
        Panel(
            "Consumers per queue",
            (q('max by (queue) (lockgate_queue_consumers{queue!~".+\\\\.dlq"})', "{{queue}}"),),
        ),
        Panel(
            "Outbox: lag and pending events, by service",
            (
                q("max by (job) (lockgate_outbox_lag_seconds)", "lag s {{job}}"),
                q("max by (job) (lockgate_outbox_pending)", "pending {{job}}"),
            ),
        ),
        Panel(
            "Outbox: events published per second",
            (
                q("sum by (job) (rate(lockgate_outbox_published_total[5m]))", "{{job}}"),
                q(
                    "sum by (job) (rate(lockgate_outbox_publish_errors_total[5m]))",
                    "errors {{job}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Commands answered per second, by outcome",
            (
                q(
                    "sum by (command, outcome) (rate(lockgate_rpc_requests_total[5m]))",
                    "{{command}} {{outcome}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Console API requests per second, by status",
            (
                q(
                    'sum by (status) (rate(lockgate_http_requests_total{job="console"}[5m]))',
                    "{{status}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Console API latency p95, by route",
            (
                q(
                    "histogram_quantile(0.95, sum by (route, le)"
                    " (rate(lockgate_http_request_duration_seconds_bucket[5m])))",
                    "{{route}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "RabbitMQ: messages ready and unacknowledged (rabbitmq_prometheus)",
            (
                q("sum(rabbitmq_queue_messages_ready)", "ready"),
                q("sum(rabbitmq_queue_messages_unacked)", "unacknowledged"),
            ),
        ),
        Panel(
            "RabbitMQ: connections and channels",
            (
                q("sum(rabbitmq_connections)", "connections"),
                q("sum(rabbitmq_channels)", "channels"),
            ),
        ),
    ),
)

SCHEDULER = Dashboard(
    uid="lockgate-scheduler",
    title="Lockgate / Scheduler",
    description="Durable timers due and fired, how late they fire, restarts pending, plans.",
    panels=(
        Panel(
            "Timers due now",
            (q(f"sum({gauge('lockgate_timers_due')})"),),
            kind="stat",
            width=6,
            height=5,
        ),
        Panel(
            "Timer lag p99",
            (
                q(
                    "histogram_quantile(0.99,"
                    " sum by (le) (rate(lockgate_timer_lag_seconds_bucket[5m])))"
                ),
            ),
            kind="stat",
            unit="s",
            width=6,
            height=5,
        ),
        Panel(
            "Restarts pending",
            (q('max(lockgate_restarts_pending{job="scheduler"})'),),
            kind="stat",
            width=6,
            height=5,
        ),
        Panel(
            "Plans published per minute",
            (q("sum(rate(lockgate_plans_published_total[5m])) * 60"),),
            kind="stat",
            width=6,
            height=5,
        ),
        Panel(
            "Timers due vs fired, by kind",
            (
                q(f"sum by (kind) ({gauge('lockgate_timers_due')})", "due {{kind}}"),
                q(
                    "sum by (kind) (rate(lockgate_timers_fired_total[5m])) * 60",
                    "fired/min {{kind}}",
                ),
            ),
        ),
        Panel(
            "Timer lag (firing time minus due time)",
            (
                q(
                    "histogram_quantile(0.5,"
                    " sum by (le) (rate(lockgate_timer_lag_seconds_bucket[5m])))",
                    "p50",
                ),
                q(
                    "histogram_quantile(0.99,"
                    " sum by (le) (rate(lockgate_timer_lag_seconds_bucket[5m])))",
                    "p99",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Timers stored, by kind",
            (q(f"sum by (kind) ({gauge('lockgate_timers_scheduled')})", "{{kind}}"),),
            stacked=True,
        ),
        Panel(
            "Restarts pending and plans published",
            (
                q('max(lockgate_restarts_pending{job="scheduler"})', "restarts pending"),
                q("sum(rate(lockgate_plans_published_total[5m])) * 60", "plans/min"),
            ),
        ),
    ),
)

CATALOG = Dashboard(
    uid="lockgate-catalog",
    title="Lockgate / Catalog",
    description="Source documents imported, updates by state, uploads and the storage quota.",
    panels=(
        Panel(
            "Storage quota used",
            (q("max(lockgate_catalog_storage_bytes) / max(lockgate_catalog_storage_quota_bytes)"),),
            kind="stat",
            unit="percentunit",
            width=8,
            height=5,
        ),
        Panel(
            "Updates in the catalog",
            (q(f"sum by (state) ({gauge('lockgate_catalog_updates')})", "{{state}}"),),
            kind="stat",
            width=8,
            height=5,
        ),
        Panel(
            "Documents imported (last 24 h)",
            (
                q(
                    "sum(increase(lockgate_rpc_requests_total"
                    '{command="catalog.document.import.v1", outcome="ok"}[24h])) or vector(0)'
                ),
            ),
            kind="stat",
            width=8,
            height=5,
        ),
        Panel(
            "Imports per hour, by outcome",
            (
                q(
                    "sum by (outcome) (increase(lockgate_rpc_requests_total"
                    '{command="catalog.document.import.v1"}[1h]))',
                    "{{outcome}}",
                ),
            ),
        ),
        Panel(
            "Updates by state",
            (q(f"sum by (state) ({gauge('lockgate_catalog_updates')})", "{{state}}"),),
            stacked=True,
        ),
        Panel(
            "Storage used and quota",
            (
                q("max(lockgate_catalog_storage_bytes)", "used"),
                q("max(lockgate_catalog_storage_quota_bytes)", "quota"),
            ),
            unit="bytes",
        ),
        Panel(
            "Upload commands per second, by outcome",
            (
                q(
                    "sum by (command, outcome) (rate(lockgate_rpc_requests_total"
                    '{command=~"catalog.upload.+"}[5m]))',
                    "{{command}} {{outcome}}",
                ),
            ),
            unit="ops",
        ),
    ),
)

DASHBOARDS = (COMPLIANCE, PIPELINE, SCHEDULER, CATALOG)


def layout(panels: tuple[Panel, ...]) -> list[tuple[Panel, dict[str, int]]]:
    """Left to right, wrapping at Grafana's 24 columns."""
    placed, x, y, row_height = [], 0, 0, 0
    for panel in panels:
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append((panel, {"h": panel.height, "w": panel.width, "x": x, "y": y}))
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def _panel(number: int, panel: Panel, position: dict[str, int]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 30 if panel.stacked else 10,
            "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
        }
    options: dict[str, Any] = {"legend": {"displayMode": "list", "placement": "bottom"}}
    if panel.kind in {"stat", "bargauge"}:
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return {
        "id": number,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": position,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for index, query in enumerate(panel.queries)
        ],
    }


def to_grafana(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (provisioned from files)."""
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": [
            _panel(number, panel, position)
            for number, (panel, position) in enumerate(layout(dashboard.panels), start=1)
        ],
    }


def render(dashboard: Dashboard) -> str:
    return json.dumps(to_grafana(dashboard), indent=2, ensure_ascii=False) + "\n"


def expressions() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) of every query."""
    return [
        (d.uid, p.title, query.expr) for d in DASHBOARDS for p in d.panels for query in p.queries
    ]


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in DASHBOARDS:
        path = directory / dashboard.filename
        path.write_text(render(dashboard))
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("deploy/grafana")
    for written_path in write(target):
        print(written_path)
