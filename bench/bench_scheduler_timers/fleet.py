"""The fleet: computers with a stored plan each, and one due timer per computer."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from libs.contracts.agents import INSTALL, ComputerPlan, PlanItem
from libs.contracts.catalog import ReturnCode
from libs.contracts.policies import PolicySettings
from services.scheduler.domain.timers import timer_plan
from services.scheduler.domain.windows import next_window
from services.scheduler.handlers import SERVICE as SCHEDULER

SCHEMA = SCHEDULER.name
BASE = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
"""The run's virtual now: every loaded timer is due in the hour before it."""
DUE_SPREAD_SECONDS = 3600.0
ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
KINDS = ("window", "deadline")
PLACEHOLDER = "bench-placeholder-computer"
SEED = 20260114
INSTALL_ROWS = f"routing_key LIKE '{INSTALL.binding_key.replace('*', '%')}'"
"""The outbox rows of install instructions (one routing key per computer)."""


def computer_id(index: int) -> str:
    return f"pc-{index:07d}"


@dataclass(frozen=True)
class Template:
    """A plan's texts: the plan JSON and what its digest covers
    (services/scheduler/domain/plans.py plan_digest), split around the computer id, and its
    TimerPlan JSON (which does not name the computer)."""

    plan: tuple[str, str]
    digest: tuple[str, str]
    firing: str

    def texts(self, cid: str) -> tuple[str, str, str]:
        """Plan JSON, plan digest, TimerPlan JSON of computer `cid`."""
        digest = hashlib.sha256((cid.join(self.digest)).encode()).hexdigest()
        return cid.join(self.plan), digest, self.firing


def _split(text: str) -> tuple[str, str]:
    prefix, suffix = text.split(PLACEHOLDER)
    return prefix, suffix


def plan_templates() -> list[list[Template]]:
    """Per zone, per variant (1 or 2 items): the plan's texts around the computer id.

    Item 1 (every plan): a cumulative update whose deadline passed, so a `deadline` timer
    has something forced to install; item 2 (half the plans): a third-party update due at
    the next window with a deadline a week later.
    """
    settings = PolicySettings()
    past_deadline = BASE - timedelta(days=2)
    cumulative = PlanItem(
        update_id="6c4c1d8e-5a51-4f6b-9c5e-2f0a7f3a9b11",
        kb="KB5034441",
        title="2026-01 Cumulative Update for Windows 11 Version 24H2 for x64-based Systems"
        " (KB5034441)",
        action="required_install",
        deadline=past_deadline,
        state="needed",
        install_at=past_deadline,
        restart="always",
        command_line=None,
        return_codes=[
            ReturnCode(code=0, outcome="success"),
            ReturnCode(code=3010, outcome="success_restart_required"),
        ],
    )
    templates = []
    for zone in ZONES:
        window = next_window(settings, zone, BASE)
        browser = PlanItem(
            update_id="9a0e7b52-3d1f-4c8e-8f7a-1b2c3d4e5f60",
            kb=None,
            title="Mozilla Firefox 134.0.1 (x64 en-US)",
            action="required_install",
            deadline=BASE + timedelta(days=7),
            state="unknown",
            install_at=window,
            restart="never",
            command_line="-ms",
            return_codes=[ReturnCode(code=0, outcome="success")],
        )
        per_zone = []
        for items in ([cumulative], [cumulative, browser]):
            plan = ComputerPlan(
                computer_id=PLACEHOLDER,
                policy_id="2f8d6a4e-0c1b-4e7a-9d3f-5a6b7c8d9e01",
                policy_name="Workstations",
                policy_conflict=None,
                settings=settings,
                timezone=zone,
                next_window=window,
                items=items,
                computed_at=BASE - timedelta(hours=6),
            )
            per_zone.append(
                Template(
                    plan=_split(plan.model_dump_json()),
                    digest=_split(plan.model_dump_json(exclude={"computed_at"})),
                    firing=timer_plan(plan).model_dump_json(),
                )
            )
        templates.append(per_zone)
    return templates


def fleet_rows(count: int) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """Per computer: its `computers` row (with its plan and the plan's digest) and its
    `timer_plans` row (what the planner keeps for firing its timers)."""
    templates = plan_templates()
    registered, checked_in = BASE - timedelta(days=30), BASE - timedelta(hours=1)
    zones = len(ZONES)
    for index in range(count):
        cid = computer_id(index)
        plan, digest, firing = templates[index % zones][(index // zones) % 2].texts(cid)
        yield (
            (
                cid,
                f"{cid}.corp.example",
                ZONES[index % zones],
                registered,
                checked_in,
                plan,
                digest,
            ),
            (cid, digest, firing),
        )


def timer_rows(count: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED)
    zones = len(ZONES)
    for index in range(count):
        kind = KINDS[(index // (2 * zones)) % 2]
        yield (
            computer_id(index),
            kind,
            BASE - timedelta(seconds=rng.random() * DUE_SPREAD_SECONDS),
        )


@dataclass(frozen=True)
class Load:
    computers: int
    copy_seconds: float
    vacuum_seconds: float
    plan_bytes: tuple[int, int]
    sizes: dict[str, str]


async def load_fleet(url: str, count: int) -> Load:
    """COPY the computers and their timers (two connections at once), then VACUUM ANALYZE."""
    settings = {"search_path": SCHEMA}
    first, second = (
        await asyncpg.connect(url, server_settings=settings),
        await asyncpg.connect(url, server_settings=settings),
    )
    try:
        started = time.perf_counter()
        await asyncio.gather(
            first.copy_records_to_table(
                "computers",
                schema_name=SCHEMA,
                columns=[
                    "computer_id",
                    "hostname",
                    "timezone",
                    "registered_at",
                    "last_checkin_at",
                    "plan",
                    "plan_hash",
                ],
                records=(computer for computer, _ in fleet_rows(count)),
            ),
            second.copy_records_to_table(
                "timers",
                schema_name=SCHEMA,
                columns=["computer_id", "kind", "due_at"],
                records=timer_rows(count),
            ),
        )
        await second.copy_records_to_table(
            "timer_plans",
            schema_name=SCHEMA,
            columns=["computer_id", "plan_hash", "firing"],
            records=(firing for _, firing in fleet_rows(count)),
        )
        copied = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(
            first.execute("VACUUM (ANALYZE) computers"),
            second.execute("VACUUM (ANALYZE) timers, timer_plans"),
        )
        vacuumed = time.perf_counter() - started
        loaded = await first.fetchval("SELECT count(*) FROM timers WHERE due_at <= $1", BASE)
        if loaded != count:
            raise RuntimeError(f"{loaded} due timers loaded for {count} computers")
        row = await first.fetchrow(
            "SELECT min(octet_length(plan::text)) AS low, max(octet_length(plan::text)) AS high"
            " FROM (SELECT plan FROM computers LIMIT 8) AS p"
        )
        assert row is not None
        sizes = {
            r["name"]: r["size"]
            for r in await first.fetch(
                "SELECT c.relname AS name, pg_size_pretty(pg_total_relation_size(c.oid)) AS size"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relname IN ('computers', 'timers', 'timer_plans')",
                SCHEMA,
            )
        }
    finally:
        await first.close()
        await second.close()
    return Load(count, copied, vacuumed, (row["low"], row["high"]), sizes)
