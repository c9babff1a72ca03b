"""Catalog import of the MSRC January + February documents against a plain XML parse of them.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_catalog_import [--rounds N]

Everything runs in this one process, against a vhost and a database of its own
(tests.support.infra.local_infra) that are dropped at the end, even on failure. Both files
are read into memory once; every phase below works from those bytes, never from the disk.

Each round measures, one after the other (so slow moments of the machine hit every phase):

* baseline: `xml.etree.ElementTree.iterparse` over both files, "end" events only, every
  element cleared as it ends: the cheapest full XML parse. For reference also iterparse with
  "start" and "end" events (what parse_cvrf asks for), and `ET.parse` (a whole tree each);
* parse only: services.catalog.sources.msrc.parse_cvrf over both files (no database, no bus);
* end to end: services.catalog.handlers.SERVICE runs through ServiceProcess in this process
  on a FRESH database (so every round really inserts and publishes); January then February
  are sent with libs.bus.RpcClient, each as the CLI sends it (`lockgate catalog import-msrc`:
  an ImportDocument, gzip + base64, one call, reply awaited). Timed from sending the first
  command to the reply of the second, and until every `catalog.update.*` event of the two
  imports has reached a quorum sink queue bound to `catalog.update.#` on `lockgate.events`
  (the outbox relay publishes with confirms). The client's gzip + base64 of the documents
  happens before the clock starts; it is timed and reported on its own.

After the timed rounds, one more end-to-end round (not counted in the table) runs with timing
wrappers around the pipeline and the catalog's handler steps, and reports where the time went.

Every round checks its results and the script exits with an error if any is wrong: the same
document ids, KBs and advisories from every parse; the import replies agree with parse_cvrf
(updates, advisories, published = every distinct KB); every published event at the sink names
the update id of one distinct KB; the sink got exactly the events the replies announce, each
once; and the catalog outbox holds exactly those events, all marked published.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import gzip
import io
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch
from xml.etree import ElementTree as ET

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.bench_pipeline import busy_since, cpu_seconds, environment, machine_ticks
from libs.bus import Bus, RpcClient
from libs.bus.bus import Binding
from libs.contracts import catalog as c
from libs.contracts.names import Exchange
from libs.contracts.system import PING, Ping
from libs.db import inbox
from libs.db.outbox import Outbox, OutboxRelay
from libs.db.pool import drop_database
from libs.observability.logging import configure_logging
from libs.service.pipeline import Pipeline
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.catalog import handlers, store
from services.catalog.domain.updates import update_id_for_kb
from services.catalog.handlers import SERVICE as CATALOG
from services.catalog.sources.msrc import parse_cvrf
from services.cli.catalog_commands import IMPORT_TIMEOUT_SECONDS
from tests.support.infra import Infra, local_infra

ROOT = Path(__file__).resolve().parent.parent
FILES = (ROOT / "data" / "msrc" / "cvrf-2026-Jan.xml", ROOT / "data" / "msrc" / "cvrf-2026-Feb.xml")
DOCUMENT_IDS = ("2026-Jan", "2026-Feb")
SINK_QUEUE = "bench.catalog-updates-sink"
SINK_BINDING = "catalog.update.#"
DRAIN_TIMEOUT = 120.0
POLL_SECONDS = 0.001
GOAL = 2.0

Documents = list[tuple[Path, bytes]]


class BenchFailure(RuntimeError):
    """A result of the benchmark is wrong: the figures would not mean anything."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise BenchFailure(what)


