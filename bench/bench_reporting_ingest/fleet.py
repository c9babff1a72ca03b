"""The fleet and its report stream: 100,000 computers, 200 updates, 10 reports per computer."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.common.baselines import mirror_table
from libs.contracts import agents as ag
from libs.contracts.approval import ROOT_GROUP_ID
from libs.contracts.catalog import ReturnCode
from libs.domain.agent_reports import STICKY, outcome_of

FLEET = 100_000
UPDATES = 200
REPORTS_PER_COMPUTER = 10
STREAM = FLEET * REPORTS_PER_COMPUTER
APPLICABLE = 8
DETECTED = 4
NOT_APPLICABLE_SHARE = 0.2
INSTALL_ROUNDS = 14  # an update installs in round randrange(14): rounds >= 10 never come
CODES = (0, 0, 0, 0, 0, 0, 3010, 3010, 3010, 1603)
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
REGISTERED = datetime(2026, 10, 1, tzinfo=UTC)
UPDATE_IDS = [
    str(uuid.uuid5(uuid.NAMESPACE_URL, f"lockgate-bench/update/{k}")) for k in range(UPDATES)
]
THIRD_PARTY_CODES = [
    ReturnCode(code=0, outcome="success"),
    ReturnCode(code=3010, outcome="success_restart_required"),
    ReturnCode(code=1641, outcome="success_restart_required"),
]
INSTALL_STATE = {
    "success": "installed",
    "success_restart_required": "installed_pending_restart",
    "failure": "failed",
}
RAW_SCHEMA = f"""
CREATE SCHEMA bench_raw;
{mirror_table("reporting.computer_updates", "bench_raw.computer_updates")}
"""


def computer_id(computer: int) -> str:
    return f"pc-{computer:06d}"


@dataclass(frozen=True)
class Applicable:
    """One update applicable to (or detected as not applicable on) one computer."""

    update: int
    not_applicable: bool
    install_round: int
    code: int


def profile_of(computer: int) -> list[Applicable]:
    """The computer's updates: the same draw for every report of that computer."""
    rng = random.Random(computer)
    return [
        Applicable(
            update,
            rng.random() < NOT_APPLICABLE_SHARE,
            rng.randrange(INSTALL_ROUNDS),
            rng.choice(CODES),
        )
        for update in rng.sample(range(UPDATES), APPLICABLE)
    ]


def detected(applicable: Applicable, round_: int) -> ag.DetectionState:
    if applicable.not_applicable:
        return "not_applicable"
    if round_ > applicable.install_round and applicable.code != 1603:
        return "installed"
    return "needed"


def report(index: int) -> ag.AgentStatus:
    """Report `index` of the stream: round index // FLEET of computer index % FLEET."""
    round_, computer = divmod(index, FLEET)
    at = T0 + timedelta(hours=round_, seconds=computer % 3600)
    profile = profile_of(computer)
    installing = [a for a in profile if not a.not_applicable and a.install_round == round_]
    others = [a for a in profile if a not in installing]
    rng = random.Random(index)
    return ag.AgentStatus(
        computer_id=computer_id(computer),
        reported_at=at,
        detections=[
            ag.DetectionResult(update_id=UPDATE_IDS[a.update], state=detected(a, round_))
            for a in rng.sample(others, min(DETECTED, len(others)))
        ],
        installs=[
            ag.InstallResult(
                update_id=UPDATE_IDS[a.update],
                return_code=a.code,
                started_at=at - timedelta(minutes=3),
                finished_at=at - timedelta(minutes=1),
            )
            for a in installing
        ],
    )


def bodies_of(first: int, count: int) -> list[bytes]:
    return [report(i).model_dump_json().encode() for i in range(first, first + count)]


def return_codes(update: int) -> list[ReturnCode]:
    """One update in ten is third party with its own map; the rest use the default map."""
    return THIRD_PARTY_CODES if update % 10 == 0 else []


