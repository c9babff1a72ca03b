"""Phases 2 and 3: plain aio-pika publishing the same instructions; plain SKIP LOCKED claims."""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from bench.bench_scheduler_timers.fleet import BASE, INSTALL_ROWS, SCHEMA
from bench.common.baselines import RawMessage, raw_publish
from bench.common.infra import check
from bench.common.meters import CpuMeter, CpuUsage
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from libs.db.pool import database_name
from tests.support.infra import Infra

CLAIM = (
    "SELECT computer_id, kind, due_at FROM timers WHERE due_at <= $1"
    " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
)
DELETE_CLAIMED = (
    "DELETE FROM timers t USING unnest($1::text[], $2::text[]) AS d (computer_id, kind)"
    " WHERE t.computer_id = d.computer_id AND t.kind = d.kind"
)


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float
    usage: CpuUsage

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def instructions(infra: Infra, count: int) -> list[RawMessage]:
    """The first `count` instructions of phase 1 as they went out: body, headers, properties."""
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            f"SELECT routing_key, envelope::text AS envelope, body FROM outbox"
            f" WHERE {INSTALL_ROWS} ORDER BY seq LIMIT $1",
            count,
        )
    finally:
        await conn.close()
    items: list[RawMessage] = []
    for row in rows:
        envelope = Envelope.model_validate_json(row["envelope"])
        properties = {
            "headers": dict(envelope.headers()),
            "message_id": envelope.id,
            "type": envelope.type,
            "timestamp": envelope.time,
            "app_id": envelope.source,
        }
        items.append((bytes(row["body"]), properties, row["routing_key"]))
    return items


async def raw_publish_phase(infra: Infra, items: list[RawMessage], batch: int) -> Rate:
    """Plain aio-pika, one confirm channel, gathers of `batch` publishes, all confirmed."""
    meter = CpuMeter(database_name(infra.database_url))
    seconds = await raw_publish(infra.amqp_url, Exchange.AGENTS.value, items, batch)
    return Rate(len(items), seconds, meter.stop())


async def raw_claim(infra: Infra, count: int, batch: int) -> Rate:
    """SELECT ... FOR UPDATE SKIP LOCKED LIMIT batch, then DELETE them, per transaction."""
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        claimed = 0
        meter = CpuMeter(database_name(infra.database_url))
        started = time.perf_counter()
        while claimed < count:
            async with conn.transaction():
                rows = await conn.fetch(CLAIM, BASE, min(batch, count - claimed))
                if not rows:
                    break
                await conn.execute(
                    DELETE_CLAIMED, [r["computer_id"] for r in rows], [r["kind"] for r in rows]
                )
            claimed += len(rows)
        seconds = time.perf_counter() - started
        usage = meter.stop()
    finally:
        await conn.close()
    check(claimed == count, f"raw claim: only {claimed} due timers left to claim, wanted {count}")
    return Rate(claimed, seconds, usage)