# --- parse phases ---------------------------------------------------------------------------


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds `work` takes (after a full collection, so no earlier garbage is paid here)."""
    gc.collect()
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def iterparse_end(documents: Documents) -> int:
    """The cheapest full parse: every element built, handed over at its end, then cleared."""
    elements = 0
    for _, raw in documents:
        # S314: trusted local files, and this is the parser parse_cvrf itself uses.
        for _, element in ET.iterparse(io.BytesIO(raw)):  # noqa: S314
            elements += 1
            element.clear()
    return elements


def iterparse_start_end(documents: Documents) -> int:
    """The same with "start" and "end" events, as parse_cvrf asks for; cleared at each end."""
    elements = 0
    for _, raw in documents:
        for event, element in ET.iterparse(io.BytesIO(raw), events=("start", "end")):  # noqa: S314
            if event == "end":
                elements += 1
                element.clear()
    return elements


def whole_trees(documents: Documents) -> list[ET.ElementTree[ET.Element]]:
    """`ET.parse` of each file: the whole tree in memory, nothing cleared (counted untimed)."""
    return [ET.parse(io.BytesIO(raw)) for _, raw in documents]  # noqa: S314


def count_elements(trees: list[ET.ElementTree[ET.Element]]) -> int:
    return sum(1 for tree in trees for _ in tree.iter())


@dataclass(frozen=True)
class Parsed:
    """What parse_cvrf read of the two documents."""

    document_ids: tuple[str, ...]
    updates: tuple[int, ...]
    advisories: tuple[int, ...]
    kbs: frozenset[str]


def parse_both(documents: Documents) -> Parsed:
    parsed = [parse_cvrf(io.BytesIO(raw)) for _, raw in documents]
    return Parsed(
        document_ids=tuple(d.document_id for d in parsed),
        updates=tuple(len(d.updates) for d in parsed),
        advisories=tuple(len(d.advisories) for d in parsed),
        kbs=frozenset(u.kb for d in parsed for u in d.updates),
    )


def import_requests(documents: Documents) -> list[c.ImportDocument]:
    """The commands exactly as `lockgate catalog import-msrc <path>` builds them."""
    return [
        c.ImportDocument(
            content_gzip_b64=base64.b64encode(gzip.compress(raw)).decode(), label=str(path)
        )
        for path, raw in documents
    ]


# --- the event sink -------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    at: float
    type: str
    message_id: str
    subject: str | None


class Sink:
    """Counts the catalog's update events as they reach a quorum queue bound to them."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        at = time.perf_counter()
        subject = (message.headers or {}).get("ce-subject")
        self.received.append(
            Received(
                at=at,
                type=message.type or "",
                message_id=message.message_id or "",
                subject=subject.decode() if isinstance(subject, bytes) else str(subject),
            )
        )

    def take(self) -> list[Received]:
        received, self.received = self.received, []
        return received


@asynccontextmanager
async def sink_consumer(bus: Bus, sink: Sink) -> AsyncIterator[None]:
    await bus.declare_queue(SINK_QUEUE, [Binding(Exchange.EVENTS, SINK_BINDING)])
    channel = await bus.connection.channel(publisher_confirms=False)
    try:
        queue = await channel.get_queue(SINK_QUEUE)
        await queue.consume(sink.on_message, no_ack=True)
        yield
    finally:
        await channel.close()


async def wait_for(check_done: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while not await check_done():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {DRAIN_TIMEOUT:g} s")
        await asyncio.sleep(POLL_SECONDS)


# --- end to end -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EndToEnd:
    first_reply: float
    """Seconds from sending January's command to its reply."""
    replied: float
    """Seconds from sending January's command to February's reply."""
    published: float
    """Seconds from sending January's command until it replied and every event reached the sink."""
    first_event: float
    """Seconds from sending January's command to the first event at the sink."""
    events: Counter[str]
    cpu: float
    machine_busy: float

    @property
    def total_events(self) -> int:
        return sum(self.events.values())


@asynccontextmanager
async def catalog_service(infra: Infra, index: int) -> AsyncIterator[str]:
    """The catalog service on a database of its own, created now and dropped afterwards."""
    url = f"{infra.database_url}_r{index}"
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=url,
        heartbeat_seconds=3600.0,  # one heartbeat at start, before the clock starts
    )
    process = ServiceProcess(CATALOG, settings, http_port=0)
    try:
        await process.start()
        try:
            yield url
        finally:
            await process.stop()
    finally:
        await drop_database(url)


