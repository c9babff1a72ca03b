"""Approving one update at the root of a large group tree, against raw asyncpg + aio-pika.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_approval_scale [--sizes 1000,2500,5000,10000]
        [--computers-per-group 100] [--no-profile]

Each size gets a vhost and a database of its own (tests.support.infra.local_infra), dropped
at the end even on failure. The approval service (services.approval.handlers.SERVICE) runs
in this process through ServiceProcess, which applies its migrations; then synthetic data
is bulk-loaded straight into the `approval` schema with COPY (not timed): a seeded random
tree of `groups` groups (All computers included; 10 top-level groups, depth at most 8,
unique names), `groups * computers-per-group` computers, each a member of one or two
non-root groups, and a few updates. The loading session disables foreign-key triggers
(`session_replication_role = replica`; the rows are consistent by construction), then
ANALYZE and CHECKPOINT run so a checkpoint does not land in a timed phase.

Timed phases, each one `update.approve.v1` sent with libs.bus.RpcClient:

* warm-up: update W at the root (required install, one week); every group changes;
* root: update X at the root (required install, one week); every group changes;
* root again: X at the root with a two-week deadline; every group changes again;
* child: X on a group at depth 1 or 2 whose subtree is closest to 1/10 of the tree
  (required install, one month); the groups of that subtree change.

For each: `reply` is from sending the command to its reply (the service replies after its
transaction committed: effective approvals of every group and the events are in
`approval.outbox`); `first event` / `published` are when a quorum sink queue bound to
`approval.changed.v1` on `lockgate.events` holds its first / all expected messages (polled
every 10 ms with a passive declare; the outbox relay publishes with publisher confirms);
`marked` is when `approval.outbox` has no unpublished row left. Each phase is then checked:
the reply's counts, the effective rows of the update in the database, the outbox rows it
added, and the sink's messages (one per changed group, each group once, none per computer).

Baselines, in the same run, on the same database and broker:

* db: raw asyncpg on its own connection, one `INSERT ... SELECT FROM unnest(...)` of the same
  (group, update) rows in a transaction, into a copy of `effective_approvals` (same columns,
  primary key, index and foreign keys). `db insert` for fresh rows (compared with the first
  root approval), `db upsert` with ON CONFLICT DO UPDATE over existing rows (compared with
  the later phases). `+events` also inserts, in the same transaction, one outbox-like row per
  event with the same envelope and body bytes the service wrote.
* publish: raw aio-pika on its own connection and confirm channel, the same bodies and
  headers the sink received, persistent, in batches of the relay's size
  (`outbox_batch_size`) awaiting each batch's confirms, into a quorum sink of its own.

Ratios: `reply / db` (state + events in the outbox, against the raw insert of the state
rows) and `published / (db + publish)`.

Memory: RSS of this process (service, client and benchmark together) sampled from
/proc/self/statm every 5 ms during a phase (bench.bench_pipeline.RssSampler). CPU during a
phase: this process (getrusage), RabbitMQ's beam.smp and every PostgreSQL process alive at
both ends of the phase (/proc/<pid>/stat; other sessions' backends included), and the
share of both cores busy (/proc/stat, everything included).

With the profile (default; off with --no-profile), at the largest size two more root
approvals of W run after the timed phases, not counted: one with wall-clock timers on
every SQL statement and on the handler's, the outbox's and the relay's steps (per-call
times of the repeated ones too), one under cProfile; then EXPLAIN ANALYZE of the handler's
two bulk statements (effective upsert, outbox insert) and of the relay's mark-published
UPDATE, each rolled back.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bench.bench_pipeline import (
    MIB,
    RssSampler,
    busy_since,
    cpu_seconds,
    environment,
    machine_ticks,
)
from libs.bus import Bus, RpcClient
from libs.bus.bus import Binding
from libs.contracts import approval as a
from libs.contracts.names import Exchange
from libs.db.outbox import Outbox, OutboxRelay
from libs.observability.logging import configure_logging
from libs.service.pipeline import Pipeline
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval import store
from services.approval.handlers import SERVICE as APPROVAL
from services.approval.use_cases import approvals
from tests.support.infra import Infra, local_infra

SIZES = (1_000, 2_500, 5_000, 10_000)
COMPUTERS_PER_GROUP = 100
TOP_LEVEL_GROUPS = 10
MAX_DEPTH = 8
SEED = 20_261_125
CHILD_SHARE = 0.1
RPC_TIMEOUT = 300.0
DRAIN_TIMEOUT = 300.0
POLL_SECONDS = 0.01
COPY_CHUNK = 100_000

SINK_QUEUE = "bench.approval-changed-sink"
BASELINE_SINK = "bench.baseline-sink"
BASELINE_KEY = "bench.baseline.changed"
ROOT = uuid.UUID(a.ROOT_GROUP_ID)
REGISTERED_AT = datetime(2026, 1, 1, tzinfo=UTC)

BASELINE_SCHEMA = """
CREATE SCHEMA bench_baseline;
CREATE TABLE bench_baseline.effective (LIKE approval.effective_approvals INCLUDING ALL);
ALTER TABLE bench_baseline.effective
    ADD FOREIGN KEY (group_id) REFERENCES approval.groups (group_id),
    ADD FOREIGN KEY (update_id) REFERENCES approval.updates (update_id) ON DELETE CASCADE;
