"""The running fleet (approval and scheduler processes, the loaded rows) and its timed phases:
one approval each, from the command to every computer's plan current in the database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.bench_approval_scale.fleet import (
    Loaded,
    SchedulerLoaded,
    Synthetic,
    Updates,
    load,
    load_scheduler,
)
from bench.bench_approval_scale.services import ProcessMeter, ProcessUse, Services
from bench.common.infra import check
from bench.common.meters import RABBITMQ, CpuMeter
from libs.bus import Bus, RpcClient
from libs.contracts import approval as a
from libs.db.pool import database_name
from tests.support.infra import Infra

RPC_TIMEOUT = 600.0
POLL_EVENTS = 0.01
POLL_PLANS = 0.1
INTERNAL = getattr(a, "UPDATE_APPROVAL_CHANGED", None)
"""The internal event listing the groups of one change (None before it existed)."""


@dataclass
class System:
    infra: Infra
    services: Services
    rpc: RpcClient
    db: asyncpg.Connection
    tree: Synthetic
    updates: Updates
    loaded: Loaded
    scheduler_loaded: SchedulerLoaded
    has_ranges: bool
    """Whether the scheduler keeps bulk re-planning work in plan_ranges (else dirty marks)."""

    async def pending_plans(self) -> int:
        """Computers marked dirty plus ranges of computers still to re-plan."""
        query = "SELECT (SELECT count(*) FROM scheduler.computers WHERE plan_dirty_at IS NOT NULL)"
        if self.has_ranges:
            query += " + (SELECT count(*) FROM scheduler.plan_ranges)"
        found: int = await self.db.fetchval(query)
        return found

    async def copy_matches(self, update_id: str) -> bool:
        """The scheduler's copy of the update's approvals equals approval's effective rows."""
        row = await self.db.fetchrow(
            "SELECT (SELECT count(*) FROM approval.effective_approvals WHERE update_id = $1)"
            " AS wanted, (SELECT count(*) FROM scheduler.group_approvals s"
            " JOIN approval.effective_approvals e USING (group_id, update_id)"
            " WHERE update_id = $1 AND s.action = e.action"
            " AND s.deadline_at IS NOT DISTINCT FROM e.deadline_at) AS copied",
            uuid.UUID(update_id),
        )
        assert row is not None
        return bool(row["wanted"] == row["copied"])

    async def unpublished(
        self, schema: str, routing_key: str | None = None, *, db: asyncpg.Connection | None = None
    ) -> int:
        query = f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"
        conn = self.db if db is None else db
        if routing_key is None:
            found: int = await conn.fetchval(query)
        else:
            found = await conn.fetchval(query + " AND routing_key = $1", routing_key)
        return found

    async def outbox_rows(self, schema: str, like: str) -> int:
        found: int = await self.db.fetchval(
            f"SELECT count(*) FROM {schema}.outbox WHERE routing_key LIKE $1", like
        )
        return found


@asynccontextmanager
async def running_system(
    infra: Infra, services: Services, tree: Synthetic, seed: int
) -> AsyncIterator[System]:
    for runner in services.runners.values():
        await runner.wait_ready(120)
    loaded, updates = await load(infra.database_url, tree, seed)
    scheduler_loaded = await load_scheduler(infra.database_url, tree)
    print(
        f"  loaded {tree.groups} groups (depth <= {loaded.max_depth}), {loaded.computers} "
        f"computers, {loaded.memberships} memberships in {loaded.seconds:.1f} s + "
        f"{scheduler_loaded.seconds:.1f} s (not timed); database "
        f"{scheduler_loaded.database_mib:.0f} MiB",
        flush=True,
    )
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    try:
        rpc = RpcClient(bus, source="bench", timeout=RPC_TIMEOUT)
        await rpc.start()
        db = await asyncpg.connect(infra.database_url)
        try:
            has_ranges = bool(await db.fetchval("SELECT to_regclass('scheduler.plan_ranges')"))
            yield System(
                infra,
                services,
                rpc,
                db,
                tree,
                updates,
                loaded,
                scheduler_loaded,
                has_ranges,
            )
        finally:
            await db.close()
    finally:
        await bus.close()


@dataclass(frozen=True)
class Phase:
    name: str
    groups_changed: int
    reply: float
    internal_published: float | None
    """All internal events of the approval published (None: no such event)."""
    published: float
    """Every event of the approval published (approval's outbox has no unpublished row)."""
    plans_current: float
    """Every computer's plan current in the scheduler's database."""
    computers_replanned: int
    internal_events: int
    public_events: int
    plan_messages: int
    """Messages the scheduler queued to agents for this phase (plans, hints)."""
    processes: dict[str, ProcessUse]
    rabbitmq_cpu: float
    postgres_cpu: float
    machine_busy: float
    agents_drained: float
    """Until the scheduler's outbox (messages to agents) was empty, from the command."""


async def _until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float, poll: float
) -> float:
    deadline = time.perf_counter() + timeout
    while not await condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s")
        await asyncio.sleep(poll)
    return time.perf_counter()


def root_choice(kind: a.DeadlineKind) -> a.GroupChoice:
    return a.GroupChoice(
        group=a.ROOT_GROUP_ID, action="required_install", deadline=a.DeadlineChoice(kind=kind)
    )


async def approve(
    system: System,
    name: str,
    update_id: str,
    choice: a.GroupChoice,
    groups_changed: int,
    *,
    timeout: float,
) -> Phase:
    """One timed approval, until every computer's plan is current; checked afterwards."""
    watcher = await asyncpg.connect(system.infra.database_url)
    try:
        return await _approve(
            system, name, update_id, choice, groups_changed, timeout=timeout, watcher=watcher
        )
    finally:
        await watcher.close()


