"""The system on a real cluster loses a server (issue 17, item 2).

A private 3-node RabbitMQ cluster and a private PostgreSQL primary with a streaming standby
(tests/support/servers.py) are started once for this module. The whole system runs on them:
its broker URL is a TCP front that forwards each new connection to the first node accepting
it (as a load balancer would: aio-pika reconnects only to the one URL it was given), and its
database URL names both PostgreSQL servers with `target_session_attrs=read-write`.

While a simulated fleet checks in and sends status reports and an operator changes approvals
through the API:

- the RabbitMQ node leading the services' quorum queues is stopped;
- the PostgreSQL primary is stopped and the standby promoted.

Afterwards every effect is counted against what was sent: nothing lost, nothing applied
twice, nothing dead-lettered, every service ready again by itself. The time from the end of
the fault to every service ready and handling messages again is recorded
(tests/support/faults.py), not asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import asyncpg
import pytest

from libs.bus import Bus
from libs.contracts import approval as a
from libs.contracts.names import Exchange
from libs.db.pool import ensure_database
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.faults import FaultResult, record
from tests.support.infra import Infra
from tests.support.messages import Collector, bind_test_queue, checkin, eventually
from tests.support.processes import ROOT, readyz
from tests.support.proxy import TcpProxy
from tests.support.servers import PgCluster, RabbitCluster, postgres_cluster, rabbitmq_cluster
from tests.support.system import System, running_system
from tests.support.workload import (
    ApiTally,
    Report,
    dead_letter_depths,
    import_and_group,
    queue_depths,
    reports_for,
    retried_call,
    wait_for_copies,
    wait_for_registration,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

COMPUTERS = 60
UPDATES = 8  # COMPUTERS x UPDATES reports per fault
LANES = 12  # (update, group) pairs, each approved with one deadline then another
GROUPS = 3
REPORTS_PER_SECOND = 50.0
CHANGES_PER_SECOND = 2.0
FAULT_AT = 0.3
"""Share of the report stream sent when the fault is injected."""
HELD_BACK = 0.15
"""Share of the stream (and of the changes) sent only once the fault has ended, so every
consumer has new work after it and its recovery shows."""
CONSUMERS = ("approval", "scheduler", "reporting")
"""Services that consume this workload's messages: each must handle messages again."""
SERVICES = [CATALOG, APPROVAL, SCHEDULER, REPORTING]
SCHEMAS = ["catalog", "approval", "scheduler", "reporting"]
JAN = ROOT / "data" / "msrc" / "cvrf-2026-Jan.xml"
WORKLOAD = (
    f"{COMPUTERS} computers checking in again and sending {COMPUTERS * UPDATES} status "
    f"reports, {2 * LANES} approval changes via the API"
)
FILE = "tests/integration/test_cluster_failover.py"

T = TypeVar("T")


# --------------------------------------------------------------------------- clusters


@dataclass(frozen=True)
class Clusters:
    rabbit: RabbitCluster
    pg: PgCluster


@pytest.fixture(scope="module")
def clusters() -> Iterator[Clusters]:
    """Both private clusters, started side by side once for the module, always removed."""
    with ExitStack() as stack:
        managers: list[AbstractContextManager[Any]] = [
            rabbitmq_cluster(3),
            postgres_cluster(standby=True),
        ]
        with ThreadPoolExecutor(len(managers)) as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
        entered: list[Any] = []
        failure: BaseException | None = None
        for manager, future in zip(managers, futures, strict=True):
            error = future.exception()
            if error is None:
                stack.push(manager.__exit__)
                entered.append(future.result())
            else:
                failure = failure or error
        if failure is not None:
            raise failure
        yield Clusters(*entered)


@dataclass
class Setup:
    """One test's system on the clusters, and the test's own views of it."""

    system: System
    clusters: Clusters
    vhost: str
    database_url: str
    proxy: TcpProxy
    prefix: str


