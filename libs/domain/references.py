"""Operators name things by id or by name: how a reference is read, for every service."""

from __future__ import annotations

import uuid


def as_id(reference: str) -> uuid.UUID | None:
    """The id a reference gives, if it is one; else it is a name (or a KB number)."""
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


def kb_number(reference: str) -> str:
    """A KB number as kept, given with or without `KB` (any case)."""
    return reference.strip().upper().removeprefix("KB")
