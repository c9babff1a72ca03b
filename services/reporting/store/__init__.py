"""reporting's queries (schema `reporting` only), one module per aggregate."""

from services.reporting.store import (
    aggregates,
    approvals,
    computers,
    fleet,
    groups,
    heartbeats,
    history,
    reports,
    states,
    updates,
)

__all__ = [
    "aggregates",
    "approvals",
    "computers",
    "fleet",
    "groups",
    "heartbeats",
    "history",
    "reports",
    "states",
    "updates",
]
