"""approval's queries (schema `approval` only), one module per aggregate."""

from services.approval.store import approvals, computers, groups, rules, updates, writers

__all__ = ["approvals", "computers", "groups", "rules", "updates", "writers"]
