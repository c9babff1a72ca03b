"""Every service killed -9 in turn while the whole system works (issue 17, item 3).

The whole system runs as processes (catalog, approval, scheduler, reporting, console) while
10,000 agent status reports (500 computers x 20 updates, every kind of result) and 1,000
approval changes through the API (approve, change the deadline, drop an approval, decline,
approve again) flow. Catalog, approval, scheduler, reporting and the console are each killed
-9 mid-stream, started again and waited ready. API calls in flight when the console or
approval dies fail, and the client retries them; a retried change must take effect once.

Afterwards every effect is counted against what was sent, from the services' own schemas
(reporting's and scheduler's per-computer, per-update states, reporting's counters and the
compliance counts it serves, approval's outbox) and from the events collected on a test
queue: nothing lost, nothing doubled, nothing dead-lettered. One row per killed service goes
to docs/RELIABILITY.md (tests/support/faults.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from libs.bus import Bus
from libs.contracts import approval as a
from libs.contracts.names import Exchange
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.faults import FaultResult, record
from tests.support.infra import Infra
from tests.support.messages import (
    Collector,
    bind_test_queue,
    checkin,
    eventually,
    publish_checkins,
)
from tests.support.processes import ROOT
from tests.support.system import System, running_system
from tests.support.workload import (
    ApiTally,
    Report,
    dead_letter_depths,
    dead_letter_reasons,
    import_and_group,
    inbox_rows,
    port_outside_ephemeral_range,
    queue_depths,
    reports_for,
    retried_call,
    unpublished,
    wait_for_copies,
    wait_for_registration,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    # About 3 minutes on an idle 2-core machine; restarts take far longer when it is busy.
    pytest.mark.timeout(900),
]

COMPUTERS = 500
REPORTED_UPDATES = 20  # COMPUTERS x REPORTED_UPDATES = 10,000 reports
CHANGES = 1000
DECLINE_LANES = 2  # updates approved and declined in turn, on one group each
DECLINE_STEPS = 20  # per decline lane: approve, decline, approve, ...
GROUPS = 12
REPORTS_PER_SECOND = 125.0
CHANGES_PER_SECOND = 12.5
API_WORKERS = 6
KILL_ORDER = ("catalog", "approval", "scheduler", "reporting", "console")
KILL_AT = (0.12, 0.28, 0.44, 0.60, 0.76)
"""Share of the report stream published when each service is killed."""
SERVICES = [CATALOG, APPROVAL, SCHEDULER, REPORTING]
WORKLOAD = (
    f"{COMPUTERS * REPORTED_UPDATES:,} agent reports ({COMPUTERS} computers x "
    f"{REPORTED_UPDATES} updates), {CHANGES:,} approval changes via the API; the five "
    "killed in turn in one run"
)
TEST = "tests/integration/test_kill_every_service.py::test_every_service_killed_in_turn"
DOCUMENTS = [ROOT / "data" / "msrc" / f"cvrf-2026-{month}.xml" for month in ("Jan", "Feb")]
"""56 updates, 38 of them offered by the default catalog settings."""
OFFERED = 30

Key = tuple[str, str, datetime | None]
"""One approval change as its event tells it: update, group, effective deadline (None: no
approval applies any more)."""


@dataclass(frozen=True)
class Step:
    """One API call of the approval workload, and the approval.changed it must cause."""

    method: str
    path: str
    body: dict[str, Any]
    expect: Key
    declines: bool = False


@dataclass
class Kill:
    """One kill -9: what had been sent and had taken effect then, and when it came back."""

    service: str
    reports_sent: int = 0
    changes_sent: int = 0
    restarted_at: float = 0.0
    ready_seconds: float = 0.0
    recover_seconds: float | None = None


@dataclass
class Run:
    """What the workload sent, and what the client saw."""

    reports_sent: int = 0
    api: ApiTally = field(default_factory=ApiTally)
    api_successes: list[float] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at each batch of reports sent."""


def _approve(update: str, group: str, at: datetime) -> dict[str, Any]:
    return {
        "updates": [update],
        "groups": [
            {
                "group": group,
                "action": "required_install",
                "deadline": {"kind": "custom", "at": at.isoformat()},
            }
        ],
    }