CREATE TABLE bench_baseline.events (
    seq          bigserial   PRIMARY KEY,
    id           uuid        NOT NULL UNIQUE,
    exchange     text        NOT NULL,
    routing_key  text        NOT NULL,
    envelope     jsonb       NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX ON bench_baseline.events (seq) WHERE published_at IS NULL;
"""
BASELINE_INSERT = (
    "INSERT INTO bench_baseline.effective (update_id, group_id, action, deadline_kind,"
    " deadline_at, source_group_id, approved_at, approved_by)"
    " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
    " $6::uuid[], $7::timestamptz[], $8::text[])"
)
BASELINE_UPSERT = (
    BASELINE_INSERT + " ON CONFLICT (update_id, group_id) DO UPDATE SET action = EXCLUDED.action,"
    " deadline_kind = EXCLUDED.deadline_kind, deadline_at = EXCLUDED.deadline_at,"
    " source_group_id = EXCLUDED.source_group_id, approved_at = EXCLUDED.approved_at,"
    " approved_by = EXCLUDED.approved_by"
)
BASELINE_EVENTS = (
    "INSERT INTO bench_baseline.events (id, exchange, routing_key, envelope, body)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])"
)
# The service's own statements, for EXPLAIN ANALYZE (services/approval/store/approvals.py and
# libs/db/outbox.py, copied; the relay's UPDATE likewise).
EFFECTIVE_UPSERT = (
    "INSERT INTO approval.effective_approvals (update_id, group_id, action, deadline_kind,"
    " deadline_at, source_group_id, approved_at, approved_by)"
    " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
    " $6::uuid[], $7::timestamptz[], $8::text[])"
    " ON CONFLICT (update_id, group_id) DO UPDATE SET action = EXCLUDED.action,"
    " deadline_kind = EXCLUDED.deadline_kind, deadline_at = EXCLUDED.deadline_at,"
    " source_group_id = EXCLUDED.source_group_id, approved_at = EXCLUDED.approved_at,"
    " approved_by = EXCLUDED.approved_by"
)
OUTBOX_INSERT = (
    "INSERT INTO approval.outbox (id, exchange, routing_key, envelope, body)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])"
)
RELAY_MARK = "UPDATE approval.outbox SET published_at = now() WHERE seq = ANY($1::bigint[])"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = {"beam.smp": "rabbitmq", "postgres": "postgres"}


def server_cpu() -> dict[str, dict[int, float]]:
    """CPU seconds so far of every RabbitMQ (beam.smp) and PostgreSQL process, by pid."""
    found: dict[str, dict[int, float]] = {"rabbitmq": {}, "postgres": {}}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        kind = SERVERS.get(stat[stat.index("(") + 1 : stat.rindex(")")])
        if kind is not None:
            fields = stat[stat.rindex(")") + 2 :].split()
            found[kind][int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        # fields[11], fields[12]: utime and stime (fields 14 and 15 of proc(5))
    return found


def server_cpu_since(before: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds used since `before` by the processes alive at both moments."""
    now = server_cpu()
    return {
        kind: sum(now[kind][pid] - seconds for pid, seconds in pids.items() if pid in now[kind])
        for kind, pids in before.items()
    }


def check(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"check failed: {what}")


# --- synthetic data -------------------------------------------------------------------------


@dataclass(frozen=True)
class Synthetic:
    """A seeded group tree: index 0 is All computers; parents come before their children."""

    ids: list[uuid.UUID]
    parent: list[int]
    depth: list[int]
    subtree: list[int]
    """Groups in each group's subtree, itself included."""
    computers: int
    child: int
    """The group near the root whose subtree is closest to CHILD_SHARE of the tree."""

    @property
    def groups(self) -> int:
        return len(self.ids)

    def subtree_ids(self, top: int) -> set[str]:
        inside = {top}
        for index in range(top + 1, self.groups):
            if self.parent[index] in inside:
                inside.add(index)
        return {str(self.ids[index]) for index in inside}


def build_tree(groups: int, computers: int, seed: int) -> Synthetic:
    rng = random.Random(seed)
    ids = [ROOT]
    parent = [-1]
    depth = [0]
    open_parents = [0]  # groups that may take children (depth < MAX_DEPTH)
    for index in range(1, groups):
        chosen = 0 if index <= TOP_LEVEL_GROUPS else rng.choice(open_parents)
        ids.append(uuid.UUID(int=rng.getrandbits(128)))
        parent.append(chosen)
        depth.append(depth[chosen] + 1)
        if depth[index] < MAX_DEPTH:
            open_parents.append(index)
    subtree = [1] * groups
    for index in range(groups - 1, 0, -1):
        subtree[parent[index]] += subtree[index]
    target = CHILD_SHARE * groups
    near_root = [i for i in range(1, groups) if depth[i] <= 2]
    child = min(near_root, key=lambda i: (abs(subtree[i] - target), i))
    return Synthetic(ids, parent, depth, subtree, computers, child)


def group_rows(tree: Synthetic) -> Iterator[tuple[uuid.UUID, str, uuid.UUID]]:
    for index in range(1, tree.groups):
        yield tree.ids[index], f"Group {index:05d}", tree.ids[tree.parent[index]]


def computer_id(index: int) -> str:
    return f"pc-{index:07d}"


def computer_rows(tree: Synthetic) -> Iterator[tuple[str, str, datetime]]:
    for index in range(tree.computers):
        yield computer_id(index), f"PC-{index:07d}.corp.example", REGISTERED_AT


def membership_rows(tree: Synthetic, seed: int) -> Iterator[tuple[str, uuid.UUID]]:
    """Each computer in one or two distinct non-root groups."""
    rng = random.Random(seed + 1)
    last = tree.groups - 1
    for index in range(tree.computers):
        first = rng.randint(1, last)
        yield computer_id(index), tree.ids[first]
        if last > 1 and rng.random() < 0.5:
            second = rng.randint(1, last)
            while second == first:
                second = rng.randint(1, last)
            yield computer_id(index), tree.ids[second]


@dataclass(frozen=True)
class Updates:
    warmup: str
    measured: str
    others: list[str]


def update_rows(seed: int) -> tuple[Updates, list[tuple[Any, ...]]]:
    rng = random.Random(seed + 2)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(5)]
    rows = [
        (
            update_id,
            str(5_099_001 + number),
            1,
            "microsoft",
            f"2026-01 Cumulative Update for Windows (KB{5_099_001 + number})",
            "Security Updates",
            "Critical",
            ["Windows"],
            REGISTERED_AT + timedelta(days=number),
        )
        for number, update_id in enumerate(ids)
    ]
    return Updates(str(ids[0]), str(ids[1]), [str(i) for i in ids[2:]]), rows


def chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class Loaded:
    seconds: float
    computers: int
    memberships: int
    database_mib: float
    max_depth: int
    depth_counts: dict[int, int]


async def load(url: str, tree: Synthetic, seed: int) -> tuple[Loaded, Updates]:
    started = time.perf_counter()
    conn = await asyncpg.connect(url, server_settings={"search_path": "approval"})
    try:
        await conn.execute("SET session_replication_role = replica")  # no FK triggers
        await conn.copy_records_to_table(
            "groups",
            records=list(group_rows(tree)),
            columns=["group_id", "name", "parent_id"],
            schema_name="approval",
        )
        for chunk in chunks(computer_rows(tree), COPY_CHUNK):
            await conn.copy_records_to_table(
                "computers",
                records=chunk,
                columns=["computer_id", "hostname", "registered_at"],
                schema_name="approval",
            )
        memberships = 0
        for chunk in chunks(membership_rows(tree, seed), COPY_CHUNK):
            memberships += len(chunk)
            await conn.copy_records_to_table(
                "memberships",
                records=chunk,
                columns=["computer_id", "group_id"],
                schema_name="approval",
            )
        updates, rows = update_rows(seed)
        await conn.copy_records_to_table(
            "updates",
            records=rows,
            columns=[
                "update_id",
                "kb",
                "revision",
                "origin",
                "title",
                "classification",
                "severity",
                "product_families",
                "release_date",
            ],
            schema_name="approval",
        )
        await conn.execute("RESET session_replication_role")
        await conn.execute("ANALYZE")
        await conn.execute("CHECKPOINT")
        counted = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM groups) AS groups,"
            " (SELECT count(*) FROM computers) AS computers,"
            " (SELECT count(*) FROM memberships) AS memberships,"
            " pg_database_size(current_database()) AS size"
        )
    finally:
        await conn.close()
    assert counted is not None
    check(counted["groups"] == tree.groups, f"{counted['groups']} groups loaded")
    check(counted["computers"] == tree.computers, f"{counted['computers']} computers loaded")
    check(counted["memberships"] == memberships, f"{counted['memberships']} memberships loaded")
    loaded = Loaded(
        seconds=time.perf_counter() - started,
        computers=tree.computers,
        memberships=memberships,
        database_mib=counted["size"] / MIB,
        max_depth=max(tree.depth),
        depth_counts=dict(sorted(Counter(tree.depth).items())),
    )
    return loaded, updates


# --- the running system ---------------------------------------------------------------------


@dataclass
class Received:
    body: bytes
    headers: dict[str, Any]


@dataclass
class System:
    infra: Infra
    settings: Settings
    bus: Bus
    rpc: RpcClient
    db: asyncpg.Connection
    probe: AbstractChannel
    tree: Synthetic
    updates: Updates
    loaded: Loaded

    async def depth(self, queue: str) -> int:
        declared = await self.probe.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)

    async def unpublished(self) -> int:
        pending: int = await self.db.fetchval(
            "SELECT count(*) FROM approval.outbox WHERE published_at IS NULL"
        )
        return pending

    async def changed_rows(self) -> int:
        rows: int = await self.db.fetchval(
            "SELECT count(*) FROM approval.outbox WHERE routing_key = $1",
            a.APPROVAL_CHANGED.routing_key(),
        )
        return rows

    async def take(self, queue: str, expected: int) -> list[Received]:
        """Consume exactly `expected` messages from `queue`; fail on more or fewer."""
        received: list[Received] = []
        enough = asyncio.Event()
        channel = await self.bus.connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=1000)

            async def on_message(message: AbstractIncomingMessage) -> None:
                received.append(Received(message.body, dict(message.headers or {})))
                if len(received) >= expected:
                    enough.set()

            declared = await channel.get_queue(queue)
            await declared.consume(on_message, no_ack=True)
            await asyncio.wait_for(enough.wait(), DRAIN_TIMEOUT)
            await asyncio.sleep(0.3)  # anything beyond the expected count arrives by now
        finally:
            await channel.close()
        left = await self.depth(queue)
        check(
            len(received) == expected and left == 0,
            f"{queue}: {len(received)} messages received and {left} left, expected {expected}",
        )
        return received


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while not await condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {DRAIN_TIMEOUT:g} s")
        await asyncio.sleep(POLL_SECONDS)


# --- approve phases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    expected: int
    reply: float
    first_event: float
    published: float
    marked: float
    cpu: float
    rabbitmq_cpu: float
    postgres_cpu: float
    machine_busy: float
    rss_start: int
    rss_peak: int
    result: a.ApproveResult
    started_at: float
    """perf_counter() when the command was sent."""
    mean_body: float
    """Mean body size of the events, bytes."""
    messages: list[Received] = field(repr=False)