async def outbox_state(db: asyncpg.Connection) -> tuple[int, int]:
    """(unpublished rows of any kind, catalog.update.* rows) of the catalog outbox."""
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE published_at IS NULL) AS pending,"
        " count(*) FILTER (WHERE routing_key LIKE 'catalog.update.%') AS updates"
        " FROM catalog.outbox"
    )
    assert row is not None  # an aggregate always returns a row
    return int(row["pending"]), int(row["updates"])


async def end_to_end(
    infra: Infra,
    rpc: RpcClient,
    *,
    sink: Sink,
    requests: list[c.ImportDocument],
    parsed: Parsed,
    index: int,
    instrument: Callable[[], AsyncExitStack] | None = None,
) -> EndToEnd:
    async with catalog_service(infra, index) as url:
        db = await asyncpg.connect(url)
        try:
            await rpc.call(PING["catalog"], Ping())  # consumer up, reply channel open

            async def quiet() -> bool:
                return (await outbox_state(db))[0] == 0

            await wait_for(quiet, "the start-up heartbeat to be published")
            check(not sink.take(), "the sink got events before the first import")
            gc.collect()
            async with AsyncExitStack() if instrument is None else instrument():
                cpu_before, ticks_before = cpu_seconds(), machine_ticks()
                started = time.perf_counter()
                results: list[c.ImportResult] = []
                reply_times: list[float] = []
                for request in requests:
                    results.append(
                        await rpc.call(c.IMPORT_DOCUMENT, request, timeout=IMPORT_TIMEOUT_SECONDS)
                    )
                    reply_times.append(time.perf_counter())
                replied = reply_times[-1]
                expected = sum(r.published + r.revised + r.superseded for r in results)

                async def all_arrived() -> bool:
                    return len(sink.received) >= expected

                await wait_for(all_arrived, f"{expected} events at the sink")
                cpu, busy = cpu_seconds() - cpu_before, busy_since(ticks_before)
            received = list(sink.received)
            await wait_for(quiet, "the outbox to be marked published")
            pending, update_rows = await outbox_state(db)
        finally:
            await db.close()
    # The service has stopped (its relay flushed); nothing more may have arrived.
    received_all = sink.take()
    check_import(results, parsed, received_all, update_rows, pending)
    last = max([replied, *(r.at for r in received)])
    return EndToEnd(
        first_reply=reply_times[0] - started,
        replied=replied - started,
        published=last - started,
        first_event=min(r.at for r in received) - started,
        events=Counter(r.type for r in received),
        cpu=cpu,
        machine_busy=busy,
    )


def check_import(
    results: list[c.ImportResult],
    parsed: Parsed,
    received: list[Received],
    update_rows: int,
    pending: int,
) -> None:
    check(
        tuple(r.document_id for r in results) == parsed.document_ids,
        f"imported {[r.document_id for r in results]}, parse_cvrf read {parsed.document_ids}",
    )
    check(
        tuple(r.updates_in_document for r in results) == parsed.updates
        and tuple(r.advisories_in_document for r in results) == parsed.advisories,
        f"import replies {results} disagree with parse_cvrf {parsed}",
    )
    for r in results:
        check(
            r.published + r.revised + r.unchanged == r.updates_in_document,
            f"{r.document_id}: published + revised + unchanged != updates: {r}",
        )
    published = sum(r.published for r in results)
    check(
        published == len(parsed.kbs),
        f"{published} updates published on a fresh database, {len(parsed.kbs)} distinct KBs",
    )
    expected = Counter(
        {
            c.UPDATE_PUBLISHED.type: published,
            c.UPDATE_REVISED.type: sum(r.revised for r in results),
            c.UPDATE_SUPERSEDED.type: sum(r.superseded for r in results),
        }
    )
    got = Counter(r.type for r in received)
    check(+got == +expected, f"sink got {dict(got)}, the import replies announce {dict(expected)}")
    check(
        len({r.message_id for r in received}) == len(received),
        "an event reached the sink twice",
    )
    subjects = {r.subject for r in received if r.type == c.UPDATE_PUBLISHED.type}
    check(
        subjects == {update_id_for_kb(kb) for kb in parsed.kbs},
        "the published events do not name exactly the update ids of the distinct KBs",
    )
    check(
        update_rows == len(received) and pending == 0,
        f"outbox holds {update_rows} update events ({pending} unpublished rows), "
        f"sink got {len(received)}",
    )