@pytest.fixture
async def setup(clusters: Clusters, log_dir: Path, tmp_path: Path) -> AsyncIterator[Setup]:
    """The whole system on a database of its own on the clusters, its broker connections
    through a front that fails over between the nodes. The private cluster's default vhost
    serves: running_system deletes the services' queues at the end (and each rabbitmqctl
    call to make a vhost costs seconds on a busy machine)."""
    tag = secrets.token_hex(3)
    vhost = "/"
    database_url = clusters.pg.multi_host_url(f"lockgate_failover_{tag}")
    await ensure_database(database_url)
    first, *others = clusters.rabbit.ports()
    proxy = TcpProxy("127.0.0.1", first, fallbacks=[("127.0.0.1", port) for port in others])
    await proxy.start()
    infra = Infra(f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F", database_url, vhost)
    try:
        async with running_system(
            infra,
            log_dir,
            tmp_path / "content",
            epoch=datetime.now(UTC),
            speed=1.0,
            database_url=database_url,
        ) as system:
            yield Setup(system, clusters, vhost, database_url, proxy, f"fo{tag}")
    finally:
        await proxy.stop()


# --------------------------------------------------------------------------- reading


class Reader:
    """Reads the system's database through the multi-host URL, reconnecting as needed: the
    test's own connection dies with the primary too."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: asyncpg.Connection | None = None

    async def run(self, read: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        deadline = time.monotonic() + 120
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self._url, timeout=5)
                return await read(self._conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                await self.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self.run(lambda conn: conn.fetchval(sql, *args))

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return await self.run(lambda conn: conn.fetch(sql, *args))

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None


EFFECT_TABLE = {"approval": "outbox", "scheduler": "inbox", "reporting": "inbox"}
"""Where each consumer's work shows: approval answers the API's commands (no inbox row) and
writes an event for each change; scheduler and reporting record each message handled."""


async def handled(reader: Reader) -> dict[str, int]:
    """Work each consumer has done so far (rows in its EFFECT_TABLE)."""
    return {
        s: int(await reader.fetchval(f"SELECT count(*) FROM {s}.{EFFECT_TABLE[s]}"))
        for s in CONSUMERS
    }


async def all_ready(system: System) -> bool:
    codes = await asyncio.gather(
        *(asyncio.to_thread(readyz, runner.port) for runner in system.runners.values())
    )
    return all(code == 200 for code in codes)


async def diagnose(system: System) -> str:
    """Each process's readiness and the end of its log, for a failure message."""
    parts = []
    for name, runner in system.runners.items():
        code = await asyncio.to_thread(readyz, runner.port)
        parts.append(f"--- {name}: /readyz {code}\n{runner.log()[-1500:]}")
    return "\n".join(parts)


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Change:
    """One approval change through the API, and the approval.changed it must cause."""

    update: str
    group: str
    deadline: datetime

    def body(self) -> dict[str, Any]:
        return {
            "updates": [self.update],
            "groups": [
                {
                    "group": self.group,
                    "action": "required_install",
                    "deadline": {"kind": "custom", "at": self.deadline.isoformat()},
                }
            ],
        }


@dataclass
class Run:
    """What was sent, what the client saw, and how the system came back."""

    sent: int = 0
    republished: int = 0
    api: ApiTally = field(default_factory=ApiTally)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    fault_over: asyncio.Event = field(default_factory=asyncio.Event)
    fault_sent: int = 0
    fault_seconds: float = 0.0
    recover_seconds: float | None = None
    ready_seconds: float | None = None
    refused: list[tuple[Change, str]] = field(default_factory=list)
    """API calls answered with an error a client does not retry, and the answer."""
    red_seen: bool = False
    """Some service answered /readyz other than 200 from the fault's start to recovery."""
    """Some service answered /readyz other than 200 after the fault."""


async def prepare(setup: Setup, bus: Bus, reader: Reader) -> tuple[list[str], list[str], list[str]]:
    """Catalog imported, groups made, the fleet checked in with every service; returns
    (computers, reported updates, group names)."""
    system, prefix = setup.system, setup.prefix
    groups = [f"{prefix}g{n}" for n in range(GROUPS)]
    updates = (await import_and_group(system, [JAN], groups, at_least=UPDATES))[:UPDATES]
    await wait_for_copies(reader, updates)
    computers = [f"{prefix}c{n:03d}" for n in range(COMPUTERS)]
    await publish(bus, [checkin(c) for c in computers], Run())
    await wait_for_registration(reader, prefix, COMPUTERS)
    return computers, updates, groups


async def publish(bus: Bus, messages: list[tuple[aio_pika.Message, str]], run: Run) -> None:
    """Publish on `lockgate.agents` with confirms; what is not confirmed is published again
    with the same message ids (as an agent retries; the services' inboxes drop repeats)."""
    pending = [(m, Exchange.AGENTS.value, key) for m, key in messages]
    deadline = time.monotonic() + 120
    while pending:
        try:
            confirmed = await bus.publish_many(pending)
        except Exception:  # noqa: BLE001 - any publish failure is retried, as an agent would
            confirmed = [False] * len(pending)
        failed = [item for item, ok in zip(pending, confirmed, strict=True) if not ok]
        run.republished += len(failed)
        pending = failed
        if pending:
            assert time.monotonic() < deadline, f"{len(pending)} messages never confirmed"
            await asyncio.sleep(0.5)


def stream(computers: list[str], reports: list[Report]) -> list[tuple[aio_pika.Message, str]]:
    """Every report, and a second check-in of each computer spread among them."""
    messages = [r.message() for r in reports]
    every = max(1, len(messages) // len(computers))
    for n, computer in enumerate(computers):
        messages.insert(n * (every + 1), checkin(computer))
    return messages


async def send_stream(bus: Bus, messages: list[tuple[aio_pika.Message, str]], run: Run) -> None:
    started = time.monotonic()
    batch = 20
    held_from = int(len(messages) * (1 - HELD_BACK))
    for start in range(0, len(messages), batch):
        if start >= held_from and not run.fault_over.is_set():
            await run.fault_over.wait()
            started = time.monotonic() - start / REPORTS_PER_SECOND
        due = started + start / REPORTS_PER_SECOND
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        chunk = messages[start : start + batch]
        await publish(bus, chunk, run)
        run.sent += len(chunk)
        run.progress.set()


async def send_changes(system: System, changes: list[Change], run: Run) -> None:
    """The changes in order (a lane's second change follows its first), paced."""
    started = time.monotonic()
    held_from = int(len(changes) * (1 - HELD_BACK))
    for n, change in enumerate(changes):
        if n >= held_from and not run.fault_over.is_set():
            await run.fault_over.wait()
            started = time.monotonic() - n / CHANGES_PER_SECOND
        await asyncio.sleep(max(0.0, started + n / CHANGES_PER_SECOND - time.monotonic()))
        try:
            await retried_call(system, run.api, "POST", "/updates/approve", json=change.body())
        except AssertionError as refused:
            # Refused with an answer a client does not retry (a 500, say): kept to fail the
            # test at the end, after the messages are counted; not expected to take effect.
            run.refused.append((change, str(refused)[:300]))


def plan_changes(updates: list[str], groups: list[str]) -> list[Change]:
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    pairs = [(u, g) for g in groups for u in updates][:LANES]
    assert len(pairs) == LANES
    first = [Change(u, g, base + timedelta(days=n)) for n, (u, g) in enumerate(pairs)]
    second = [Change(u, g, base + timedelta(days=n, hours=5)) for n, (u, g) in enumerate(pairs)]
    return first + second


async def watch_readiness(system: System, run: Run) -> None:
    """Notes whether any service turns not ready, polling until cancelled."""
    while True:
        if not await all_ready(system):
            run.red_seen = True
        await asyncio.sleep(0.2)


async def watch_recovery(setup: Setup, reader: Reader, run: Run, since: float) -> None:
    """From `since` (the fault's end) until every service is ready and every consumer has
    handled a message again: the seconds each took."""
    before = await handled(reader)
    moved: set[str] = set()
    while run.ready_seconds is None or len(moved) < len(CONSUMERS):
        if await all_ready(setup.system):
            if run.ready_seconds is None:
                run.ready_seconds = time.monotonic() - since
        else:
            run.red_seen = True
            run.ready_seconds = None
        now = await handled(reader)
        moved |= {s for s in CONSUMERS if now[s] > before[s]}
        if time.monotonic() - since > 150:
            raise AssertionError(
                f"not recovered in 150 s: ready={run.ready_seconds}, handling again: "
                f"{sorted(moved)}\n{await diagnose(setup.system)}"
            )
        await asyncio.sleep(0.1)
    run.recover_seconds = time.monotonic() - since


# --------------------------------------------------------------------------- counting


@dataclass
class Figures:
    sent: int
    effects: int
    lost: int
    duplicated: int
    dead_letters: dict[str, int]
    what: str
    dead_letter_details: list[str] = field(default_factory=list)
    """Each dead letter found: its queue, type, id and why (broker's and pipeline's words)."""

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())


def _compare(expected: Counter[Any], found: Counter[Any]) -> tuple[int, int, int]:
    """(matched, lost, duplicated) of a multiset of effects against the expected one."""
    return (
        sum((expected & found).values()),
        sum((expected - found).values()),
        sum((found - expected).values()),
    )


async def count(
    *,
    setup: Setup,
    bus: Bus,
    reader: Reader,
    computers: list[str],
    reports: list[Report],
    changes: list[Change],
    refused: list[Change],
    events: Collector,
) -> Figures:
    """Effects against what was sent. A refused API call (its client saw an error it does not
    retry) is no sent message: its effect, if any, is reported apart, not counted."""
    prefix = setup.prefix
    expected_states = Counter((r.computer_id, r.update_id, r.state) for r in reports)
    accepted = [c for c in changes if c not in refused]
    sent = 2 * len(reports) + len(computers) + len(accepted)
    matched = lost = duplicated = 0
    notes: list[str] = []
    for schema in ("reporting", "scheduler"):
        rows = await reader.fetch(
            f"SELECT computer_id, update_id::text AS update_id, state FROM {schema}"
            ".computer_updates WHERE computer_id LIKE $1 || '%'"
            " AND state NOT IN ('unknown', 'none')",
            prefix,
        )
        found = Counter((r["computer_id"], r["update_id"], r["state"]) for r in rows)
        m, lo, du = _compare(expected_states, found)
        matched, lost, duplicated = matched + m, lost + lo, duplicated + du
        notes.append(f"{schema}: {m} of {len(reports)} states as reported")
    installs = sum(1 for r in reports if r.is_install)
    attempts = int(
        await reader.fetchval(
            "SELECT count(*) FROM reporting.install_attempts WHERE computer_id LIKE $1 || '%'",
            prefix,
        )
    )
    lost += max(0, installs - attempts)
    duplicated += max(0, attempts - installs)
    per_computer = int(
        await reader.fetchval(
            "SELECT coalesce(sum(installed + needed + failed + pending_restart"
            " + not_applicable), 0) FROM reporting.computers WHERE computer_id LIKE $1 || '%'",
            prefix,
        )
    )
    lost += max(0, len(reports) - per_computer)
    duplicated += max(0, per_computer - len(reports))
    notes.append(f"{attempts} install attempts of {installs}, {per_computer} counted")
    # Each computer checked in twice: once before the stream, once in it.
    checkins = Counter(
        {
            r["computer_id"]: int(r["checkins_total"])
            for r in await reader.fetch(
                "SELECT computer_id, checkins_total FROM scheduler.computers"
                " WHERE computer_id LIKE $1 || '%'",
                prefix,
            )
        }
    )
    m, lo, du = _compare(Counter(dict.fromkeys(computers, 2)), checkins)
    matched += m - len(computers)  # the first check-in of each is not this stream's
    lost, duplicated = lost + lo, duplicated + du
    notes.append(f"check-ins counted {sum(checkins.values())} of {2 * len(computers)}")
    expected_changes = Counter((c.update, c.group, c.deadline) for c in accepted)
    ours = {c.update for c in changes}
    seen: dict[str, bytes] = {
        message.message_id or "": message.body
        for message in events.messages
        if message.routing_key == a.APPROVAL_CHANGED.routing_key()
    }
    delivered: Counter[tuple[str, str, datetime]] = Counter()
    for body in seen.values():
        state = a.ApprovalChanged.model_validate_json(body).state
        effective = state.effective
        at = None if effective is None else effective.deadline.at
        if state.update_id in ours and at is not None and state.explicit is not None:
            delivered[state.update_id, state.group_name, at.astimezone(UTC)] += 1
    refused_keys = {(c.update, c.group, c.deadline) for c in refused}
    took_effect = sum(n for key, n in delivered.items() if key in refused_keys)
    for key in refused_keys:
        delivered.pop(key, None)
    m, lo, du = _compare(expected_changes, delivered)
    matched, lost, duplicated = matched + m, lost + lo, duplicated + du
    notes.append(f"{m} of {len(accepted)} approval.changed events as the calls asked")
    if refused:
        notes.append(
            f"{len(refused)} API calls refused (not retried by a client), "
            f"{took_effect} approval.changed events for them all the same"
        )
    depths = await dead_letter_depths(bus, SERVICES)
    details = await read_dead_letters(bus, [queue for queue, n in depths.items() if n])
    # The console's dead-letter keeper takes each <queue>.dlq into its own table: a dead
    # letter it took is no longer in the broker's queue, and counts all the same.
    kept = await reader.fetch(
        "SELECT dead_letter_queue, message_type, message_id, reason_class, reason,"
        " headers->>'x-first-death-reason' AS broker_reason FROM console.dead_letters"
    )
    for row in kept:
        depths[row["dead_letter_queue"]] = depths.get(row["dead_letter_queue"], 0) + 1
        details.append(
            f"{row['dead_letter_queue']} (kept by the console): {row['message_type']} "
            f"{row['message_id']} broker reason={row['broker_reason']} "
            f"{row['reason_class']}: {row['reason'][:200]}"
        )
    return Figures(sent, matched, lost, duplicated, depths, "; ".join(notes), details)


WHY_HEADERS = (
    "x-first-death-reason",
    "x-first-death-queue",
    "x-delivery-count",
    "x-lockgate-reason-class",
    "x-lockgate-reason",
)


async def read_dead_letters(bus: Bus, queues: list[str]) -> list[str]:
    """What each dead letter in `queues` is and why it was dead-lettered (taken off)."""
    found: list[str] = []
    channel = await bus.connection.channel()
    try:
        for name in queues:
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(fail=False)) is not None:
                await message.ack()
                headers = message.headers or {}
                why = {h: str(headers[h])[:200] for h in WHY_HEADERS if h in headers}
                found.append(
                    f"{name}: {message.type} {message.message_id} "
                    f"expiration={message.expiration} {why}"
                )
    finally:
        await channel.close()
    return found