async def approve(
    system: System, name: str, update_id: str, choice: a.GroupChoice, expected: int
) -> Phase:
    """One timed approval; checks the reply, the outbox and the sink afterwards."""
    check(await system.depth(SINK_QUEUE) == 0, "the sink is empty before the phase")
    rows_before = await system.changed_rows()
    first: list[float] = []
    full: list[float] = []

    async def watch() -> None:
        while True:
            depth = await system.depth(SINK_QUEUE)
            now = time.perf_counter()
            if depth and not first:
                first.append(now)
            if depth >= expected:
                full.append(now)
                return
            await asyncio.sleep(POLL_SECONDS)

    cpu_before, ticks_before, servers_before = cpu_seconds(), machine_ticks(), server_cpu()
    with RssSampler() as rss:
        started = time.perf_counter()
        watcher = asyncio.create_task(watch())
        try:
            result = await system.rpc.call(
                a.APPROVE,
                a.Approve(updates=[update_id], groups=[choice]),
                timeout=RPC_TIMEOUT,
            )
            replied = time.perf_counter()
            await asyncio.wait_for(watcher, DRAIN_TIMEOUT)
        finally:
            watcher.cancel()

        async def outbox_marked() -> bool:
            return await system.unpublished() == 0

        await wait_until(outbox_marked, "the outbox to be marked published")
        marked = time.perf_counter()
    cpu, busy = cpu_seconds() - cpu_before, busy_since(ticks_before)
    servers = server_cpu_since(servers_before)

    check(
        result.effective_changed == expected,
        f"{name}: reply says {result.effective_changed} effective changed, expected {expected}",
    )
    check(result.explicit_changed == 1, f"{name}: {result.explicit_changed} explicit changed")
    added = await system.changed_rows() - rows_before
    check(added == expected, f"{name}: {added} outbox rows added, expected {expected}")
    messages = await system.take(SINK_QUEUE, expected)
    return Phase(
        name=name,
        expected=expected,
        reply=replied - started,
        first_event=first[0] - started,
        published=full[0] - started,
        marked=marked - started,
        cpu=cpu,
        rabbitmq_cpu=servers["rabbitmq"],
        postgres_cpu=servers["postgres"],
        machine_busy=busy,
        rss_start=rss.start,
        rss_peak=rss.peak,
        result=result,
        started_at=started,
        mean_body=sum(len(m.body) for m in messages) / max(1, len(messages)),
        messages=messages,
    )


def check_events(
    phase: Phase, update_id: str, groups: set[str], deadline_kind: str, source: str
) -> None:
    """One event per changed group, about this update, with the new effective approval."""
    seen: Counter[str] = Counter()
    for message in phase.messages:
        body = json.loads(message.body)
        state = body["state"]
        check(state["update_id"] == update_id, f"{phase.name}: event about another update")
        check(body["cause"] == "approve", f"{phase.name}: cause {body['cause']!r}")
        effective = state["effective"]
        check(
            effective["deadline"]["kind"] == deadline_kind
            and effective["source_group_id"] == source,
            f"{phase.name}: event with effective {effective}",
        )
        seen[state["group_id"]] += 1
    check(set(seen) == groups, f"{phase.name}: events name {len(seen)} groups, not the expected")
    check(max(seen.values()) == 1, f"{phase.name}: a group got more than one event")


async def check_effective(
    system: System, update_id: str, expected: dict[tuple[str, str], int]
) -> None:
    """Rows of the update per (source group, deadline kind), all required install."""
    rows = await system.db.fetch(
        "SELECT source_group_id::text AS source, deadline_kind, count(*) AS n,"
        " bool_and(action = 'required_install') AS required"
        " FROM approval.effective_approvals WHERE update_id = $1"
        " GROUP BY source_group_id, deadline_kind",
        uuid.UUID(update_id),
    )
    found = {(r["source"], r["deadline_kind"]): r["n"] for r in rows}
    check(found == expected, f"effective rows of {update_id}: {found}, expected {expected}")
    check(all(r["required"] for r in rows), "every effective row is a required install")


# --- baselines ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    rows: int
    db_insert: float
    db_insert_events: float
    db_upsert: float
    db_upsert_events: float
    publish: float


async def effective_arrays(system: System, update_id: str, groups: set[str]) -> list[Any]:
    rows = await system.db.fetch(
        "SELECT group_id, action, deadline_kind, deadline_at, source_group_id, approved_at,"
        " approved_by FROM approval.effective_approvals WHERE update_id = $1"
        " AND group_id = ANY ($2::uuid[]) ORDER BY group_id",
        uuid.UUID(update_id),
        [uuid.UUID(g) for g in groups],
    )
    check(len(rows) == len(groups), f"{len(rows)} effective rows for {len(groups)} groups")
    return [[r[column] for r in rows] for column in range(7)]


async def event_arrays(system: System, count: int) -> list[Any]:
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


async def timed_transaction(
    conn: asyncpg.Connection, statements: list[tuple[str, list[Any]]]
) -> float:
    started = time.perf_counter()
    async with conn.transaction():
        for sql, args in statements:
            await conn.execute(sql, *args)
    return time.perf_counter() - started