def approval_lanes(
    updates: list[str], declinable: list[str], groups: list[str]
) -> list[list[Step]]:
    """CHANGES calls in lanes whose steps must run in order: per (update, group) approve,
    move the deadline, drop the approval (inherit), approve again; per declinable update,
    approve on one group and decline, in turn. Each call changes one (update, group) once."""
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    lanes: list[list[Step]] = []
    for d, update in enumerate(declinable):
        group = groups[d % len(groups)]
        lane: list[Step] = []
        for step in range(DECLINE_STEPS):
            if step % 2 == 0:
                at = base + timedelta(days=100 + d * DECLINE_STEPS + step)
                body = _approve(update, group, at)
                lane.append(Step("POST", "/updates/approve", body, (update, group, at)))
            else:
                body = {"updates": [update]}
                lane.append(
                    Step("POST", "/updates/decline", body, (update, group, None), declines=True)
                )
        lanes.append(lane)
    pairs_needed = (CHANGES - DECLINE_LANES * DECLINE_STEPS) // 4
    pairs = [(u, g) for g in groups for u in updates][:pairs_needed]
    assert len(pairs) == pairs_needed, f"{len(updates)} updates x {len(groups)} groups too few"
    for n, (update, group) in enumerate(pairs):
        first, second, third = (base + timedelta(days=1 + n % 60, hours=h) for h in (1, 2, 3))
        inherit = {"updates": [update], "groups": [{"group": group, "action": "inherit"}]}
        lanes.append(
            [
                Step(
                    "POST",
                    "/updates/approve",
                    _approve(update, group, first),
                    (update, group, first),
                ),
                Step(
                    "POST",
                    "/updates/approve",
                    _approve(update, group, second),
                    (update, group, second),
                ),
                Step("POST", "/updates/approve", inherit, (update, group, None)),
                Step(
                    "POST",
                    "/updates/approve",
                    _approve(update, group, third),
                    (update, group, third),
                ),
            ]
        )
    assert sum(len(lane) for lane in lanes) == CHANGES
    return lanes


def change_key(body: bytes, groups_by_id: dict[str, str]) -> Key:
    """The (update, group name, effective deadline) an approval.changed event carries."""
    changed = a.ApprovalChanged.model_validate_json(body)
    state = changed.state
    effective = state.effective
    at = None if effective is None or effective.deadline.at is None else effective.deadline.at
    return (
        state.update_id,
        groups_by_id[state.group_id],
        None if at is None else at.astimezone(UTC),
    )


@pytest.fixture
async def system(
    infra: Infra, log_dir: Path, tmp_path: Path
) -> AsyncIterator[tuple[System, asyncpg.Connection]]:
    """The whole system at real speed, and a connection to its own database."""
    async with running_system(
        infra,
        log_dir,
        tmp_path / "content",
        epoch=datetime.now(UTC),
        speed=1.0,
        port=port_outside_ephemeral_range,
    ) as running:
        conn = await asyncpg.connect(running.database_url)
        try:
            yield running, conn
        finally:
            await conn.close()


async def prepare(
    system: System, bus: Bus, db: asyncpg.Connection, prefix: str
) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """The catalog imported, groups made, computers checked in with every service; returns
    (computers, reported updates, approval updates, declinable updates, group names)."""
    groups = [f"{prefix}g{n:02d}" for n in range(GROUPS)]
    updates = await import_and_group(system, list(DOCUMENTS), groups, at_least=OFFERED)
    reported = updates[:REPORTED_UPDATES]
    declinable = updates[-DECLINE_LANES:]
    approvable = updates[:-DECLINE_LANES]
    await wait_for_copies(db, reported)
    computers = [f"{prefix}c{n:04d}" for n in range(COMPUTERS)]
    await publish_checkins(bus, [checkin(c) for c in computers])
    await wait_for_registration(db, prefix, COMPUTERS)
    return computers, reported, approvable, declinable, groups


async def publish_reports(bus: Bus, reports: list[Report], run: Run) -> None:
    """The reports at REPORTS_PER_SECOND, in confirmed batches, counting what was sent."""
    started = time.monotonic()
    batch = 50
    for start in range(0, len(reports), batch):
        due = started + start / REPORTS_PER_SECOND
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        chunk = [r.message() for r in reports[start : start + batch]]
        confirmed = await bus.publish_many([(m, Exchange.AGENTS.value, k) for m, k in chunk])
        assert all(confirmed), "the broker must confirm every report"
        run.reports_sent += len(chunk)
        run.progress.set()