async def quiescent(bus: Bus, reader: Reader, events: Collector) -> None:
    """Until the services' queues and outboxes are empty and effects stop moving for 3 s."""
    last: Any = None
    steady_since = time.monotonic()

    async def settled() -> bool:
        nonlocal last, steady_since
        now = (await handled(reader), len(set(events.ids)))
        depth = sum((await queue_depths(bus, SERVICES)).values())
        pending = 0
        for schema in SCHEMAS:
            pending += int(
                await reader.fetchval(
                    f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"
                )
            )
        if now != last or depth or pending:
            last, steady_since = now, time.monotonic()
            return False
        return time.monotonic() - steady_since >= 3.0

    await eventually(settled, timeout=120, what="the system to settle", every=0.5)


# --------------------------------------------------------------------------- the run


async def fault_run(
    setup: Setup,
    bus_url: str,
    inject: Callable[[], Awaitable[float]],
    after_recovery: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> tuple[Run, Figures]:
    """The workload, `inject` called once FAULT_AT of it is sent (it returns when the fault
    ended, as a monotonic time), recovery watched, then everything counted; `after_recovery`
    runs meanwhile (restarting what the fault stopped, say)."""
    reader = Reader(setup.database_url)
    bus = await Bus.connect(bus_url, name="lockgate-tests-failover", delivery_limit=5)
    cleanups: list[Callable[[], Awaitable[Any]]] = []
    try:
        began = time.monotonic()
        computers, updates, groups = await prepare(setup, bus, reader)
        prepared = time.monotonic()
        reports = reports_for(computers, updates, datetime.now(UTC) - timedelta(days=1))
        messages = stream(computers, reports)
        changes = plan_changes(updates, groups)
        events = Collector()
        queue = await bind_test_queue(
            bus,
            f"test.{setup.prefix}.approval-changed",
            Exchange.EVENTS,
            a.APPROVAL_CHANGED.routing_key(),
        )
        await queue.consume(events)
        run = Run()
        cleanups.append(queue.delete)
        later: list[asyncio.Task[None]] = []

        async def fault() -> None:
            while run.sent < FAULT_AT * len(messages):
                run.progress.clear()
                await run.progress.wait()
            run.fault_sent = run.sent
            started = time.monotonic()
            watching = asyncio.create_task(watch_readiness(setup.system, run))
            try:
                ended = await inject()
                run.fault_seconds = ended - started
                run.fault_over.set()
                await watch_recovery(setup, reader, run, ended)
            finally:
                watching.cancel()
            if after_recovery is not None:
                later.append(asyncio.create_task(after_recovery()))

        await asyncio.gather(
            send_stream(bus, messages, run), send_changes(setup.system, changes, run), fault()
        )
        streamed = time.monotonic()
        await quiescent(bus, reader, events)
        settled = time.monotonic()
        figures = await count(
            setup=setup,
            bus=bus,
            reader=reader,
            computers=computers,
            reports=reports,
            changes=changes,
            refused=[change for change, _ in run.refused],
            events=events,
        )
        assert run.api.succeeded + len(run.refused) == len(changes), run.api
        await asyncio.gather(*later)
        print(
            f"\nphases: prepare {prepared - began:.1f} s, stream and fault "
            f"{streamed - prepared:.1f} s, settle {settled - streamed:.1f} s, count and "
            f"the rest {time.monotonic() - settled:.1f} s"
        )
        return run, figures
    finally:
        for cleanup in cleanups:
            with contextlib.suppress(Exception):
                await cleanup()
        await bus.close()
        await reader.close()


def service_queues(rabbit: RabbitCluster, vhost: str) -> list[dict[str, object]]:
    names = {queue for service in SERVICES for queue in service.queues()}
    return [row for row in rabbit.queues(vhost) if row["name"] in names]


def record_fault(fault: str, test: str, note: str, run: Run, figures: Figures) -> None:
    """One row of docs/RELIABILITY.md for a fault run, its note completed with any dead
    letters and refused calls (the test asserts the zeros itself)."""
    if figures.dead_letter_details:
        note += f"; dead letters: {'; '.join(figures.dead_letter_details)}"
    if run.refused:
        note += f"; API calls refused and not retried: {[why for _, why in run.refused]}"
    record(
        FaultResult(
            fault=fault,
            workload=WORKLOAD,
            sent=figures.sent,
            effects=figures.effects,
            lost=figures.lost,
            duplicated=figures.duplicated,
            dead_lettered=figures.dead_lettered,
            recover_seconds=run.recover_seconds,
            test=f"{FILE}::{test}",
            note=note,
        )
    )
    print(f"\n{fault}: {figures}\n{note}")


async def test_losing_the_node_that_leads_the_queues(setup: Setup) -> None:
    """The node leading the services' quorum queues stops mid-stream: the queues elect new
    leaders on the other two nodes, the services reconnect through the front to a live node,
    and every message takes effect once."""
    rabbit = setup.clusters.rabbit
    queues = await asyncio.to_thread(service_queues, rabbit, setup.vhost)
    assert queues, "the services declared their queues"
    for row in queues:
        members = row["members"]
        assert row["type"] == "quorum", row
        assert isinstance(members, list), row
        assert len(members) == 3, f"{row['name']} is not on all three nodes: {row}"
    leaders = Counter(rabbit.index_of(str(row["leader"])) for row in queues)
    leader = leaders.most_common(1)[0][0]
    survivor = next(i for i in range(3) if i != leader)
    after: list[dict[str, object]] = []

    async def stop_leader() -> float:
        await asyncio.to_thread(rabbit.stop_node, leader)
        return time.monotonic()

    async def start_it_again() -> None:
        """Once recovered, the leaders as they are, then the node back (it rejoins)."""
        after.extend(await asyncio.to_thread(service_queues, rabbit, setup.vhost))
        await asyncio.to_thread(rabbit.start_node, leader)

    try:
        run, figures = await fault_run(
            setup, rabbit.amqp_url(survivor, setup.vhost), stop_leader, start_it_again
        )
    finally:
        if rabbit.nodes[leader].process is None:
            await asyncio.to_thread(rabbit.start_node, leader)
    new_leaders = Counter(str(row["leader"]) for row in after)
    fault = "RabbitMQ node leading the quorum queues stopped (3-node cluster)"
    note = (
        f"node {leader + 1} led {leaders[leader]} of {len(queues)} service queues; stopped "
        f"after {run.fault_sent} of {COMPUTERS * UPDATES + COMPUTERS} messages were sent "
        f"(stop took {run.fault_seconds:.1f} s); leaders after: {dict(new_leaders)}; every "
        f"service ready again {run.ready_seconds:.1f} s after the stop "
        f"({'readiness went red' if run.red_seen else 'readiness stayed green'}); "
        f"{run.republished} publishes retried; {figures.what}; API: {run.api.calls} calls, "
        f"{run.api.retried} retried ({dict(run.api.failures) or 'none failed'}); "
        f"connections through the front by node port: {dict(setup.proxy.forwarded)}"
    )
    record_fault(fault, "test_losing_the_node_that_leads_the_queues", note, run, figures)
    assert after, "the leaders after the stop were read"
    assert all(str(row["leader"]) != rabbit.nodes[leader].nodename for row in after), after
    assert figures.dead_lettered == 0, figures.dead_letter_details
    assert (figures.lost, figures.duplicated) == (0, 0), figures
    assert not run.refused, run.refused


async def test_database_fails_over_to_the_standby(setup: Setup) -> None:
    """The primary stops mid-stream and the standby is promoted: the services find the new
    primary through the multi-host URL by themselves, and every message takes effect once."""
    pg = setup.clusters.pg
    rabbit = setup.clusters.rabbit
    assert await asyncio.to_thread(pg.streaming), "the standby streams from the primary"

    async def fail_over() -> float:
        await asyncio.to_thread(pg.stop_primary)
        await asyncio.to_thread(pg.promote_standby)
        return time.monotonic()

    publisher = rabbit.amqp_url(rabbit.running()[-1].index, setup.vhost)
    run, figures = await fault_run(setup, publisher, fail_over)
    fault = "PostgreSQL primary stopped, standby promoted (multi-host URL)"
    note = (
        f"stopped after {run.fault_sent} of {COMPUTERS * UPDATES + COMPUTERS} messages were "
        f"sent; stop and promotion took {run.fault_seconds:.1f} s; every service ready again "
        f"{run.ready_seconds:.1f} s after the promotion "
        f"({'readiness went red' if run.red_seen else 'readiness stayed green'}); "
        f"{figures.what}; API: {run.api.calls} calls, {run.api.retried} retried "
        f"({dict(run.api.failures) or 'none failed'})"
    )
    record_fault(fault, "test_database_fails_over_to_the_standby", note, run, figures)
    assert pg.promoted
    assert figures.dead_lettered == 0, figures.dead_letter_details
    assert (figures.lost, figures.duplicated) == (0, 0), figures
    assert not run.refused, run.refused
