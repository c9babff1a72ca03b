"""Mandatory agent updates: who needs one and when it installs (pure domain, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.contracts.policies import AgentUpdateSchedule, PolicySettings
from libs.service.errors import Conflict, InvalidInput
from services.scheduler.domain.agent_updates import agent_update, new_release_key, version_key

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
PUBLISHED = NOW - timedelta(hours=1)
SATURDAY_NIGHT = PolicySettings(
    agent_update_schedule=AgentUpdateSchedule(day="saturday", time="02:00")
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("1.4.2", (1, 4, 2)),
        ("1.4", (1, 4, 0)),
        ("v2.0.10", (2, 0, 10)),
        ("1.4.2-beta.1", (1, 4, 2)),
        ("", None),
        ("unknown", None),
    ],
)
def test_versions_are_read_numerically(text: str, key: tuple[int, int, int] | None) -> None:
    assert version_key(text) == key


def test_numeric_order_not_text_order() -> None:
    assert version_key("1.10.0") > version_key("1.9.9")  # type: ignore[operator]


def test_a_new_release_must_be_newer_than_every_published_one() -> None:
    """Versions only go up, compared numerically; unreadable published versions are ignored."""
    assert new_release_key("1.10.0", ["1.9.9", "1.2.0", "unknown"]) == (1, 10, 0)
    assert new_release_key("0.0.1", []) == (0, 0, 1)
    with pytest.raises(Conflict, match=r"not newer than the latest release 1\.9\.9") as caught:
        new_release_key("1.9.9", ["1.2.0", "1.9.9"])
    assert caught.value.field == "version"
    with pytest.raises(Conflict):
        new_release_key("1.4", ["1.4.0"])


def test_a_new_release_must_be_a_version() -> None:
    with pytest.raises(InvalidInput, match=r"is not major\.minor\.patch") as caught:
        new_release_key("latest", [])
    assert caught.value.field == "version"


@pytest.mark.parametrize("installed", ["1.1.0", "1.2.0", "2.0.0", "", "custom-build"])
def test_no_update_for_up_to_date_or_unreadable_agents(installed: str) -> None:
    assert (
        agent_update(SATURDAY_NIGHT, "Europe/Paris", installed, ("1.1.0", PUBLISHED), NOW) is None
    )


def test_no_update_without_a_mandatory_release() -> None:
    assert agent_update(SATURDAY_NIGHT, "Europe/Paris", "1.0.0", None, NOW) is None


def test_outdated_agent_installs_at_the_schedule_in_its_own_time_zone() -> None:
    found = agent_update(SATURDAY_NIGHT, "Asia/Tokyo", "1.0.0", ("1.1.0", PUBLISHED), NOW)
    assert found is not None
    assert found.version == "1.1.0"
    assert found.install_at == datetime(2026, 3, 7, 2, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert found.prompt_restart is True  # the recommended prompt_agent_update_restart


def test_without_a_schedule_it_installs_at_once_and_the_plan_stays_stable() -> None:
    settings = PolicySettings(prompt_agent_update_restart=False)
    first = agent_update(settings, "Europe/Paris", "1.0.0", ("1.1.0", PUBLISHED), NOW)
    later = agent_update(
        settings, "Europe/Paris", "1.0.0", ("1.1.0", PUBLISHED), NOW + timedelta(hours=5)
    )
    assert first is not None
    assert first == later
    assert (first.install_at, first.prompt_restart) == (PUBLISHED, False)


@given(
    zone=st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]),
    now=st.integers(0, 2 * 365 * 24 * 60).map(lambda m: NOW + timedelta(minutes=m)),
    day=st.sampled_from(["every_day", "monday", "sunday"]),
)
def test_scheduled_install_is_the_next_local_occurrence(zone: str, now: datetime, day: str) -> None:
    settings = PolicySettings(
        agent_update_schedule=AgentUpdateSchedule.model_validate({"day": day, "time": "04:30"})
    )
    found = agent_update(settings, zone, "0.9.0", ("1.0.0", PUBLISHED), now)
    assert found is not None
    assert now < found.install_at <= now + timedelta(days=8)
    local = found.install_at.astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute) == (4, 30)  # 04:30 exists on every date in these zones
    if day != "every_day":
        assert local.strftime("%A").lower() == day