# --- where the time goes (one extra, instrumented round) ------------------------------------


@dataclass
class Stages:
    """Wall time and calls per wrapped function, while the instrumented round runs."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def add(self, label: str, seconds: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds
        self.calls[label] += 1

    def sync(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - any wrapped function
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - started)

        return wrapper

    def asynchronous(
        self, label: str, function: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - any wrapped function
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - started)

        return wrapper


# (label, depth, owner, attribute, async?, static?): printed in this order, nested by depth.
STAGES: tuple[tuple[str, int, object, str, bool, bool], ...] = (
    ("service: Pipeline.process (whole message)", 0, Pipeline, "process", True, False),
    ("decode command (pydantic, base64 text)", 1, Pipeline, "_decode", False, True),
    ("inbox.claim", 1, inbox, "claim", True, False),
    ("handler + reply JSON (Pipeline._answer)", 1, Pipeline, "_answer", True, True),
    ("base64 + gunzip + parse_cvrf (thread)", 2, handlers, "_read_document", False, False),
    ("base64 + gunzip", 3, handlers, "_document_bytes", False, False),
    ("parse_cvrf", 3, handlers, "parse_cvrf", False, False),
    ("store.lock_catalog", 2, store, "lock_catalog", True, False),
    ("store.record_document", 2, store, "record_document", True, False),
    ("store.save_contributions", 2, store, "save_contributions", True, False),
    ("store.save_links", 2, store, "save_links", True, False),
    ("store.save_advisories", 2, store, "save_advisories", True, False),
    ("store.contributions", 2, store, "contributions", True, False),
    ("merge", 2, handlers, "merge", False, False),
    ("store.updates_by_kb", 2, store, "updates_by_kb", True, False),
    ("content_hash", 2, handlers, "content_hash", False, False),
    ("catalog_fields", 2, handlers, "catalog_fields", False, False),
    ("store.put_update", 2, store, "put_update", True, False),
    ("store.mark_newly_superseded", 2, store, "mark_newly_superseded", True, False),
    ("store.snapshot", 2, store, "snapshot", False, False),
    ("Outbox.add_many", 2, Outbox, "add_many", True, False),
    ("inbox.store_reply", 1, inbox, "store_reply", True, False),
    ("reply publish with confirm", 1, Pipeline, "_reply", True, False),
    ("relay: OutboxRelay.drain (concurrent)", 0, OutboxRelay, "drain", True, False),
)


def breakdown(stages: Stages) -> list[tuple[str, int, float, str]]:
    """(label, depth, seconds, calls) per wrapped step, in STAGES order; after the children of
    a step, what of its time the children do not account for (not wrapped: commit, ack, ...)."""
    lines: list[tuple[str, int, float, str]] = []
    open_parents: list[tuple[str, int, float]] = []  # (label, depth, seconds left)

    def close(down_to: int) -> None:
        while open_parents and open_parents[-1][1] >= down_to:
            _, depth, left = open_parents.pop()
            lines.append(("(rest, not wrapped)", depth + 1, left, ""))

    for index, (label, depth, *_) in enumerate(STAGES):
        close(depth)
        seconds = stages.seconds.get(label, 0.0)
        if open_parents:
            parent, parent_depth, left = open_parents[-1]
            open_parents[-1] = (parent, parent_depth, left - seconds)
        lines.append((label, depth, seconds, str(stages.calls[label])))
        following = STAGES[index + 1][1] if index + 1 < len(STAGES) else 0
        if following > depth:
            open_parents.append((label, depth, seconds))
    close(0)
    return lines


def instrumenting(stages: Stages) -> Callable[[], AsyncExitStack]:
    def enter() -> AsyncExitStack:
        stack = AsyncExitStack()
        for label, _, owner, attribute, is_async, is_static in STAGES:
            original = getattr(owner, attribute)
            wrapped = (stages.asynchronous if is_async else stages.sync)(label, original)
            stack.enter_context(
                patch.object(owner, attribute, staticmethod(wrapped) if is_static else wrapped)
            )
        return stack

    return enter


# --- report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)


def table(rows: list[Row], baseline: Row) -> None:
    header = (
        f"| {'phase':<52} | {'median ms':>9} | {'min ms':>8} | {'max ms':>8} "
        f"| {'x iterparse (median)':>20} | {'x iterparse (min)':>17} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        print(
            f"| {row.name:<52} | {row.median * 1000:>9.1f} | {row.best * 1000:>8.1f} "
            f"| {max(row.samples) * 1000:>8.1f} | {row.median / baseline.median:>20.2f} "
            f"| {row.best / baseline.best:>17.2f} |"
        )


def report(
    documents: Documents,
    *,
    rounds: int,
    rows: dict[str, Row],
    runs: list[EndToEnd],
    parsed: Parsed,
    elements: int,
    stages: Stages,
    instrumented: EndToEnd,
    env: dict[str, str],
) -> None:
    print()
    for name, value in env.items():
        print(f"{name:>12}: {value}")
    sizes = ", ".join(f"{path.name} {len(raw) / 1e6:.2f} MB" for path, raw in documents)
    print(f"   documents: {sizes}; {elements} XML elements in all")
    print(
        f"      parsed: {', '.join(parsed.document_ids)}: updates {parsed.updates}, "
        f"advisories {parsed.advisories}, {len(parsed.kbs)} distinct KBs"
    )
    print()
    print(f"{rounds} rounds; ratios are to the plain iterparse (median to median, min to min)")
    table(list(rows.values()), rows["iterparse"])
    print()
    events = runs[0].events
    print(
        f"events per round: {runs[0].total_events} "
        f"({', '.join(f'{n} {t}' for t, n in sorted(events.items()))})"
    )
    rates = [run.total_events / run.published for run in runs]
    print(
        f"events/s (events / time until replied and all published): median "
        f"{statistics.median(rates):.0f}, best {max(rates):.0f}"
    )
    tails = [run.published - run.replied for run in runs]
    print(
        "after February's reply, the last event reached the sink in: median "
        f"{statistics.median(tails) * 1000:.1f} ms (min {min(tails) * 1000:.1f}, "
        f"max {max(tails) * 1000:.1f}); January replied after median "
        f"{statistics.median(r.first_reply for r in runs) * 1000:.1f} ms, its first event "
        f"reached the sink after median {statistics.median(r.first_event for r in runs) * 1000:.1f}"
        " ms"
    )
    print(
        "end to end, this process's CPU (user+sys): median "
        f"{statistics.median(r.cpu for r in runs) * 1000:.0f} ms per round; machine busy "
        f"(both cores, broker and database included): median "
        f"{statistics.median(r.machine_busy for r in runs):.0%}"
    )
    parse = rows["parse_cvrf"]
    e2e = rows["end to end: send Jan -> reply Feb"]
    base = rows["iterparse"]
    for name, row in (("parse_cvrf", parse), ("end-to-end import", e2e)):
        ratio = row.median / base.median
        verdict = "met" if ratio <= GOAL else "NOT met"
        print(f"goal <= {GOAL:g}x for {name}: {verdict} ({ratio:.2f}x by medians)")
    print()
    print(
        "Where the time goes: one extra end-to-end round with timing wrappers "
        f"(not in the table above): send Jan -> reply Feb {instrumented.replied * 1000:.1f} ms, "
        f"all published {instrumented.published * 1000:.1f} ms"
    )
    header = f"| {'step (wall time, summed over both imports)':<50} | {'calls':>5} | {'ms':>8} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for label, depth, seconds, calls in breakdown(stages):
        name = "  " * depth + label
        print(f"| {name:<50} | {calls:>5} | {seconds * 1000:>8.1f} |")
    process = stages.seconds.get(STAGES[0][0], 0.0)
    print(
        f"client side and broker (send Jan -> reply Feb minus Pipeline.process): "
        f"{(instrumented.replied - process) * 1000:.1f} ms"
    )


# --- run ------------------------------------------------------------------------------------


def parse_rounds(documents: Documents, rows: dict[str, Row], parsed: Parsed, elements: int) -> None:
    """One round of every parse phase, checked against the first round's results."""
    for name, work in (
        ("iterparse", lambda: iterparse_end(documents)),
        ("iterparse, start+end events", lambda: iterparse_start_end(documents)),
    ):
        seconds, count = timed(work)
        check(count == elements, f"{name} saw {count} elements, not {elements}")
        rows[name].samples.append(seconds)
    seconds, trees = timed(lambda: whole_trees(documents))
    count = count_elements(trees)
    check(count == elements, f"ET.parse built {count} elements, not {elements}")
    rows["ET.parse (whole trees)"].samples.append(seconds)
    del trees
    seconds, again = timed(lambda: parse_both(documents))
    check(again == parsed, f"parse_cvrf read {again}, not {parsed}")
    rows["parse_cvrf"].samples.append(seconds)
    seconds, _ = timed(lambda: import_requests(documents))
    rows["client gzip + base64 (before the clock)"].samples.append(seconds)


