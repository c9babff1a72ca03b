"""The gate between two rings of a rollout: how long to wait and what reporting must show.

Kept apart from `libs.contracts.rollouts` so that an auto-approval rule (libs/contracts/
approval.py) can name a gate without the rollout messages depending on each other.
"""

from __future__ import annotations

from pydantic import Field

from libs.contracts.spec import Contract

MAX_DELAY_HOURS = 24 * 90
"""At most 90 days between two rings."""


class RingGate(Contract):
    """When the next ring of a rollout may start: after `delay_hours` since the previous ring
    started, and once the computers of every ring started so far show the figures below
    (docs/product.md, rollouts). An operator's `go` starts it at once, whatever the figures."""

    delay_hours: float = Field(
        default=24.0,
        ge=0,
        le=MAX_DELAY_HOURS,
        description="Hours to wait after a ring starts before the next one may start "
        f"(0-{MAX_DELAY_HOURS}).",
    )
    min_installed_percent: float = Field(
        default=95.0,
        ge=0,
        le=100,
        description="Computers that reported on the update in the rings so far that must have it "
        "installed (a restart still pending counts as installed), in percent (0-100).",
    )
    max_failed_percent: float = Field(
        default=2.0,
        gt=0,
        le=100,
        description="Failed installs must stay below this share of the computers that "
        "reported, in percent (above 0, at most 100); reaching it holds the rollout.",
    )
    min_reports: int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        description="The gate is measured only once at least this many computers of the rings "
        "so far have reported on the update (installed, pending restart, needed or failed); "
        "until then the rollout waits.",
    )