async def run_changes(system: System, lanes: list[list[Step]], run: Run) -> None:
    """Every lane's steps in order, API_WORKERS lanes at once, paced to CHANGES_PER_SECOND."""
    queue: asyncio.Queue[list[Step]] = asyncio.Queue()
    for lane in lanes:
        queue.put_nowait(lane)
    started = time.monotonic()
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while not queue.empty():
            lane = queue.get_nowait()
            for step in lane:
                due = started + issued / CHANGES_PER_SECOND
                issued += 1
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await retried_call(system, run.api, step.method, step.path, json=step.body)
                run.api_successes.append(time.monotonic())

    await asyncio.gather(*(worker() for _ in range(API_WORKERS)))


async def kill_in_turn(system: System, db: asyncpg.Connection, total: int, run: Run) -> None:
    """Each service killed -9 once the report stream reaches its share, started again, and
    watched until it has an effect again."""
    for service, share in zip(KILL_ORDER, KILL_AT, strict=True):
        while run.reports_sent < share * total:
            run.progress.clear()
            await run.progress.wait()
        runner = system.runners[service]
        kill = Kill(service, run.reports_sent, run.api.calls)
        run.kills.append(kill)
        runner.kill()
        before = 0 if service in ("console", "catalog") else await inbox_rows(db, service)
        runner.start()
        kill.restarted_at = time.monotonic()
        await runner.wait_ready(60)
        kill.ready_seconds = time.monotonic() - kill.restarted_at
        kill.recover_seconds = await recovered(system, db, service, before, kill.restarted_at)


async def recovered(
    system: System, db: asyncpg.Connection, service: str, before: int, since: float
) -> float | None:
    """Seconds from the restart to the service's first effect after it: a message handled
    (a new inbox row) for approval, scheduler and reporting; an answered query for the
    catalog (this workload sends it nothing else). The console's is read afterwards from the
    client's first accepted change (None here)."""
    if service == "console":
        return None
    while True:
        if service == "catalog":
            response = await system.http.get("/api/v1/catalog/updates", params={"limit": 1})
            if response.status_code == 200:
                return time.monotonic() - since
        elif await inbox_rows(db, service) > before:
            return time.monotonic() - since
        await asyncio.sleep(0.2)


async def quiescent(bus: Bus, db: asyncpg.Connection, effects: Any) -> None:
    """Until queues and outboxes are empty and the effects stop moving for 3 s."""
    last: Any = None
    steady_since = time.monotonic()

    async def settled() -> bool:
        nonlocal last, steady_since
        now = await effects()
        depth = sum((await queue_depths(bus, SERVICES)).values())
        pending = sum(
            (await unpublished(db, ["catalog", "approval", "scheduler", "reporting"])).values()
        )
        if now != last or depth or pending:
            last, steady_since = now, time.monotonic()
            return False
        return time.monotonic() - steady_since >= 3.0

    await eventually(settled, timeout=180, what="the system to settle", every=0.5)


