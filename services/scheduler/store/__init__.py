"""scheduler's queries (schema `scheduler` only), one module per aggregate."""

from services.scheduler.store import (
    approvals,
    computers,
    groups,
    plans,
    policies,
    progress,
    releases,
    requests,
    timers,
    updates,
    windows,
)

__all__ = [
    "approvals",
    "computers",
    "groups",
    "plans",
    "policies",
    "progress",
    "releases",
    "requests",
    "timers",
    "updates",
    "windows",
]