async def baseline_db(
    url: str, update_id: str, columns: list[Any], events: list[Any]
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
        await conn.execute(BASELINE_UPSERT, *empty)
        await conn.execute(BASELINE_INSERT, *empty)
        await conn.execute(BASELINE_EVENTS, *([] for _ in range(5)))
        await conn.execute("TRUNCATE bench_baseline.effective, bench_baseline.events")
        insert = await timed_transaction(conn, [(BASELINE_INSERT, inserted)])
        upsert = await timed_transaction(conn, [(BASELINE_UPSERT, upserted)])
        await conn.execute("TRUNCATE bench_baseline.effective, bench_baseline.events")
        insert_events = await timed_transaction(
            conn, [(BASELINE_INSERT, inserted), (BASELINE_EVENTS, events)]
        )
        events[0] = [uuid.uuid4() for _ in events[0]]
        upsert_events = await timed_transaction(
            conn, [(BASELINE_UPSERT, upserted), (BASELINE_EVENTS, events)]
        )
        counted = await conn.fetchval("SELECT count(*) FROM bench_baseline.effective")
        check(counted == len(columns[0]), f"baseline wrote {counted} rows")
        await conn.execute("TRUNCATE bench_baseline.effective, bench_baseline.events")
    finally:
        await conn.close()
    return insert, insert_events, upsert, upsert_events


async def baseline_publish(system: System, messages: list[Received]) -> float:
    """The same bodies and headers, confirmed in batches of the relay's size."""
    connection = await aio_pika.connect(system.infra.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(Exchange.EVENTS.value, ensure=False)
        batch = system.settings.outbox_batch_size
        started = time.perf_counter()
        for first in range(0, len(messages), batch):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            m.body,
                            headers=m.headers,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=BASELINE_KEY,
                    )
                    for m in messages[first : first + batch]
                )
            )
        seconds = time.perf_counter() - started
    finally:
        await connection.close()
    queued = await system.depth(BASELINE_SINK)
    check(queued == len(messages), f"baseline sink holds {queued} of {len(messages)}")
    purge = await system.bus.connection.channel()
    try:
        await (await purge.get_queue(BASELINE_SINK)).purge()
    finally:
        await purge.close()
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


# --- where the time goes (largest size only) ------------------------------------------------


@dataclass
class Timings:
    """Wall time per SQL statement (first words) and per publish_many, from the phase start."""

    ignore: set[int]
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    """(what, perf_counter() at its start, seconds)"""

    def record(self, key: str, began: float) -> None:
        self.spans.append((key, began, time.perf_counter() - began))


def sql_key(sql: str) -> str:
    words = " ".join(sql.split())
    return words if len(words) <= 72 else words[:69] + "..."


def timed_async(
    timings: Timings, label: str, original: Callable[..., Awaitable[object]]
) -> Callable[..., Awaitable[object]]:
    async def timed(*args: object, **kwargs: object) -> object:
        began = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            timings.record(label, began)

    return timed


@contextmanager
def timed_calls(timings: Timings) -> Iterator[None]:
    """Wall-clock timers around asyncpg's query methods (pool proxies call through the
    class) and around the handler's, the outbox's and the relay's steps (nested)."""
    connection_class: Any = asyncpg.connection.Connection

    def sql(name: str) -> Callable[..., Awaitable[object]]:
        original = getattr(connection_class, name)

        async def timed(self: object, query: str, *args: object, **kwargs: object) -> object:
            if id(self) in timings.ignore:
                return await original(self, query, *args, **kwargs)
            began = time.perf_counter()
            try:
                return await original(self, query, *args, **kwargs)
            finally:
                timings.record("sql " + sql_key(query), began)

        return timed

    steps: list[tuple[object, str, str]] = [
        (Pipeline, "_answer", "py  Pipeline._answer: the approve handler, transaction open"),
        (approvals, "recompute", "py  approvals.recompute"),
        (store.groups, "load", "py  store.groups.load (load the tree)"),
        (store.approvals, "save_effective", "py  store.approvals.save_effective"),
        (Outbox, "add_many", "py  Outbox.add_many (envelopes, JSON, INSERT)"),
        (OutboxRelay, "drain", "py  OutboxRelay.drain (fetch, decode, publish, mark)"),
        (Bus, "publish_many", "py  Bus.publish_many (500 messages each, confirms)"),
    ]
    with ExitStack() as stack:
        for name in ("execute", "fetch", "fetchval", "fetchrow"):
            stack.enter_context(patch.object(connection_class, name, sql(name)))
        for owner, name, label in steps:
            original = getattr(owner, name)
            wrapped: object = timed_async(timings, label, original)
            if owner is Pipeline:
                wrapped = staticmethod(wrapped)  # type: ignore[arg-type]
            stack.enter_context(patch.object(owner, name, wrapped))
        yield


def report_timings(timings: Timings, phase: Phase) -> None:
    before: dict[str, list[float]] = defaultdict(list)
    after: dict[str, list[float]] = defaultdict(list)
    for key, began, seconds in timings.spans:
        start = began - phase.started_at
        if start < 0:
            continue  # before the command was sent (the phase's own checks)
        (before if start < phase.reply else after)[key].append(seconds)
    for title, spans in (
        (f"started before the reply ({phase.reply:.3f} s)", before),
        (f"started after the reply, until published ({phase.published:.3f} s)", after),
    ):
        print(f"  {title}:")
        print(
            f"  | {'statement or call (py: nested, not additive)':<76} "
            f"| {'calls':>5} | {'wall s':>7} |"
        )
        print(f"  |{'-' * 78}|{'-' * 7}|{'-' * 9}|")
        for key, values in sorted(spans.items(), key=lambda item: -sum(item[1])):
            if sum(values) >= 0.001:
                print(f"  | {key:<76} | {len(values):>5} | {sum(values):>7.3f} |")
    repeated: dict[str, list[float]] = defaultdict(list)
    for key, began, seconds in sorted(timings.spans, key=lambda span: span[1]):
        if began >= phase.started_at and not key.startswith("py  OutboxRelay"):
            repeated[key].append(seconds)
    print("  per call, in call order (ms), for statements or calls made 10 times or more:")
    for key, values in repeated.items():
        if len(values) >= 10:
            print(f"  {key}: " + " ".join(f"{value * 1000:.0f}" for value in values))