async def _approve(
    system: System,
    name: str,
    update_id: str,
    choice: a.GroupChoice,
    groups_changed: int,
    *,
    timeout: float,
    watcher: asyncpg.Connection,
) -> Phase:
    internal_key = None if INTERNAL is None else INTERNAL.routing_key()
    public_before = await system.outbox_rows("approval", a.APPROVAL_CHANGED.routing_key())
    internal_before = (
        0 if internal_key is None else await system.outbox_rows("approval", internal_key)
    )
    plans_before = await system.outbox_rows("scheduler", "computer.%")
    meter = CpuMeter(database_name(system.infra.database_url))
    with ProcessMeter(system.services.pids) as processes:
        started = time.perf_counter()
        result = await system.rpc.call(
            a.APPROVE, a.Approve(updates=[update_id], groups=[choice]), timeout=RPC_TIMEOUT
        )
        replied = time.perf_counter()

        async def internal_out() -> bool:
            return await system.unpublished("approval", internal_key, db=watcher) == 0

        async def all_out() -> bool:
            return await system.unpublished("approval", db=watcher) == 0

        async def plans_done() -> bool:
            system.services.check_alive()
            return await system.copy_matches(update_id) and await system.pending_plans() == 0

        async def watch_events() -> tuple[float | None, float]:
            internal = (
                None
                if internal_key is None
                else await _until(internal_out, "internal events published", timeout, POLL_EVENTS)
            )
            return internal, await _until(all_out, "every event published", timeout, POLL_EVENTS)

        events_task = asyncio.create_task(watch_events())
        plans = await _until(plans_done, "every plan current", timeout, POLL_PLANS)
        internal, published = await events_task
    usage = meter.stop()

    async def agents_quiet() -> bool:
        return await system.unpublished("scheduler") == 0

    drained = await _until(agents_quiet, "messages to agents published", timeout, POLL_PLANS)
    check(
        result.effective_changed == groups_changed,
        f"{name}: reply says {result.effective_changed} effective changed, "
        f"expected {groups_changed}",
    )
    replanned = await check_plans(system, update_id)
    return Phase(
        name=name,
        groups_changed=groups_changed,
        reply=replied - started,
        internal_published=None if internal is None else internal - started,
        published=published - started,
        plans_current=plans - started,
        computers_replanned=replanned,
        internal_events=0
        if internal_key is None
        else await system.outbox_rows("approval", internal_key) - internal_before,
        public_events=await system.outbox_rows("approval", a.APPROVAL_CHANGED.routing_key())
        - public_before,
        plan_messages=await system.outbox_rows("scheduler", "computer.%") - plans_before,
        processes=processes.use,
        rabbitmq_cpu=usage.parts[RABBITMQ],
        postgres_cpu=usage.postgres,
        machine_busy=usage.busy,
        agents_drained=drained - started,
    )


PLAN_OF = "SELECT computer_id, plan FROM scheduler.computers"


async def check_plans(system: System, update_id: str) -> int:
    """Every computer's stored plan holds the update, required, with the earliest deadline of
    its groups' effective approvals (All computers included); returns how many were checked."""
    row = await system.db.fetchrow(
        "WITH expected AS ("
        "  SELECT c.computer_id, min(e.deadline_at) AS at FROM scheduler.computers c"
        "  CROSS JOIN LATERAL (SELECT $2::uuid AS group_id UNION ALL SELECT m.group_id"
        "    FROM scheduler.memberships m WHERE m.computer_id = c.computer_id) g"
        "  JOIN approval.effective_approvals e"
        "    ON e.group_id = g.group_id AND e.update_id = $1::uuid"
        "  GROUP BY c.computer_id),"
        f" planned AS ({PLAN_OF})"
        " SELECT count(*) AS computers, count(*) FILTER (WHERE EXISTS ("
        "   SELECT 1 FROM jsonb_array_elements(p.plan -> 'items') i"
        "   WHERE i ->> 'update_id' = $1::text AND i ->> 'action' = 'required_install'"
        "   AND (i ->> 'deadline')::timestamptz = x.at)) AS current"
        " FROM expected x LEFT JOIN planned p USING (computer_id)",
        update_id,
        a.ROOT_GROUP_ID,
    )
    assert row is not None
    check(
        row["computers"] == system.tree.computers and row["current"] == row["computers"],
        f"{row['current']} of {row['computers']} plans hold the update with its deadline "
        f"({system.tree.computers} computers)",
    )
    return int(row["computers"])


async def timed_phases(system: System, timeout: float) -> list[Phase]:
    """Warm-up (first plans with an item), root (the issue's scenario), child: a subtree's
    groups get an earlier deadline, which the plans of their members (about a tenth of the
    fleet, the earliest deadline of a computer's groups winning) take."""
    tree, groups = system.tree, system.tree.groups
    w, x = system.updates.warmup, system.updates.measured
    below = tree.subtree_ids(tree.child)
    phases = []
    for name, update_id, choice, changed in (
        ("warm-up (W at root)", w, root_choice("one_week"), groups),
        ("root (X, one week)", x, root_choice("one_week"), groups),
        (
            "child (X, in three days)",
            x,
            a.GroupChoice(
                group=str(tree.ids[tree.child]),
                action="required_install",
                deadline=a.DeadlineChoice(kind="custom", at=datetime.now(UTC) + timedelta(days=3)),
            ),
            len(below),
        ),
    ):
        print(f"  {name}: {changed} groups change", flush=True)
        phase = await approve(system, name, update_id, choice, changed, timeout=timeout)
        print(
            f"    reply {phase.reply:.3f} s, events published {phase.published:.3f} s, plans "
            f"current {phase.plans_current:.3f} s, to agents {phase.plan_messages}",
            flush=True,
        )
        phases.append(phase)
    return phases
