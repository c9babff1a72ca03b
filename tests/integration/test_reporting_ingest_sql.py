"""Reporting's one-statement state upsert (services/reporting/store/states.py `upsert`)
against libs/domain/agent_reports.py `moves`, the rule's one home: for every stored state and
report time, every detection and install result earlier, at the same time or later, the
statement moves a row exactly when `moves` says so and returns the state it replaced."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from libs.contracts.agents import UpdateState
from libs.db.migrations import migrate
from libs.domain.agent_reports import NO_REPORT, Observation, moves
from services.reporting.handlers import SERVICE as REPORTING
from services.reporting.store import states
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
UPDATE = str(uuid.uuid5(uuid.NAMESPACE_URL, "lockgate-tests/upsert-rule"))
STORED: list[UpdateState] = [
    "installed",
    "needed",
    "failed",
    "installed_pending_restart",
    "not_applicable",
]
DETECTED: list[UpdateState] = ["installed", "needed", "not_applicable"]
RESULTS: list[UpdateState] = ["installed", "installed_pending_restart", "failed", "needed"]


@pytest.fixture
async def reporting(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    """A connection on reporting's schema, in a transaction rolled back afterwards."""
    await migrate(
        infra.database_url, REPORTING.name, REPORTING.migrations, REPORTING.mounted_migrations
    )
    conn = await asyncpg.connect(infra.database_url)
    await conn.execute(f"SET search_path TO {REPORTING.name}")
    transaction = conn.transaction()
    await transaction.start()
    yield conn
    await transaction.rollback()
    await conn.close()


async def test_upsert_moves_rows_exactly_as_the_domain_rule(
    reporting: asyncpg.Connection,
) -> None:
    held: dict[tuple[str, str], tuple[str, datetime | None]] = {}
    newest: dict[tuple[str, str], Observation] = {}
    stored_rows = [*((s, T) for s in STORED), (NO_REPORT, None), None]
    seen_kinds = [*((0, s) for s in DETECTED), *((1, s) for s in RESULTS)]
    for n, (stored, (rank, state), shift) in enumerate(
        itertools.product(stored_rows, seen_kinds, (-1, 0, 1))
    ):
        computer = f"pc-{n:04d}"
        if stored is not None:
            held[computer, UPDATE] = stored
        at = T + timedelta(minutes=shift)
        newest[computer, UPDATE] = Observation(
            computer,
            UPDATE,
            at,
            state,
            rank,
            0 if rank else None,
        )
    await reporting.executemany(
        "INSERT INTO computer_updates (computer_id, update_id, state, reported_at)"
        " VALUES ($1, $2, $3, $4)",
        [(c, uuid.UUID(u), s, at) for (c, u), (s, at) in held.items()],
    )

    written = await states.upsert(reporting, newest)

    expected = {
        key: held.get(key, (NO_REPORT, None))[0]
        for key, seen in newest.items()
        if key not in held or moves(*held[key], seen)
    }
    assert {(o.computer_id, o.update_id): before for o, before in written} == expected
    rows = {
        (row["computer_id"], row["update_id"]): (row["state"], row["reported_at"])
        for row in await reporting.fetch(
            "SELECT computer_id, update_id::text, state, reported_at FROM computer_updates"
            " WHERE update_id = $1",
            uuid.UUID(UPDATE),
        )
    }
    for key, seen in newest.items():
        want = (seen.state, seen.reported_at) if key in expected else held[key]
        assert rows[key] == want, key