def report_profile(profiler: cProfile.Profile, phase: Phase) -> None:
    stats = pstats.Stats(profiler)
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in entries.values())
    print(
        f"  profiled phase: reply {phase.reply:.3f} s, published {phase.published:.3f} s, "
        f"profiled Python time of the event-loop thread {total:.3f} s (cProfile overhead "
        "included; awaits are not counted in async functions' cumulative time)"
    )
    wanted = (
        ("approvals.py", "approve"),
        ("approvals.py", "recompute"),
        ("approvals.py", "<listcomp>"),
        ("approvals.py", "group_state"),
        ("approvals.py", "approval_view"),
        ("tree.py", "effective"),
        ("tree.py", "__init__"),
        ("tree.py", "path"),
        ("groups.py", "load"),
        ("approvals.py", "explicit_for"),
        ("approvals.py", "effective_for"),
        ("approvals.py", "save_effective"),
        ("outbox.py", "add_many"),
        ("outbox.py", "<listcomp>"),
        ("envelope.py", "new"),
        ("main.py", "model_dump_json"),
        ("main.py", "__init__"),
        ("main.py", "model_validate"),
        ("outbox.py", "drain"),
        ("codec.py", "to_amqp"),
        ("bus.py", "publish_many"),
        ("bus.py", "one"),
        ("bus.py", "publish"),
    )
    print(f"  | {'function (file:line)':<58} | {'calls':>7} | {'own s':>7} | {'cumul s':>7} |")
    print(f"  |{'-' * 60}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for (path, line, name), (_, calls, own, cumulative, _) in sorted(
        entries.items(), key=lambda item: -item[1][3]
    ):
        short = "/".join(path.split("/")[-2:])
        if any(path.endswith(f) and name == n for f, n in wanted) and cumulative >= 0.005:
            label = f"{name} ({short}:{line})"
            print(f"  | {label:<58} | {calls:>7} | {own:>7.3f} | {cumulative:>7.3f} |")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    print("  top 25 by own time:")
    lines = text.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    for text_line in lines[start:]:
        if text_line.strip():
            print("   " + text_line.replace("/work/main/.venv/lib/python3.11/site-packages/", ""))


async def explain(system: System, update_id: str, count: int) -> None:
    """EXPLAIN ANALYZE of the handler's bulk statements and the relay's mark, rolled back."""
    columns = await effective_arrays(
        system, update_id, {str(i) for i in system.tree.ids[: system.tree.groups]}
    )
    later = [None if at is None else at + timedelta(days=1) for at in columns[3]]
    events = await event_arrays(system, count)
    seqs = await system.db.fetch(
        "SELECT seq FROM approval.outbox WHERE routing_key = $1 ORDER BY seq DESC LIMIT $2",
        a.APPROVAL_CHANGED.routing_key(),
        system.settings.outbox_batch_size,
    )
    statements: list[tuple[str, str, list[Any]]] = [
        (
            f"effective upsert, {count} rows all changed (store.approvals.save_effective)",
            EFFECTIVE_UPSERT,
            [uuid.UUID(update_id), columns[0], columns[1], columns[2], later, *columns[4:]],
        ),
        (f"outbox insert, {count} rows (Outbox.add_many)", OUTBOX_INSERT, events),
        (
            f"relay mark published, {len(seqs)} rows (OutboxRelay.drain)",
            RELAY_MARK,
            [[r["seq"] for r in seqs]],
        ),
    ]
    for title, sql, args in statements:
        transaction = system.db.transaction()
        await transaction.start()
        try:
            plan = await system.db.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
        finally:
            await transaction.rollback()
        print(f"  EXPLAIN ANALYZE {title}:")
        for row in plan:
            line = str(row[0])
            print(f"    {line if len(line) <= 140 else line[:137] + '...'}")


async def where_time_goes(system: System, update_id: str, groups: int) -> None:
    """Timers, then cProfile, each on one more root approval of `update_id`; then EXPLAIN."""
    print(f"\n## Where the time goes ({groups} groups; root approvals of W, not counted above)")
    timings = Timings(ignore={id(system.db)})
    with timed_calls(timings):
        phase = await approve(
            system, "timers (W, two weeks)", update_id, root_choice("two_weeks"), groups
        )
    print(f"Wall-clock timers: reply {phase.reply:.3f} s, published {phase.published:.3f} s")
    report_timings(timings, phase)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        phase = await approve(
            system, "cProfile (W, one month)", update_id, root_choice("one_month"), groups
        )
    finally:
        profiler.disable()
    print("cProfile:")
    report_profile(profiler, phase)
    await explain(system, update_id, groups)


# --- one size -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeResult:
    groups: int
    loaded: Loaded
    child_name: str
    child_depth: int
    child_subtree: int
    phases: list[Phase]
    baseline_all: Baseline
    baseline_child: Baseline
    profile: str
    load: str
    """Load average (1/5/15 min) when the size started."""


