"""Raw baselines per size: the same rows by one asyncpg statement, the same events by aio-pika."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from bench.bench_approval_scale.phases import BASELINE_KEY, BASELINE_SINK, Received, System
from bench.common.baselines import (
    RawMessage,
    mirror_outbox,
    mirror_table,
    raw_publish,
    timed_transaction,
)
from bench.common.infra import check
from libs.contracts import approval as a
from libs.contracts.names import Exchange

SCHEMA = f"""
CREATE SCHEMA bench_baseline;
{mirror_table("approval.effective_approvals", "bench_baseline.effective")}
ALTER TABLE bench_baseline.effective
    ADD FOREIGN KEY (group_id) REFERENCES approval.groups (group_id),
    ADD FOREIGN KEY (update_id) REFERENCES approval.updates (update_id) ON DELETE CASCADE;
{mirror_outbox("approval.outbox", "bench_baseline.events")}
"""
INSERT = (
    "INSERT INTO bench_baseline.effective (update_id, group_id, action, deadline_kind,"
    " deadline_at, source_group_id, approved_at, approved_by)"
    " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
    " $6::uuid[], $7::timestamptz[], $8::text[])"
)
UPSERT = (
    INSERT + " ON CONFLICT (update_id, group_id) DO UPDATE SET action = EXCLUDED.action,"
    " deadline_kind = EXCLUDED.deadline_kind, deadline_at = EXCLUDED.deadline_at,"
    " source_group_id = EXCLUDED.source_group_id, approved_at = EXCLUDED.approved_at,"
    " approved_by = EXCLUDED.approved_by"
)
EVENTS = (
    "INSERT INTO bench_baseline.events (id, exchange, routing_key, envelope, body)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])"
)
TRUNCATE = "TRUNCATE bench_baseline.effective, bench_baseline.events"


@dataclass(frozen=True)
class Baseline:
    rows: int
    db_insert: float
    db_insert_events: float
    db_upsert: float
    db_upsert_events: float
    publish: float


async def create_schema(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()


async def effective_arrays(system: System, update_id: str, groups: set[str]) -> list[list[Any]]:
    rows = await system.db.fetch(
        "SELECT group_id, action, deadline_kind, deadline_at, source_group_id, approved_at,"
        " approved_by FROM approval.effective_approvals WHERE update_id = $1"
        " AND group_id = ANY ($2::uuid[]) ORDER BY group_id",
        uuid.UUID(update_id),
        [uuid.UUID(g) for g in groups],
    )
    check(len(rows) == len(groups), f"{len(rows)} effective rows for {len(groups)} groups")
    return [[r[column] for r in rows] for column in range(7)]


async def event_arrays(system: System, count: int) -> list[list[Any]]:
    rows = await system.db.fetch(
        "SELECT envelope::text, body FROM approval.outbox WHERE routing_key = $1"
        " ORDER BY seq DESC LIMIT $2",
        a.APPROVAL_CHANGED.routing_key(),
        count,
    )
    check(len(rows) == count, f"{len(rows)} outbox rows to copy, wanted {count}")
    return [
        [uuid.uuid4() for _ in rows],
        [Exchange.EVENTS.value] * count,
        [a.APPROVAL_CHANGED.routing_key()] * count,
        [r["envelope"] for r in rows],
        [bytes(r["body"]) for r in rows],
    ]


async def baseline_db(
    url: str, update_id: str, columns: list[list[Any]], events: list[list[Any]]
) -> tuple[float, float, float, float]:
    """(insert, insert + events, upsert, upsert + events) seconds of the same rows."""
    uid = uuid.UUID(update_id)
    # columns: group_id, action, deadline_kind, deadline_at, source_group_id, approved_at,
    # approved_by; the upsert moves deadline_at so that every row changes.
    later = [None if at is None else at + timedelta(days=1) for at in columns[3]]
    inserted = [uid, *columns]
    upserted = [uid, columns[0], columns[1], columns[2], later, *columns[4:]]
    empty: list[Any] = [uid, *([] for _ in range(7))]
    conn = await asyncpg.connect(url)
    try:
        # Prepare every statement once (asyncpg caches them), so no run pays for that.
        await conn.execute(UPSERT, *empty)
        await conn.execute(INSERT, *empty)
        await conn.execute(EVENTS, *([] for _ in range(5)))
        await conn.execute(TRUNCATE)
        insert = await timed_transaction(conn, [(INSERT, inserted)])
        upsert = await timed_transaction(conn, [(UPSERT, upserted)])
        await conn.execute(TRUNCATE)
        insert_events = await timed_transaction(conn, [(INSERT, inserted), (EVENTS, events)])
        events[0] = [uuid.uuid4() for _ in events[0]]
        upsert_events = await timed_transaction(conn, [(UPSERT, upserted), (EVENTS, events)])
        counted = await conn.fetchval("SELECT count(*) FROM bench_baseline.effective")
        check(counted == len(columns[0]), f"baseline wrote {counted} rows")
        await conn.execute(TRUNCATE)
    finally:
        await conn.close()
    return insert, insert_events, upsert, upsert_events


async def baseline_publish(system: System, messages: list[Received]) -> float:
    """The same bodies and headers, confirmed in batches of the relay's size."""
    items: list[RawMessage] = [(m.body, {"headers": m.headers}, BASELINE_KEY) for m in messages]
    seconds = await raw_publish(
        system.infra.amqp_url, Exchange.EVENTS.value, items, system.settings.outbox_batch_size
    )
    queued = await system.queues.depth(BASELINE_SINK)
    check(queued == len(messages), f"baseline sink holds {queued} of {len(messages)}")
    await system.queues.purge(BASELINE_SINK)
    return seconds


async def baseline(
    system: System, update_id: str, groups: set[str], messages: list[Received]
) -> Baseline:
    columns = await effective_arrays(system, update_id, groups)
    events = await event_arrays(system, len(groups))
    insert, insert_events, upsert, upsert_events = await baseline_db(
        system.infra.database_url, update_id, columns, events
    )
    publish = await baseline_publish(system, messages)
    return Baseline(len(groups), insert, insert_events, upsert, upsert_events, publish)