RawRow = tuple[str, str, str, datetime]


@dataclass(frozen=True)
class Derived:
    """What the raw upsert writes, derived from the message bodies before its clock starts."""

    batches: list[tuple[list[str], list[str], list[str], list[datetime]]]
    rows: int
    detections: int
    installs: int


def derive(bodies: list[bytes], batch: int) -> Derived:
    """Per batch of `batch` messages: the newest (state, time) per (computer, update), less
    the detections that do not move what is stored (a later detection does not hide a failed
    install or a pending restart: libs.domain.agent_reports.STICKY).

    Written independently of services/reporting (an install outranks a detection of the
    same report time), so the comparison of the stored rows checks both.
    """
    codes = {UPDATE_IDS[k]: return_codes(k) for k in range(UPDATES)}
    stored: dict[tuple[str, str], str] = {}
    batches = []
    rows = detections = installs = 0
    for first in range(0, len(bodies), batch):
        newest: dict[tuple[str, str], tuple[datetime, int, str]] = {}
        for body in bodies[first : first + batch]:
            status = ag.AgentStatus.model_validate_json(body)
            seen: list[tuple[str, int, str]] = [
                (d.update_id, 0, d.state) for d in status.detections
            ]
            for result in status.installs:
                outcome = outcome_of(result.return_code, codes[result.update_id])
                seen.append((result.update_id, 1, INSTALL_STATE[outcome]))
            detections += len(status.detections)
            installs += len(status.installs)
            for update_id, rank, state in seen:
                key = (status.computer_id, update_id)
                held = newest.get(key)
                if held is None or (status.reported_at, rank) >= held[:2]:
                    newest[key] = (status.reported_at, rank, state)
        rows += len(newest)
        moving = {
            key: (at, state)
            for key, (at, rank, state) in newest.items()
            if rank or (stored.get(key), state) not in STICKY
        }
        stored.update((key, state) for key, (_, state) in moving.items())
        batches.append(
            (
                [c for c, _ in moving],
                [u for _, u in moving],
                [state for _, state in moving.values()],
                [at for at, _ in moving.values()],
            )
        )
    return Derived(batches, rows, detections, installs)


async def load_fleet(url: str) -> dict[str, float]:
    """COPY the read copies reporting needs; returns seconds per table."""
    conn = await asyncpg.connect(url)
    taken: dict[str, float] = {}
    contact = datetime.now(UTC)  # every computer in contact (none counts as not reporting)
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "computers",
            schema_name="reporting",
            columns=["computer_id", "hostname", "registered_at", "last_contact_at"],
            records=[
                (computer_id(i), f"host-{i:06d}.fleet.example", REGISTERED, contact)
                for i in range(FLEET)
            ],
        )
        taken["computers"] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "updates",
            schema_name="reporting",
            columns=[
                "update_id",
                "revision",
                "kb",
                "title",
                "classification",
                "severity",
                "return_codes",
                "superseded",
            ],
            records=[
                (
                    uuid.UUID(UPDATE_IDS[k]),
                    1,
                    f"50{k:05d}",
                    f"Bench update {k}",
                    "Security Updates" if k % 3 else "Critical Updates",
                    ("Critical", "Important", "Moderate", None)[k % 4],
                    json.dumps([c.model_dump() for c in return_codes(k)]),
                    False,
                )
                for k in range(UPDATES)
            ],
        )
        taken["updates"] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "group_approvals",
            schema_name="reporting",
            columns=["group_id", "update_id", "action"],
            records=[
                (uuid.UUID(ROOT_GROUP_ID), uuid.UUID(u), "required_install") for u in UPDATE_IDS
            ],
        )
        taken["group_approvals"] = time.perf_counter() - started
        await conn.execute(
            "ANALYZE reporting.computers, reporting.updates, reporting.group_approvals"
        )
        await conn.execute(RAW_SCHEMA)
    finally:
        await conn.close()
    return taken