@asynccontextmanager
async def running_system(infra: Infra, tree: Synthetic, seed: int) -> AsyncIterator[System]:
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=infra.database_url,
        heartbeat_seconds=3600.0,  # one heartbeat at start, before any timed phase
        rpc_timeout_seconds=RPC_TIMEOUT,
    )
    process = ServiceProcess(APPROVAL, settings, http_port=0)  # applies the migrations
    await process.start()
    bus: Bus | None = None
    db: asyncpg.Connection | None = None
    plain: aio_pika.abc.AbstractConnection | None = None
    try:
        loaded, updates = await load(infra.database_url, tree, seed)
        print(
            f"  loaded {tree.groups} groups (depth <= {loaded.max_depth}), {loaded.computers} "
            f"computers, {loaded.memberships} memberships in {loaded.seconds:.1f} s "
            f"(not timed); database {loaded.database_mib:.0f} MiB",
            flush=True,
        )
        bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
        await bus.declare_queue(
            SINK_QUEUE, [Binding(Exchange.EVENTS, a.APPROVAL_CHANGED.binding_key)]
        )
        await bus.declare_queue(BASELINE_SINK, [Binding(Exchange.EVENTS, BASELINE_KEY)])
        rpc = RpcClient(bus, source="bench", timeout=RPC_TIMEOUT)
        await rpc.start()
        db = await asyncpg.connect(infra.database_url)
        # A plain (not robust) channel: a robust one answers passive declares from its cache.
        plain = await aio_pika.connect(infra.amqp_url)
        probe = await plain.channel(publisher_confirms=False)
        yield System(infra, settings, bus, rpc, db, probe, tree, updates, loaded)
    finally:
        if plain is not None:
            await plain.close()
        if db is not None:
            await db.close()
        if bus is not None:
            await bus.close()
        await process.stop()


def root_choice(kind: a.DeadlineKind) -> a.GroupChoice:
    return a.GroupChoice(
        group=a.ROOT_GROUP_ID,
        action="required_install",
        deadline=a.DeadlineChoice(kind=kind),
    )


async def timed_phases(system: System, every: set[str], below: set[str]) -> list[Phase]:
    """Warm-up, root, root again and child approvals, each checked."""
    tree, groups = system.tree, system.tree.groups
    child = str(tree.ids[tree.child])
    w, x = system.updates.warmup, system.updates.measured
    phases: list[Phase] = []

    print(f"  warm-up: W at the root, {groups} groups change", flush=True)
    phase = await approve(system, "warm-up (W at root)", w, root_choice("one_week"), groups)
    check_events(phase, w, every, "one_week", a.ROOT_GROUP_ID)
    phases.append(phase)

    print(f"  root: X at the root, {groups} groups change", flush=True)
    phase = await approve(system, "root (X, one week)", x, root_choice("one_week"), groups)
    check_events(phase, x, every, "one_week", a.ROOT_GROUP_ID)
    await check_effective(system, x, {(a.ROOT_GROUP_ID, "one_week"): groups})
    phases.append(phase)

    print(f"  root again: X at the root, two weeks, {groups} groups change", flush=True)
    phase = await approve(system, "root again (X, two weeks)", x, root_choice("two_weeks"), groups)
    check_events(phase, x, every, "two_weeks", a.ROOT_GROUP_ID)
    await check_effective(system, x, {(a.ROOT_GROUP_ID, "two_weeks"): groups})
    phases.append(phase)

    size = len(below)
    print(
        f"  child: X on a depth-{tree.depth[tree.child]} group, {size} groups change",
        flush=True,
    )
    choice = a.GroupChoice(
        group=child, action="required_install", deadline=a.DeadlineChoice(kind="one_month")
    )
    phase = await approve(system, "child (X, one month)", x, choice, size)
    check_events(phase, x, below, "one_month", child)
    await check_effective(
        system,
        x,
        {(a.ROOT_GROUP_ID, "two_weeks"): groups - size, (child, "one_month"): size},
    )
    phases.append(phase)

    return phases


async def run_size(
    infra: Infra, groups: int, per_group: int, profile: bool, env: dict[str, str] | None
) -> SizeResult:
    if env is not None:
        env.update(await environment(infra))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    seed = SEED + groups
    tree = build_tree(groups, groups * per_group, seed)
    async with running_system(infra, tree, seed) as system:
        loaded = system.loaded
        setup = await asyncpg.connect(infra.database_url)
        try:
            await setup.execute(BASELINE_SCHEMA)
        finally:
            await setup.close()
        every = {str(g) for g in tree.ids}
        below = tree.subtree_ids(tree.child)
        check(len(below) == tree.subtree[tree.child], "subtree sizes agree")
        w, x = system.updates.warmup, system.updates.measured
        phases = await timed_phases(system, every, below)
        root_messages, child_messages = phases[1].messages, phases[3].messages
        print("  baselines", flush=True)
        baseline_all = await baseline(system, x, every, root_messages)
        baseline_child = await baseline(system, x, below, child_messages)

        profile_text = ""
        if profile:
            print("  where the time goes: two more root approvals of W, then EXPLAIN", flush=True)
            text = io.StringIO()
            with redirect_stdout(text):
                await where_time_goes(system, w, groups)
            profile_text = text.getvalue()
        for p in phases:
            p.messages.clear()
    return SizeResult(
        groups=groups,
        loaded=loaded,
        child_name=f"Group {tree.child:05d}",
        child_depth=tree.depth[tree.child],
        child_subtree=len(below),
        phases=phases,
        baseline_all=baseline_all,
        baseline_child=baseline_child,
        profile=profile_text,
        load=load,
    )


# --- report ---------------------------------------------------------------------------------


def phase_baseline(result: SizeResult, phase: Phase) -> tuple[float, float, float]:
    """(db, db + events, publish) seconds of the baseline matching a phase."""
    if phase.name.startswith("child"):
        b = result.baseline_child
        return b.db_upsert, b.db_upsert_events, b.publish
    b = result.baseline_all
    if phase.name.startswith("root again"):
        return b.db_upsert, b.db_upsert_events, b.publish
    return b.db_insert, b.db_insert_events, b.publish


