"""The running approval service and its timed phases: one approval each, checked afterwards."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.bench_approval_scale.fleet import Loaded, Synthetic, Updates, load
from bench.common.infra import check, unpublished, wait_until
from bench.common.meters import RABBITMQ, CpuMeter, RssSampler
from bench.common.queues import QueueProbe, queue_probe
from bench.common.tracing import Trace
from libs.bus import Bus, RpcClient
from libs.bus.bus import Binding
from libs.contracts import approval as a
from libs.contracts.names import Exchange
from libs.db.pool import database_name
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval.handlers import SERVICE as APPROVAL
from tests.support.infra import Infra

RPC_TIMEOUT = 300.0
DRAIN_TIMEOUT = 300.0
POLL_SECONDS = 0.01
SINK_QUEUE = "bench.approval-changed-sink"
BASELINE_SINK = "bench.baseline-sink"
BASELINE_KEY = "bench.baseline.changed"


@dataclass
class Received:
    body: bytes
    headers: dict[str, Any]


@dataclass
class System:
    infra: Infra
    settings: Settings
    process: ServiceProcess
    bus: Bus
    rpc: RpcClient
    db: asyncpg.Connection
    queues: QueueProbe
    tree: Synthetic
    updates: Updates
    loaded: Loaded

    async def traced(self, trace: Trace) -> None:
        """Restart the service with its handlers and steps traced."""
        await self.process.stop()
        self.process = ServiceProcess(
            trace.definition(APPROVAL), self.settings, http_port=0, on_step=trace.step
        )
        await self.process.start()

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
        left = await self.queues.depth(queue)
        check(
            len(received) == expected and left == 0,
            f"{queue}: {len(received)} messages received and {left} left, expected {expected}",
        )
        return received


@asynccontextmanager
async def running_system(infra: Infra, tree: Synthetic, seed: int) -> AsyncIterator[System]:
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=infra.database_url,
        heartbeat_seconds=3600.0,  # one heartbeat at start, before any timed phase
        rpc_timeout_seconds=RPC_TIMEOUT,
    )
    process = ServiceProcess(APPROVAL, settings, http_port=0)  # applies the migrations
    system: System | None = None
    try:
        await process.start()
        loaded, updates = await load(infra.database_url, tree, seed)
        print(
            f"  loaded {tree.groups} groups (depth <= {loaded.max_depth}), {loaded.computers} "
            f"computers, {loaded.memberships} memberships in {loaded.seconds:.1f} s "
            f"(not timed); database {loaded.database_mib:.0f} MiB",
            flush=True,
        )
        bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
        try:
            await bus.declare_queue(
                SINK_QUEUE, [Binding(Exchange.EVENTS, a.APPROVAL_CHANGED.binding_key)]
            )
            await bus.declare_queue(BASELINE_SINK, [Binding(Exchange.EVENTS, BASELINE_KEY)])
            rpc = RpcClient(bus, source="bench", timeout=RPC_TIMEOUT)
            await rpc.start()
            db = await asyncpg.connect(infra.database_url)
            try:
                async with queue_probe(infra.amqp_url) as queues:
                    system = System(
                        infra, settings, process, bus, rpc, db, queues, tree, updates, loaded
                    )
                    yield system
            finally:
                await db.close()
        finally:
            await bus.close()
    finally:
        await (process if system is None else system.process).stop()


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


def root_choice(kind: a.DeadlineKind) -> a.GroupChoice:
    return a.GroupChoice(
        group=a.ROOT_GROUP_ID, action="required_install", deadline=a.DeadlineChoice(kind=kind)
    )


async def approve(
    system: System, name: str, update_id: str, choice: a.GroupChoice, expected: int
) -> Phase:
    """One timed approval; checks the reply, the outbox and the sink afterwards."""
    check(await system.queues.depth(SINK_QUEUE) == 0, "the sink is empty before the phase")
    rows_before = await system.changed_rows()
    first: list[float] = []
    full: list[float] = []

    async def watch() -> None:
        while True:
            depth = await system.queues.depth(SINK_QUEUE)
            now = time.perf_counter()
            if depth and not first:
                first.append(now)
            if depth >= expected:
                full.append(now)
                return
            await asyncio.sleep(POLL_SECONDS)

    async def outbox_marked() -> bool:
        return await unpublished(system.db, APPROVAL.name) == 0

    meter = CpuMeter(database_name(system.infra.database_url))
    with RssSampler() as rss:
        started = time.perf_counter()
        watcher = asyncio.create_task(watch())
        try:
            result = await system.rpc.call(
                a.APPROVE, a.Approve(updates=[update_id], groups=[choice]), timeout=RPC_TIMEOUT
            )
            replied = time.perf_counter()
            await asyncio.wait_for(watcher, DRAIN_TIMEOUT)
        finally:
            watcher.cancel()
        await wait_until(outbox_marked, "the outbox to be marked published", timeout=DRAIN_TIMEOUT)
        marked = time.perf_counter()
    usage = meter.stop()
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
        cpu=usage.cpu,
        rabbitmq_cpu=usage.parts[RABBITMQ],
        postgres_cpu=usage.postgres,
        machine_busy=usage.busy,
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
    print(f"  child: X on a depth-{tree.depth[tree.child]} group, {size} groups change", flush=True)
    choice = a.GroupChoice(
        group=child, action="required_install", deadline=a.DeadlineChoice(kind="one_month")
    )
    phase = await approve(system, "child (X, one month)", x, choice, size)
    check_events(phase, x, below, "one_month", child)
    await check_effective(
        system, x, {(a.ROOT_GROUP_ID, "two_weeks"): groups - size, (child, "one_month"): size}
    )
    phases.append(phase)
    return phases
