"""Phases 2 and 3, the raw baselines: plain aio-pika publishing the same instructions; plain
asyncpg + aio-pika claiming due timers, writing and committing their outbox rows and publishing
them with confirms, batch after batch."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from bench.bench_scheduler_timers.backlog import combine_usage
from bench.bench_scheduler_timers.fleet import BASE, INSTALL_ROWS, SCHEMA
from bench.common.baselines import (
    RawMessage,
    mirror_outbox,
    raw_claim_outbox_publish,
    raw_publish,
)
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

    @classmethod
    def combine(cls, rounds: list[Rate]) -> Rate:
        return cls(
            sum(r.count for r in rounds),
            sum(r.seconds for r in rounds),
            combine_usage([r.usage for r in rounds]),
        )


RAW_OUTBOX = "bench_raw_outbox"
"""The raw baseline's outbox: shaped like the scheduler's, with a sequence of its own."""


async def instructions(infra: Infra, count: int, after_seq: int) -> list[tuple[RawMessage, str]]:
    """The first `count` instructions of a lockgate pass (outbox seq > `after_seq`) as they
    went out (body, headers, properties, routing key), each with its envelope as stored."""
    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            f"SELECT routing_key, envelope::text AS envelope, body FROM outbox"
            f" WHERE seq > $2 AND {INSTALL_ROWS} ORDER BY seq LIMIT $1",
            count,
            after_seq,
        )
    finally:
        await conn.close()
    items: list[tuple[RawMessage, str]] = []
    for row in rows:
        envelope = Envelope.model_validate_json(row["envelope"])
        properties = {
            "headers": dict(envelope.headers()),
            "message_id": envelope.id,
            "type": envelope.type,
            "timestamp": envelope.time,
            "app_id": envelope.source,
        }
        items.append(((bytes(row["body"]), properties, row["routing_key"]), row["envelope"]))
    return items


async def raw_publish_phase(infra: Infra, items: list[tuple[RawMessage, str]], batch: int) -> Rate:
    """Plain aio-pika, one confirm channel, gathers of `batch` publishes, all confirmed."""
    messages = [message for message, _ in items]
    meter = CpuMeter(database_name(infra.database_url))
    seconds = await raw_publish(infra.amqp_url, Exchange.AGENTS.value, messages, batch)
    return Rate(len(items), seconds, meter.stop())


async def raw_claim_publish(infra: Infra, items: list[tuple[RawMessage, str]], batch: int) -> Rate:
    """Per batch: SELECT ... FOR UPDATE SKIP LOCKED LIMIT batch, DELETE them, one INSERT of
    their outbox rows, COMMIT, then publish them with confirms (bench.common.baselines)."""

    async def claim(conn: asyncpg.Connection, limit: int) -> int:
        rows = await conn.fetch(CLAIM, BASE, limit)
        if rows:
            await conn.execute(
                DELETE_CLAIMED, [r["computer_id"] for r in rows], [r["kind"] for r in rows]
            )
        return len(rows)

    conn = await asyncpg.connect(infra.database_url, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {RAW_OUTBOX}")
        await conn.execute(mirror_outbox("outbox", RAW_OUTBOX))
        meter = CpuMeter(database_name(infra.database_url))
        seconds = await raw_claim_outbox_publish(
            conn,
            infra.amqp_url,
            Exchange.AGENTS.value,
            items,
            claim=claim,
            outbox=RAW_OUTBOX,
            batch=batch,
        )
        usage = meter.stop()
        written: int = await conn.fetchval(f"SELECT count(*) FROM {RAW_OUTBOX}")
    finally:
        await conn.close()
    check(written == len(items), f"raw claim: {written} outbox rows for {len(items)}")
    return Rate(len(items), seconds, usage)
