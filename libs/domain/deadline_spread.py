"""Each computer's own deadline when its policy spreads deadlines (`deadline_spread_hours`,
docs/product.md section 1).

The one home of this rule: the scheduler forces installs and restarts at each computer's
own deadline, and reporting counts a computer past its deadline only once that deadline has
come, so both must move the same computer by the same amount.

A computer's deadline is the approved one moved later by a share of the policy's spread,
the share fixed by a hash of the computer id: the same on every replica and after every
restart, never earlier than the approved deadline and never later than the approved
deadline plus the spread. A fleet approved with one deadline is thus forced over the
spread's hours, not in the same minute.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

SPREAD_SALT = b"lockgate.deadline-spread.v1:"
"""Mixed into the hash, so the share is not the one any other use of the id's hash gives."""
_SCALE = 2**64


def spread_share(computer_id: str) -> float:
    """The computer's share of any spread, in [0, 1): the first 8 bytes of
    sha256(salt + id) read as an unsigned integer over 2**64 (uniform for distinct ids)."""
    digest = hashlib.sha256(SPREAD_SALT + computer_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def spread_offset(computer_id: str, spread_hours: int) -> timedelta:
    """How much later than the approved deadline this computer's deadline is: whole
    seconds, from 0 up to (not including) the spread; zero without a spread."""
    if spread_hours <= 0:
        return timedelta(0)
    seconds = spread_hours * 3600
    return timedelta(seconds=min(int(spread_share(computer_id) * seconds), seconds - 1))


def computer_deadline(
    deadline: datetime | None, computer_id: str, spread_hours: int
) -> datetime | None:
    """The computer's own deadline for an approved deadline (None: no deadline)."""
    if deadline is None:
        return None
    return deadline + spread_offset(computer_id, spread_hours)
