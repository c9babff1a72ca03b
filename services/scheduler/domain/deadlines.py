"""The grace before a deadline's forced restart, and whether a deadline forced an install.

docs/product.md section 1 (`deadline_spread_hours`, `deadline_grace_days`):

- **Spread.** Each computer's own deadline (the approved one moved later by a share of the
  policy's spread, from a hash of its id) is a rule reporting shares:
  libs/domain/deadline_spread.py.
- **Grace.** When an install forced by a passed deadline needs a restart, the restart the
  policy would force on the logged-on user (`user_controls_restart = false`: a 5-minute
  warning, then the restart) waits `deadline_grace_days` days after the install finished;
  meanwhile the user is prompted at `restart_prompt_interval_minutes` and may restart
  earlier. With 0 days nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta


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
