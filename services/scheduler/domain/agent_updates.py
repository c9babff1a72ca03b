"""Mandatory agent updates: which computers need one, and when it installs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from libs.contracts.agents import AgentUpdatePlan
from libs.contracts.policies import AgentUpdateSchedule, PolicySettings
from libs.service.errors import Conflict, InvalidInput
from services.scheduler.domain.windows import next_occurrence, parse_time

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")

Version = tuple[int, int, int]


def version_key(text: str) -> Version | None:
    """`1.4.2` -> (1, 4, 2); `1.4` -> (1, 4, 0); a suffix (`1.4.2-beta`) is ignored; None
    when the text does not start with a version (an agent that reports none)."""
    found = _VERSION.match(text)
    if found is None:
        return None
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def new_release_key(version: str, published: Iterable[str]) -> Version:
    """The order key of a version to publish: it must be newer than every published one
    (versions only go up)."""
    key = version_key(version)
    if key is None:  # the contract's pattern already refuses it; kept for direct callers
        raise InvalidInput(f"version: {version!r} is not major.minor.patch", field="version")
    newest = max((k for v in published if (k := version_key(v)) is not None), default=None)
    if newest is not None and key <= newest:
        raise Conflict(
            f"version: {version} is not newer than the latest release "
            f"{'.'.join(map(str, newest))}; versions only go up",
            field="version",
        )
    return key


def next_install(schedule: AgentUpdateSchedule, timezone: str, after: datetime) -> datetime:
    """The first instant after `after` when the computer's clock shows the schedule."""
    return next_occurrence(schedule.day, parse_time(schedule.time), timezone, after)


def agent_update(
    settings: PolicySettings,
    timezone: str,
    installed: str,
    mandatory: tuple[str, datetime] | None,
    now: datetime,
) -> AgentUpdatePlan | None:
    """The mandatory update a computer must install, or None.

    None when there is no mandatory release, the agent reports no version we can read (it
    cannot be compared, so it is left alone), or it runs that release or a newer one. The
    install time is the next occurrence of agent_update_schedule in the computer's time
    zone; with no schedule configured, at once: the release's publication time, so the plan
    stays the same from one computation to the next. [decided: not configured = as soon as
    possible, as the source says nothing of a default.]
    """
    if mandatory is None:
        return None
    version, published_at = mandatory
    target, current = version_key(version), version_key(installed)
    if target is None or current is None or current >= target:
        return None
    schedule = settings.agent_update_schedule
    install_at = published_at if schedule is None else next_install(schedule, timezone, now)
    return AgentUpdatePlan(
        version=version,
        install_at=install_at,
        prompt_restart=settings.prompt_agent_update_restart,
    )
