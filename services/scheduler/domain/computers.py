"""What the scheduler holds of a managed computer besides its plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.scheduler.domain.applicability import Inventory
from services.scheduler.domain.restarts import RestartState


@dataclass(frozen=True)
class PublishedPolicy:
    """The policy in force last announced for a computer (policy_id None: "no policy"),
    with its deadline spread (reporting counts a computer past its deadline from its own)."""

    policy_id: str | None
    name: str
    deadline_spread_hours: int = 0


@dataclass(frozen=True)
class ManagedComputer:
    """A computer as its check-ins, fired timers and restarts left it."""

    computer_id: str
    timezone: str
    user_logged_on: bool
    last_checkin_at: datetime
    last_window_at: datetime | None
    deadline_fired_through: datetime | None
    plan_hash: str | None
    restart: RestartState
    agent_version: str
    inventory: Inventory = field(default_factory=Inventory)
    """What its last check-in said of it (requirements are checked against it)."""
    published_policy: PublishedPolicy | None = None
    """The policy in force last announced for it (None: none announced yet)."""