async def run(infra: Infra, documents: Documents, rounds: int) -> None:
    parsed = parse_both(documents)
    check(parsed.document_ids == DOCUMENT_IDS, f"documents are {parsed.document_ids}")
    elements = iterparse_end(documents)
    requests = import_requests(documents)
    names = (
        "iterparse",
        "iterparse, start+end events",
        "ET.parse (whole trees)",
        "parse_cvrf",
        "client gzip + base64 (before the clock)",
        "end to end: send Jan -> reply Feb",
        "end to end: ... and every event at the sink",
    )
    rows = {name: Row(name, []) for name in names}
    env = await environment(infra)
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    runs: list[EndToEnd] = []
    sink = Sink()
    stages = Stages()
    try:
        await bus.declare_exchanges()
        rpc = RpcClient(bus, source="bench", timeout=IMPORT_TIMEOUT_SECONDS)
        await rpc.start()
        async with sink_consumer(bus, sink):
            for index in range(1, rounds + 1):
                parse_rounds(documents, rows, parsed, elements)
                result = await end_to_end(
                    infra, rpc, sink=sink, requests=requests, parsed=parsed, index=index
                )
                runs.append(result)
                rows["end to end: send Jan -> reply Feb"].samples.append(result.replied)
                rows["end to end: ... and every event at the sink"].samples.append(result.published)
                print(
                    f"round {index}: iterparse {rows['iterparse'].samples[-1] * 1000:.1f} ms, "
                    f"parse_cvrf {rows['parse_cvrf'].samples[-1] * 1000:.1f} ms, "
                    f"import {result.replied * 1000:.1f} ms, published "
                    f"{result.total_events} events after {result.published * 1000:.1f} ms",
                    flush=True,
                )
            print("instrumented round ...", flush=True)
            instrumented = await end_to_end(
                infra,
                rpc,
                sink=sink,
                requests=requests,
                parsed=parsed,
                index=rounds + 1,
                instrument=instrumenting(stages),
            )
    finally:
        await bus.close()
    check(
        all(run.events == runs[0].events for run in runs),
        "rounds published different events",
    )
    report(
        documents,
        rounds=rounds,
        rows=rows,
        runs=runs,
        parsed=parsed,
        elements=elements,
        stages=stages,
        instrumented=instrumented,
        env=env,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of every phase")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be positive")
    configure_logging("bench", "warning")
    documents = [(path, path.read_bytes()) for path in FILES]
    started = time.perf_counter()
    try:
        with local_infra(Settings()) as infra:
            print(f"vhost {infra.vhost}, database {infra.database_url.rsplit('/', 1)[-1]}")
            asyncio.run(run(infra, documents, args.rounds))
    except BenchFailure as failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"\ntotal run time {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
