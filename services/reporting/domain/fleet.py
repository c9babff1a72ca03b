"""The fleet list's rules (docs/product.md section 6): when a computer is not reporting, and
the opaque keyset cursor that says where a page starts."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

SORTS = ("name", "last_contact", "failed")


class BadCursor(ValueError):
    """A cursor this list did not hand out (or one for another sort)."""


@dataclass(frozen=True)
class Position:
    """Where a page starts: after this computer, in this sort."""

    sort: str
    key: str
    """The sort column's value, as text: the lower-cased host name, an ISO time, a count."""
    computer_id: str


def silent_since(now: datetime, not_reporting_days: float) -> datetime:
    """A computer whose last contact is before this is not reporting."""
    return now - timedelta(days=not_reporting_days)


def encode(position: Position) -> str:
    """The cursor handed out with a page (opaque to clients)."""
    raw = json.dumps([position.sort, position.key, position.computer_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, sort: str) -> Position:
    """The position a cursor names; it must come from a page of the same sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise BadCursor("cursor: not one this list handed out") from error
    if (
        not isinstance(found, list)
        or len(found) != 3
        or not all(isinstance(part, str) for part in found)
    ):
        raise BadCursor("cursor: not one this list handed out")
    if found[0] != sort:
        raise BadCursor(f"cursor: it pages the {found[0]!r} sort, not {sort!r}")
    return Position(found[0], found[1], found[2])