def report_size(result: SizeResult) -> None:
    loaded = result.loaded
    print()
    print(
        f"## {result.groups} groups, {loaded.computers} computers, {loaded.memberships} "
        f"memberships (loaded in {loaded.seconds:.1f} s, not timed; database "
        f"{loaded.database_mib:.0f} MiB)"
    )
    print(f"load average at the start of this size: {result.load} (1/5/15 min)")
    depths = ", ".join(f"{d}: {n}" for d, n in loaded.depth_counts.items())
    print(f"groups per depth: {depths}")
    print(
        f"child group: {result.child_name} at depth {result.child_depth}, "
        f"{result.child_subtree} groups in its subtree"
    )
    header = (
        f"| {'phase':<26} | {'events':>6} | {'reply s':>7} | {'1st ev s':>8} "
        f"| {'publ. s':>7} | {'marked s':>8} | {'CPU s':>6} | {'MQ CPU':>6} | {'PG CPU':>6} "
        f"| {'busy':>4} "
        f"| {'RSS MiB':>7} | {'peak MiB':>8} | {'body B':>6} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for p in result.phases:
        print(
            f"| {p.name:<26} | {p.expected:>6} | {p.reply:>7.3f} | {p.first_event:>8.3f} "
            f"| {p.published:>7.3f} | {p.marked:>8.3f} | {p.cpu:>6.2f} | {p.rabbitmq_cpu:>6.2f} "
            f"| {p.postgres_cpu:>6.2f} | {p.machine_busy:>4.0%} "
            f"| {p.rss_start / MIB:>7.1f} | {p.rss_peak / MIB:>8.1f} | {p.mean_body:>6.0f} |"
        )
    print("baseline (raw asyncpg one unnest statement in a transaction; raw aio-pika confirms):")
    header = (
        f"| {'rows':>6} | {'insert s':>8} | {'+events s':>9} | {'upsert s':>8} "
        f"| {'+events s':>9} | {'publish s':>9} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for b in (result.baseline_all, result.baseline_child):
        print(
            f"| {b.rows:>6} | {b.db_insert:>8.3f} | {b.db_insert_events:>9.3f} "
            f"| {b.db_upsert:>8.3f} | {b.db_upsert_events:>9.3f} | {b.publish:>9.3f} |"
        )
    print("ratios lockgate/baseline (db = insert for the first root approval, upsert after):")
    header = (
        f"| {'phase':<26} | {'reply/db':>8} | {'reply/(db+ev)':>13} "
        f"| {'published/(db+publish)':>22} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for p in result.phases:
        if p.name.startswith("warm-up"):
            continue
        db, db_events, publish = phase_baseline(result, p)
        print(
            f"| {p.name:<26} | {p.reply / db:>8.1f} | {p.reply / db_events:>13.1f} "
            f"| {p.published / (db + publish):>22.2f} |"
        )


def report_growth(results: list[SizeResult]) -> None:
    print()
    print("## Growth (seconds; per group in microseconds)")
    names = [p.name for p in results[0].phases]
    sizes = " | ".join(f"{r.groups:>12}" for r in results)
    print(f"| {'phase, measure':<36} | {sizes} | {'last/first':>10} |")
    print(f"|{'-' * 38}|" + "|".join("-" * 14 for _ in results) + f"|{'-' * 12}|")
    for index, name in enumerate(names):
        for measure in ("reply", "published"):
            values = [getattr(r.phases[index], measure) for r in results]
            cells = " | ".join(
                f"{v:>6.3f} ({v / r.phases[index].expected * 1e6:>3.0f})"
                for v, r in zip(values, results, strict=True)
            )
            label = f"{name}, {measure}"
            print(f"| {label:<36} | {cells} | {values[-1] / values[0]:>10.1f} |")
    print(f"groups: last/first = {results[-1].groups / results[0].groups:.1f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in SIZES),
        help="comma-separated group counts (All computers included)",
    )
    parser.add_argument("--computers-per-group", type=int, default=COMPUTERS_PER_GROUP)
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the timers, cProfile and EXPLAIN"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if sizes[0] <= TOP_LEVEL_GROUPS + 1 or args.computers_per_group < 1:
        parser.error(f"sizes must exceed {TOP_LEVEL_GROUPS + 1}; computers per group >= 1")
    configure_logging("bench", "warning")
    started = time.perf_counter()
    env: dict[str, str] = {}
    results: list[SizeResult] = []
    for groups in sizes:
        print(f"{groups} groups ...", flush=True)
        with local_infra(Settings()) as infra:
            results.append(
                asyncio.run(
                    run_size(
                        infra,
                        groups,
                        args.computers_per_group,
                        profile=not args.no_profile and groups == sizes[-1],
                        env=env if not env else None,
                    )
                )
            )
    print()
    for name, value in env.items():
        print(f"{name:>12}: {value}")
    print(
        "reply: send -> reply (effective state + events committed to the outbox); 1st ev / "
        "publ.: first / all events in the sink queue; marked: outbox has no unpublished row; "
        "CPU s: this process (service + client + bench); MQ / PG CPU: RabbitMQ's beam.smp / "
        "every PostgreSQL process alive at both ends of the phase (other sessions' backends "
        "included); busy: both cores, everything included; RSS: this process at the phase "
        "start and its peak (5 ms samples)"
    )
    for result in results:
        report_size(result)
    report_growth(results)
    for result in results:
        print(result.profile, end="")
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
