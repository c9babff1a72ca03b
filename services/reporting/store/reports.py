"""What one batch of agent reports moves besides the states, in one statement: per-update
counters and their changed marks, the computers' contact and counters, install attempts.
Each table's rows are taken in one order (no deadlock between replicas)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from libs.db.pool import Connection
from services.reporting.domain.batches import Attempt
from services.reporting.domain.counts import ComputerMove, CounterMove
from services.reporting.store.computers import computer_columns


async def record(
    conn: Connection,
    *,
    counters: Sequence[CounterMove],
    computer_ids: Sequence[str],
    computer_moves: Sequence[ComputerMove],
    attempts: Sequence[Attempt],
    now: datetime,
) -> None:
    """In one statement: the per-update counters move (in the order given) and their
    updates are marked changed (store.aggregates.apply_deltas); these computers reported at
    `now` and their counters move, their rows locked in id order and only a row so locked
    updated; every attempt is kept, repeats ignored."""
    ids = sorted(set(computer_ids))
    await conn.execute(
        "WITH moved AS (INSERT INTO update_counts (update_id, state, n)"
        "   SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])"
        "   ON CONFLICT (update_id, state) DO UPDATE SET n = update_counts.n + EXCLUDED.n"
        "   RETURNING update_id),"
        " dirty AS (INSERT INTO compliance_dirty (update_id)"
        "   SELECT DISTINCT update_id FROM moved ORDER BY update_id ON CONFLICT DO NOTHING),"
        " locked AS MATERIALIZED (SELECT computer_id FROM computers"
        "   WHERE computer_id = ANY ($4::text[]) ORDER BY computer_id FOR UPDATE),"
        " contact AS (UPDATE computers c SET last_contact_at = greatest(c.last_contact_at, $10),"
        "   installed = c.installed + k.i, needed = c.needed + k.n, failed = c.failed + k.f,"
        "   pending_restart = c.pending_restart + k.p,"
        "   not_applicable = c.not_applicable + k.na"
        "   FROM unnest($4::text[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[])"
        "     AS k (c, i, n, f, p, na)"
        "   WHERE c.computer_id = k.c AND k.c IN (SELECT computer_id FROM locked))"
        " INSERT INTO install_attempts (computer_id, update_id, started_at, finished_at,"
        " return_code, outcome, operation)"
        " SELECT * FROM unnest($11::text[], $12::uuid[], $13::timestamptz[],"
        " $14::timestamptz[], $15::bigint[], $16::text[], $17::text[]) ON CONFLICT DO NOTHING",
        [m.update_id for m in counters],
        [m.state for m in counters],
        [m.n for m in counters],
        ids,
        *computer_columns(ids, computer_moves),
        now,
        [a.computer_id for a in attempts],
        [a.update_id for a in attempts],
        [a.started_at for a in attempts],
        [a.finished_at for a in attempts],
        [a.return_code for a in attempts],
        [a.outcome for a in attempts],
        [a.operation for a in attempts],
    )