async def test_every_service_killed_in_turn(
    system: tuple[System, asyncpg.Connection], bus: Bus
) -> None:
    api, db = system
    prefix = f"kes{uuid.uuid4().hex[:5]}"
    phases = [("start", time.monotonic())]
    computers, reported, approvable, declinable, groups = await prepare(api, bus, db, prefix)
    phases.append(("prepared", time.monotonic()))
    reports = reports_for(computers, reported, datetime.now(UTC) - timedelta(days=1))
    lanes = approval_lanes(approvable, declinable, groups)
    group_names = {g["group_id"]: g["name"] for g in (await api.ok("GET", "/groups"))["groups"]}
    events = Collector()
    for spec in (a.APPROVAL_CHANGED, a.UPDATE_DECLINED):
        queue = await bind_test_queue(
            bus, f"test.{prefix}.{spec.type}", Exchange.EVENTS, spec.routing_key()
        )
        await queue.consume(events)

    run = Run()
    await asyncio.gather(
        publish_reports(bus, reports, run),
        run_changes(api, lanes, run),
        kill_in_turn(api, db, len(reports), run),
    )
    phases.append(("streamed", time.monotonic()))

    async def effects() -> tuple[int, ...]:
        counts = [
            await db.fetchval(
                f"SELECT count(*) FROM {schema}.computer_updates"
                " WHERE computer_id LIKE $1 || '%' AND state NOT IN ('unknown', 'none')",
                prefix,
            )
            for schema in ("reporting", "scheduler")
        ]
        return (*counts, len(set(events.ids)))

    await quiescent(bus, db, effects)
    phases.append(("settled", time.monotonic()))
    figures = await count_effects(
        api=api,
        db=db,
        bus=bus,
        prefix=prefix,
        reports=reports,
        lanes=lanes,
        events=events,
        group_names=group_names,
    )
    phases.append(("counted", time.monotonic()))
    console = next(k for k in run.kills if k.service == "console")
    console.recover_seconds = min(
        (t - console.restarted_at for t in run.api_successes if t > console.restarted_at),
        default=None,
    )
    client = (
        f"the client made {run.api.calls:,} calls in {run.api.attempts:,} attempts "
        f"({run.api.retried:,} retried: {dict(run.api.failures) or 'none failed'})"
    )
    for kill in run.kills:
        row = figures.row(kill.service)
        record(
            FaultResult(
                fault=f"kill -9 {kill.service} mid-stream (all five in turn)",
                workload=WORKLOAD,
                sent=row.sent,
                effects=row.effects,
                lost=row.lost,
                duplicated=row.duplicated,
                dead_lettered=figures.dead_lettered,
                recover_seconds=kill.recover_seconds,
                test=TEST,
                note=f"killed after {kill.reports_sent:,} reports and {kill.changes_sent:,} "
                f"API calls were sent, ready again {kill.ready_seconds:.1f} s after its restart; "
                f"{row.what}; {client}; dead letters: {figures.reasons or 'none'}",
            )
        )
    took = ", ".join(
        f"{name} {t - before:.0f} s" for (_, before), (name, t) in itertools.pairwise(phases)
    )
    print(f"\nkill every service: {figures}\n{client}\nkills: {run.kills}\nphases: {took}")
    for kill in run.kills:
        assert kill.reports_sent < len(reports), f"{kill.service} killed after the stream"
        assert kill.changes_sent < CHANGES, f"{kill.service} killed after the API calls"
    assert run.api.succeeded == CHANGES
    assert figures.dead_lettered == 0, figures.reasons
    for service in KILL_ORDER:
        row = figures.row(service)
        assert (row.lost, row.duplicated) == (0, 0), (service, row, figures)
    # What a retry after a lost answer does, without a crash: the last call again, no change.
    last = lanes[-1][-1]
    again = await api.ok(last.method, last.path, json=last.body)
    assert (again["explicit_changed"], again["effective_changed"]) == (0, 0)


@dataclass(frozen=True)
class Row:
    sent: int
    effects: int
    lost: int
    duplicated: int
    what: str


@dataclass
class Figures:
    """Effects counted against what was sent, per kind."""

    reporting: Row
    scheduler: Row
    approval: Row
    dead_letters: dict[str, int]
    reasons: dict[str, dict[str, int]]
    """Why, per dead-letter queue that holds any."""

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    def row(self, service: str) -> Row:
        if service in ("approval", "console"):
            return self.approval
        if service == "scheduler":
            return self.scheduler
        if service == "reporting":
            return self.reporting
        # The catalog carries none of this workload: its row is every effect the system had.
        rows = (self.reporting, self.scheduler, self.approval)
        return Row(
            sum(r.sent for r in rows),
            sum(r.effects for r in rows),
            sum(r.lost for r in rows),
            sum(r.duplicated for r in rows),
            "the catalog carries none of this workload, so its row sums every kind (reports "
            "in reporting, reports in scheduler, approval changes); recovered = its first "
            "answered query",
        )


def _compare(expected: Counter[Any], found: Counter[Any]) -> tuple[int, int, int]:
    """(matched, lost, duplicated) of a multiset of effects against the expected one."""
    matched = sum((expected & found).values())
    return matched, sum((expected - found).values()), sum((found - expected).values())


