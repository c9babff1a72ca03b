"""approval's queries (schema `approval` only), one module per aggregate."""

from services.approval.store import (
    approvals,
    computers,
    groups,
    pauses,
    rules,
    updates,
    writers,
)

__all__ = ["approvals", "computers", "groups", "pauses", "rules", "updates", "writers"]
