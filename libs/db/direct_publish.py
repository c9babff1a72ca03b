"""Outbox rows their writer publishes itself, right after its transaction commits.

A periodic task that writes a batch of events (the scheduler's timers: one instruction per
fired timer) already holds them in memory when it commits. Instead of waiting for the relay
(libs/db/outbox.py) to read them back, it writes them *leased*: `published_at` is
`'infinity'`, which the relay, reading only rows with `published_at IS NULL`, leaves alone.
Once committed, `publish` sends them with publisher confirms, marks the confirmed prefix
published and hands the rest back to the relay (`published_at` NULL). A writer that dies
between its commit and its mark leaves its lease behind: `release_expired` (run by the
writers, so by any replica) hands leases older than `lease` to the relay. Nothing is lost:
every row is published by its writer or by the relay, at least once (consumers dedupe by
message id, as after any relay retry).

Order. The relay publishes in `seq` order, which is commit order for transactions that do
not overlap. Direct publishing keeps that order for what one writer publishes:

- `write` leases the rows only when no row is waiting for the relay (`published_at IS NULL`:
  something committed before and not yet published); otherwise they are written as ordinary
  rows and the relay sends them after the older ones;
- one writer publishes its batches one after the other (the caller awaits the previous
  `publish` before starting the next); what a failed publish did not send goes back to the
  relay, and the writer's next batch, already leased, follows it there while an older row
  is unpublished (`older_waiting`); later batches find it waiting and are written for the
  relay, until it has sent them.

What it does not order: two writers' leased batches in flight at the same moment (two
replicas firing timers) go out side by side, and a row committed by another transaction
while a leased batch is in flight may reach the broker before that batch. A schema may use
it only for messages that need no order with each other beyond that; the scheduler's timer
instructions qualify (services/scheduler/use_cases/timers.py says why).

A schema that uses it needs the index that finds leases (`outbox_leased`, e.g.
services/scheduler/migrations/0010_timers_narrow.sql).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aio_pika import DeliveryMode
from pamqp.commands import Basic
from pamqp.common import FieldTable

from libs.bus.bus import Bus, Prepared
from libs.contracts.envelope import CONTENT_TYPE, Envelope
from libs.contracts.spec import Contract, EventSpec
from libs.db.outbox import wake_relays
from libs.db.pool import Connection, rows_affected
from libs.observability import metrics

log = structlog.get_logger(__name__)

Event = tuple[EventSpec[Any], Contract, str | None]
"""An event to write: its spec, its body and its subject."""


@dataclass
class Written:
    """Rows one transaction wrote (`write`), to hand to `publish` once it has committed."""

    seqs: list[int] = field(default_factory=list)
    """Their outbox `seq`, in the order of `rows`."""
    rows: list[tuple[Envelope, bytes, str, str]] = field(default_factory=list)
    """(envelope, body, exchange, routing key) of each row."""
    leased: bool = False
    """True: the writer publishes them; False: the relay does (or there were none)."""

    def __len__(self) -> int:
        return len(self.seqs)

    def prepared(self) -> list[Prepared]:
        """Each row ready for the wire, as the relay sends it (`properties`)."""
        return [(body, properties(e), exchange, key) for e, body, exchange, key in self.rows]


def properties(envelope: Envelope) -> Basic.Properties:
    """The AMQP properties `to_amqp` gives `envelope` (libs/bus/codec.py), made directly:
    no aio-pika Message, no JSON read back (`stored_properties` reads the stored text)."""
    at = envelope.time
    headers: FieldTable = {
        "ce-id": envelope.id,
        "ce-source": envelope.source,
        "ce-type": envelope.type,
        "ce-time": at.astimezone(UTC).isoformat(),
        "ce-specversion": envelope.specversion,
    }
    if envelope.subject is not None:
        headers["ce-subject"] = envelope.subject
    return Basic.Properties(
        content_type=CONTENT_TYPE,
        headers=headers,
        delivery_mode=DeliveryMode.PERSISTENT,
        priority=0,
        correlation_id=envelope.correlation_id,
        message_id=envelope.id,
        timestamp=at,
        message_type=envelope.type,
        app_id=envelope.source,
    )


async def write(
    conn: Connection,
    events: Sequence[Event],
    *,
    source: str,
    now: datetime | None = None,
    correlation_id: str | None = None,
    lease: bool = True,
) -> Written:
    """Write `events` to the outbox inside the caller's open transaction, in one statement,
    leased unless rows are waiting for the relay (see the module's docstring) or `lease` is
    False (the relay publishes them)."""
    if not events:
        return Written()
    at = now or datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("write: `now` must be timezone-aware")
    ids = [uuid.uuid4() for _ in events]
    # What Envelope.new makes, without validating again what this function chose itself.
    envelopes = [
        Envelope.model_construct(
            id=str(message_id),
            source=source,
            type=spec.type,
            time=at,
            subject=subject,
            specversion="1.0",
            correlation_id=correlation_id,
        )
        for message_id, (spec, _, subject) in zip(ids, events, strict=True)
    ]
    bodies = [event.model_dump_json().encode() for _, event, _ in events]
    exchanges = [spec.exchange.value for spec, _, _ in events]
    keys = [spec.routing_key(e.subject) for (spec, _, _), e in zip(events, envelopes, strict=True)]
    rows = await conn.fetch(
        "WITH waiting AS (SELECT NOT $6 OR EXISTS"
        "  (SELECT 1 FROM outbox WHERE published_at IS NULL) AS w)"
        " INSERT INTO outbox (id, exchange, routing_key, envelope, body, published_at)"
        " SELECT e.id, e.exchange, e.routing_key, e.envelope, e.body,"
        "  CASE WHEN waiting.w THEN NULL ELSE 'infinity'::timestamptz END"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])"
        "  WITH ORDINALITY AS e (id, exchange, routing_key, envelope, body, n), waiting"
        " ORDER BY e.n"
        " RETURNING seq, published_at IS NOT NULL AS leased",
        ids,
        exchanges,
        keys,
        [e.model_dump_json() for e in envelopes],
        bodies,
        lease,
    )
    return Written(
        # In `events` order: the rows were inserted in that order, each taking the next seq.
        seqs=sorted(r["seq"] for r in rows),
        rows=list(zip(envelopes, bodies, exchanges, keys, strict=True)),
        leased=bool(rows[0]["leased"]),
    )


def committed(schema: str, written: Written) -> None:
    """After the writer's commit: wake `schema`'s relay when the rows are its to send."""
    if written.seqs and not written.leased:
        wake_relays(schema)


async def publish(conn: Connection, bus: Bus, written: Written, *, schema: str) -> bool:
    """Publish committed leased rows with confirms; mark the confirmed prefix published (on
    `conn`, outside any transaction) and hand the rest to `schema`'s relay. True when every
    row was published.

    Raises only when the database fails the final mark: the rows then stay leased (and
    published) until `release_expired` hands them to the relay, which sends them again.
    """
    if not written.leased or not written.seqs:
        return True
    confirmed = await bus.publish_prepared(written.prepared())
    prefix = next((i for i, ok in enumerate(confirmed) if not ok), len(confirmed))
    await conn.execute(
        "UPDATE outbox SET published_at = CASE WHEN seq = ANY ($1::bigint[]) THEN now() END"
        " WHERE seq = ANY ($2::bigint[])"
        " AND (published_at IS NULL OR published_at = 'infinity')",
        written.seqs[:prefix],
        written.seqs,
    )
    metrics.OUTBOX_PUBLISHED.inc(prefix)
    if prefix < len(written.seqs):
        metrics.OUTBOX_PUBLISH_ERRORS.inc()
        log.info(
            "outbox.direct_publish_incomplete",
            published=prefix,
            handed_to_relay=len(written.seqs) - prefix,
        )
        wake_relays(schema)
        return False
    return True


async def older_waiting(conn: Connection, written: Written) -> bool:
    """Whether a row older than `written` is still unpublished (waiting for the relay, or
    leased to a writer that has not marked it): `written` must not overtake it."""
    if not written.seqs:
        return False
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND seq < $1)"
        " OR EXISTS (SELECT 1 FROM outbox WHERE published_at = 'infinity' AND seq < $1)",
        written.seqs[0],
    )
    return found


async def release(conn: Connection, written: Written, *, schema: str) -> None:
    """Hand committed leased rows to `schema`'s relay unpublished (an earlier batch of the
    same writer did not go out whole: these must follow it, not overtake it)."""
    if written.leased and written.seqs:
        await conn.execute(
            "UPDATE outbox SET published_at = NULL"
            " WHERE seq = ANY ($1::bigint[]) AND published_at = 'infinity'",
            written.seqs,
        )
        wake_relays(schema)


async def release_expired(conn: Connection, lease: timedelta, *, schema: str) -> int:
    """Hand to `schema`'s relay the leased rows whose writer has not finished within `lease`
    of its transaction's start (it died, or lost the database before its mark)."""
    status: str = await conn.execute(
        "UPDATE outbox SET published_at = NULL"
        " WHERE published_at = 'infinity' AND created_at < now() - $1::interval",
        lease,
    )
    released = rows_affected(status)
    if released:
        log.warning("outbox.leases_expired", rows=released)
        wake_relays(schema)
    return released