async def count_effects(
    *,
    api: System,
    db: asyncpg.Connection,
    bus: Bus,
    prefix: str,
    reports: list[Report],
    lanes: list[list[Step]],
    events: Collector,
    group_names: dict[str, str],
) -> Figures:
    expected_states = Counter((r.computer_id, r.update_id, r.state) for r in reports)
    installs = sum(1 for r in reports if r.is_install)

    async def states(schema: str) -> Counter[tuple[str, str, str]]:
        rows = await db.fetch(
            f"SELECT computer_id, update_id::text AS update_id, state FROM {schema}"
            ".computer_updates WHERE computer_id LIKE $1 || '%'"
            " AND state NOT IN ('unknown', 'none')",
            prefix,
        )
        return Counter((r["computer_id"], r["update_id"], r["state"]) for r in rows)

    # Reporting: one state per report; one install attempt per install report; counters
    # per update and per computer equal to the states they count; the compliance counts it
    # serves per update equal to the reports sent.
    matched, lost, duplicated = _compare(expected_states, await states("reporting"))
    attempts = int(
        await db.fetchval(
            "SELECT count(*) FROM reporting.install_attempts WHERE computer_id LIKE $1 || '%'",
            prefix,
        )
    )
    lost += max(0, installs - attempts)
    duplicated += max(0, attempts - installs)
    drift = await db.fetch(
        "SELECT update_id, state, coalesce(c.n, 0) AS counted, coalesce(s.n, 0) AS stored"
        " FROM reporting.update_counts c FULL JOIN (SELECT update_id, state, count(*) AS n"
        " FROM reporting.computer_updates WHERE state <> 'none' GROUP BY 1, 2) s"
        " USING (update_id, state) WHERE coalesce(c.n, 0) <> coalesce(s.n, 0)"
    )
    duplicated += sum(max(0, r["counted"] - r["stored"]) for r in drift)
    lost += sum(max(0, r["stored"] - r["counted"]) for r in drift)
    per_computer = await db.fetchval(
        "SELECT coalesce(sum(installed + needed + failed + pending_restart + not_applicable), 0)"
        " FROM reporting.computers WHERE computer_id LIKE $1 || '%'",
        prefix,
    )
    duplicated += max(0, int(per_computer) - len(reports))
    lost += max(0, len(reports) - int(per_computer))
    served: Counter[tuple[str, str]] = Counter()
    for update in sorted({r.update_id for r in reports}):
        counts = (await api.ok("GET", f"/reports/updates/{update}"))["update"]["counts"]
        for state in ("installed", "needed", "failed", "not_applicable"):
            served[update, state] += int(counts[state])
    _, served_lost, served_duplicated = _compare(
        Counter((r.update_id, r.state) for r in reports), served
    )
    reporting = Row(
        len(reports),
        matched,
        lost + served_lost,
        duplicated + served_duplicated,
        f"reporting: {matched:,} states as reported, {attempts:,} install attempts of "
        f"{installs:,}, {len(drift)} counters off, compliance counts off by "
        f"{served_lost + served_duplicated}",
    )
    matched, lost, duplicated = _compare(expected_states, await states("scheduler"))
    scheduler = Row(
        len(reports), matched, lost, duplicated, f"scheduler: {matched:,} states as reported"
    )

    # Approval: one approval.changed per call (update, group, deadline), as events on the
    # test queue (distinct ids) and as outbox rows; one update.declined per decline.
    steps = [step for lane in lanes for step in lane]
    ours = {step.expect[0] for step in steps}
    expected = Counter(step.expect for step in steps)
    delivered: dict[str, tuple[str, bytes]] = {
        m.message_id or "": (m.routing_key or "", m.body) for m in events.messages
    }
    changed = Counter(
        key
        for routing_key, body in delivered.values()
        if routing_key == a.APPROVAL_CHANGED.type
        and (key := change_key(body, group_names))[0] in ours
    )
    declined_events = sum(
        1
        for routing_key, body in delivered.values()
        if routing_key == a.UPDATE_DECLINED.type and json.loads(body)["update_id"] in ours
    )
    rows = await db.fetch(
        "SELECT routing_key, body FROM approval.outbox WHERE routing_key = ANY ($1::text[])",
        [a.APPROVAL_CHANGED.type, a.UPDATE_DECLINED.type],
    )
    outbox = Counter(
        change_key(r["body"], group_names)
        for r in rows
        if r["routing_key"] == a.APPROVAL_CHANGED.type
    )
    outbox = Counter({k: n for k, n in outbox.items() if k[0] in ours})
    declines = sum(1 for step in steps if step.declines)
    declined_rows = sum(
        1
        for r in rows
        if r["routing_key"] == a.UPDATE_DECLINED.type and json.loads(r["body"])["update_id"] in ours
    )
    matched, lost, duplicated = _compare(expected, changed)
    _, outbox_lost, outbox_duplicated = _compare(expected, outbox)
    approval = Row(
        len(steps),
        matched,
        max(lost, outbox_lost) + max(0, declines - declined_events),
        max(duplicated, outbox_duplicated) + max(0, declined_events - declines),
        f"approval: {matched:,} approval.changed events as the calls asked "
        f"({sum(changed.values()):,} distinct events, {sum(outbox.values()):,} outbox rows), "
        f"{declined_events} update.declined events and {declined_rows} outbox rows for "
        f"{declines} declines",
    )
    depths = await dead_letter_depths(bus, SERVICES)
    reasons = {q: dict(await dead_letter_reasons(bus, q)) for q, n in depths.items() if n}
    return Figures(reporting, scheduler, approval, depths, reasons)
