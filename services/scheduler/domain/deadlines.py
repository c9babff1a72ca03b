"""Each computer's own deadline and the grace before a deadline's forced restart.

docs/product.md section 1 (`deadline_spread_hours`, `deadline_grace_days`):

- **Spread.** A computer's deadline is the approved one moved later by a share of the
  policy's spread, the share fixed by a hash of the computer id: the same on every replica
  and after every restart, never earlier than the approved deadline and never later than
  the approved deadline plus the spread. A fleet approved with one deadline is thus forced
  over the spread's hours, not in the same minute.
- **Grace.** When an install forced by a passed deadline needs a restart, the restart the
  policy would force on the logged-on user (`user_controls_restart = false`: a 5-minute
  warning, then the restart) waits `deadline_grace_days` days after the install finished;
  meanwhile the user is prompted at `restart_prompt_interval_minutes` and may restart
  earlier. With 0 days nothing changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
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


def grace_end(finished_at: datetime, grace_days: int) -> datetime | None:
    """Until when a restart after a deadline-forced install is not forced (None: no grace)."""
    if grace_days <= 0:
        return None
    return finished_at + timedelta(days=grace_days)


def forced_by_deadline(
    update_ids: Iterable[str], deadlines: Mapping[str, datetime | None], at: datetime
) -> bool:
    """Whether any of these updates (installs that asked for a restart) had a deadline, the
    computer's own, that had passed by `at` (their install was forced)."""
    return any(
        (deadline := deadlines.get(update_id)) is not None and deadline <= at
        for update_id in update_ids
    )
