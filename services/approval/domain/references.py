"""Commands name groups, rules and updates by id or by name (or KB number)."""

from __future__ import annotations

import uuid


def as_id(reference: str) -> uuid.UUID | None:
    """The id a reference gives, if it is one; else it is a name (or a KB number)."""
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None
