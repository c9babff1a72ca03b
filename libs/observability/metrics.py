"""Prometheus metrics of the backbone; labels are bounded (handler and queue names only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_HANDLED = Counter(
    "lockgate_messages_handled_total",
    "Messages whose handler committed (duplicates are counted apart).",
    ["handler"],
)
MESSAGES_DUPLICATE = Counter(
    "lockgate_messages_duplicate_total",
    "Messages skipped because the inbox had already seen their id.",
    ["handler"],
)
MESSAGES_FAILED = Counter(
    "lockgate_messages_failed_total",
    "Handler attempts that raised and were requeued or dead-lettered.",
    ["handler"],
)
DEPENDENCIES_AVAILABLE = Gauge(
    "lockgate_dependencies_available",
    "1 while this process's database and broker answer (its gate is open); 0 while it waits "
    "out an outage with its messages unacked (libs/service/transient.py).",
)
DEPENDENCY_OUTAGES = Counter(
    "lockgate_dependency_outages_total",
    "Outages this process has waited out: each time its gate closed.",
)
MESSAGES_DEAD_LETTERED = Counter(
    "lockgate_messages_dead_lettered_total",
    "Messages sent to <queue>.dlq, by queue and reason class.",
    ["queue", "reason"],
)
HANDLER_DURATION = Histogram(
    "lockgate_handler_duration_seconds",
    "Time from delivery to commit of one message.",
    ["handler"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RPC_REQUESTS = Counter(
    "lockgate_rpc_requests_total",
    "RPC requests answered, by command and outcome (ok or the error class).",
    ["command", "outcome"],
)
OUTBOX_PUBLISHED = Counter(
    "lockgate_outbox_published_total", "Outbox events published and confirmed by the broker."
)
OUTBOX_PENDING = Gauge("lockgate_outbox_pending", "Outbox events not yet published.")
OUTBOX_LAG = Gauge(
    "lockgate_outbox_lag_seconds", "Age of the oldest unpublished outbox event (0 when empty)."
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "lockgate_outbox_publish_errors_total", "Outbox batches that failed to publish and will retry."
)
TIMERS_FIRED = Counter(
    "lockgate_timers_fired_total", "Durable timers fired (claimed, handled, committed).", ["kind"]
)
TIMER_LAG = Histogram(
    "lockgate_timer_lag_seconds",
    "How late a timer fired: firing time minus due time.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
PLANS_PUBLISHED = Counter(
    "lockgate_plans_published_total", "Computer plans published (changed, or on check-in)."
)
REPORTS_IGNORED = Counter(
    "lockgate_reports_ignored_total",
    "Agent report entries not applied, by reason (unknown computer or update, declined "
    "update, older than what is stored, impossible transition).",
    ["reason"],
)
COMPLIANCE_COMPUTERS = Gauge(
    "lockgate_compliance_computers",
    "Computer x update pairs per state, by classification and severity (bounded labels).",
    ["classification", "severity", "state"],
)
GROUP_COMPUTERS = Gauge(
    "lockgate_group_update_states",
    "Computer x update pairs per state (no_status and not_reporting included) in a group and "
    "its subgroups, for groups no deeper than LOCKGATE_REPORT_GROUP_DEPTH (bounded labels).",
    ["group", "state"],
)
QUEUE_MESSAGES = Gauge(
    "lockgate_queue_messages",
    "Messages ready in one of this service's queues or their dead-letter queues, sampled "
    "every LOCKGATE_METRICS_SAMPLE_SECONDS by passive declare (the queue's owner reports it).",
    ["queue"],
)
DEAD_LETTERS_WAITING = Gauge(
    "lockgate_dead_letters_waiting",
    "Dead letters waiting in the console's dead-letter store (lockgate dlq list), by "
    "dead-letter queue; sampled every LOCKGATE_METRICS_SAMPLE_SECONDS and after each change.",
    ["queue"],
)
QUEUE_CONSUMERS = Gauge(
    "lockgate_queue_consumers",
    "Consumers attached to one of this service's queues, sampled with lockgate_queue_messages.",
    ["queue"],
)
TIMERS_DUE = Gauge(
    "lockgate_timers_due",
    "Durable timers due now and not fired yet, by kind (the backlog the firing task works on).",
    ["kind"],
)
TIMERS_SCHEDULED = Gauge(
    "lockgate_timers_scheduled", "Durable timers stored (due or not), by kind.", ["kind"]
)
RESTARTS_PENDING = Gauge(
    "lockgate_restarts_pending",
    "Computers whose plan has a restart pending (prompted, postponed or scheduled).",
)
UPDATE_COMPUTERS = Gauge(
    "lockgate_update_computers",
    "Computers per state for each approved, not declined update, at most "
    "LOCKGATE_REPORT_UPDATE_LIMIT updates, those with the most computers needing them first.",
    ["update", "classification", "severity", "state"],
)
UPDATE_DEADLINE = Gauge(
    "lockgate_update_deadline_timestamp_seconds",
    "Earliest installation deadline of an update over its approvals (Unix time), for the "
    "updates in lockgate_update_computers that have a deadline.",
    ["update"],
)
UPDATE_OVERDUE = Gauge(
    "lockgate_update_overdue_computers",
    "Computers behind on an update past their own deadline (the earliest over the winning "
    "approvals of their groups): lacking a required install (needed, failed, no status) or "
    "still holding an update to uninstall (installed, pending restart); an available "
    "install is never overdue. Same updates as lockgate_update_computers.",
    ["update", "classification", "severity"],
)
UPDATES_AWAITING_APPROVAL = Gauge(
    "lockgate_updates_awaiting_approval",
    "Updates needed by at least one computer, neither approved for any group nor declined.",
    ["classification", "severity"],
)
COMPUTERS_MANAGED = Gauge(
    "lockgate_computers_managed", "Managed computers (every computer that checked in)."
)
COMPUTERS_NOT_REPORTING = Gauge(
    "lockgate_computers_not_reporting",
    "Managed computers with no check-in or report for LOCKGATE_NOT_REPORTING_DAYS.",
)
FLEET_UPDATE_STATES = Gauge(
    "lockgate_fleet_update_states",
    "Computer x update pairs per state over the approved updates of lockgate_update_computers "
    "(installed, needed, failed, installed_pending_restart, not_applicable, no_status, "
    "not_reporting: a silent computer counts as not_reporting only).",
    ["state"],
)
CATALOG_UPDATES = Gauge(
    "lockgate_catalog_updates",
    "Updates in the catalog by state (active, superseded, expired).",
    ["state"],
)
CATALOG_STORAGE_BYTES = Gauge(
    "lockgate_catalog_storage_bytes", "Bytes of uploaded installer content stored."
)
CATALOG_STORAGE_QUOTA_BYTES = Gauge(
    "lockgate_catalog_storage_quota_bytes", "The storage quota (LOCKGATE_STORAGE_QUOTA_BYTES)."
)
CATALOG_CONTENT_MISSING = Gauge(
    "lockgate_catalog_content_missing",
    "Stored content rows whose file the content store does not have (last sweep; should be 0).",
)
CATALOG_CONTENT_SWEPT = Counter(
    "lockgate_catalog_content_swept_total",
    "Files the content sweeper acted on: temporary (removed), orphan (content no row refers "
    "to, removed), settled (moved into place after a crash between commit and move).",
    ["kind"],
)
CATALOG_UPLOADS_ENDED = Counter(
    "lockgate_catalog_uploads_ended_total",
    "Uploads ended before commit, by how: cancelled, expired.",
    ["how"],
)
HTTP_REQUESTS = Counter(
    "lockgate_http_requests_total",
    "Console API requests, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "lockgate_http_request_duration_seconds",
    "Console API request duration, by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
