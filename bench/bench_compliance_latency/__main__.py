"""python -m bench.bench_compliance_latency: paced agent reports, when the console shows each."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from bench import bench_compliance_latency
from bench.bench_reporting_ingest.fleet import FLEET, load_fleet, report
from bench.common import results
from bench.common.infra import BenchFailure, bench_main, description, environment, in_fresh_infra
from bench.common.profile import spy
from bench.common.report import print_environment, print_table
from bench.common.results import Goal, Measure
from bench.common.stats import bucket_percentile, percentile
from libs.bus import Bus, to_amqp
from libs.bus.bus import PublishFailed
from libs.contracts import agents as ag
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from services.reporting.handlers import SERVICE as REPORTING
from tests.support.infra import Infra
from tests.support.processes import ServiceRunner

WARM_UP_SECONDS = 1.0
VISIBLE_TIMEOUT = 30.0
GOAL_MS = 250.0
PROFILE = "bench/profiles/compliance_latency.svg"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Followed:
    """One followed report: what the console must show, and when it was sent."""

    computer_id: str
    update_id: str
    reported_at: datetime
    sent: float
    confirmed: float = 0.0
    visible: float = 0.0
    """When the poll that showed it ended."""
    missed: float = 0.0
    """When the last poll that did not show it began: it became visible in between."""


@dataclass
class Run:
    followed: list[Followed] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    """Publishes not confirmed within the bus's publish timeout (not followed)."""
    confirms: list[float] = field(default_factory=list)
    polls: int = 0
    poll_seconds: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    profile: str | None = None
    """bench/profiles/ file of reporting recorded by py-spy during the run, if any."""


@dataclass(frozen=True)
class Report:
    """One agent's report, built before the clock starts."""

    status: ag.AgentStatus
    body: bytes


def reports(count: int) -> list[Report]:
    """The first `count` reports of the ingest benchmark's stream (one per computer)."""
    found = []
    for index in range(count):
        status = report(index)
        found.append(Report(status, status.model_dump_json().encode()))
    return found


async def send(bus: Bus, run: Run, sent: Report, follow: bool) -> None:
    """One agent's report, as the simulator's agents send it (confirmed)."""
    status, cid = sent.status, sent.status.computer_id
    envelope = Envelope.new(source=f"agent/{cid}", type=ag.AGENT_STATUS.type, subject=cid)
    message = to_amqp(envelope, sent.body)
    started = time.perf_counter()
    followed: Followed | None = None
    if follow:
        shown = (status.installs or status.detections)[0].update_id
        followed = Followed(cid, shown, status.reported_at, started)
        run.followed.append(followed)
    try:
        await bus.publish(
            message, exchange=Exchange.AGENTS.value, routing_key=ag.AGENT_STATUS.routing_key(cid)
        )
    except PublishFailed:
        run.failed += 1  # not confirmed in time: an agent would send it again later
        if followed is not None:
            run.followed.remove(followed)
        return
    confirmed = time.perf_counter()
    run.confirms.append(confirmed - started)
    if followed is not None:
        followed.confirmed = confirmed
    run.sent += 1


async def agents(bus: Bus, run: Run, rate: float, stream: list[Report], sample: int) -> None:
    """Send the reports, the n-th at n / rate seconds from the start."""
    tasks: set[asyncio.Task[None]] = set()
    run.started = time.perf_counter()
    for index, sent in enumerate(stream):
        due = run.started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(bus, run, sent, index % sample == 0))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    run.finished = time.perf_counter()


VISIBLE = (
    "SELECT f.k FROM unnest($1::int[], $2::text[], $3::uuid[], $4::timestamptz[]) AS f(k, c, u, t)"
    " JOIN computer_updates s ON s.computer_id = f.c AND s.update_id = f.u"
    " AND s.reported_at >= f.t"
)
"""Which of the pending reports the console would show: their (computer, update) row, the
one the console's computer and update pages read (services/reporting/store/states.py), holds
that report or a newer one. One indexed statement per poll for every pending report, so
the watcher's own load stays small and does not grow with a backlog."""


async def watch(conn: asyncpg.Connection, run: Run, poll: float, done: asyncio.Event) -> None:
    """Poll, every `poll` seconds, whether each followed report not yet shown is visible."""
    await conn.execute(f"SET search_path TO {REPORTING.name}")
    while True:
        pending = [f for f in run.followed if not f.visible]
        if not pending and done.is_set():
            return
        if pending:
            began = time.perf_counter()
            rows = await conn.fetch(
                VISIBLE,
                list(range(len(pending))),
                [f.computer_id for f in pending],
                [uuid.UUID(f.update_id) for f in pending],
                [f.reported_at for f in pending],
            )
            now = time.perf_counter()
            run.polls += 1
            run.poll_seconds += now - began
            shown = {row["k"] for row in rows}
            for k, followed in enumerate(pending):
                if k in shown:
                    followed.visible = now
                elif now - followed.sent > VISIBLE_TIMEOUT:
                    raise BenchFailure(f"report of {followed.computer_id} never shown")
                else:
                    followed.missed = began
        await asyncio.sleep(poll)


INGEST_HANDLER = next(r for r in REPORTING.events if r.handle_many is not None).name


def ingest_buckets(port: int) -> dict[float, float]:
    """reporting's lockgate_handler_duration_seconds buckets for the batched status reports
    (from delivery to commit, libs/service/batching.py), read from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "lockgate_handler_duration_seconds_bucket"
                and sample.labels.get("handler") == INGEST_HANDLER
            ):
                found[float(sample.labels["le"])] = sample.value
    return found


@dataclass(frozen=True)
class Options:
    """The command line."""

    rate: float
    seconds: float
    sample: int
    poll: float
    py_spy: str


async def followed_run(infra: Infra, stream: list[Report], options: Options, pid: int) -> Run:
    """Send the stream and follow one report in `sample` until its state row (what the
    console shows) holds it; reporting (process `pid`) recorded by py-spy meanwhile unless
    told not to."""
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench-agents")
    conn = await asyncpg.connect(infra.database_url)
    run, done = Run(), asyncio.Event()
    watcher = asyncio.create_task(watch(conn, run, options.poll, done))
    try:
        with spy(None if options.py_spy == "never" else PROFILE, rate=50, pid=pid) as recorded:
            await agents(bus, run, options.rate, stream, options.sample)
            done.set()
            await asyncio.wait_for(asyncio.shield(watcher), VISIBLE_TIMEOUT)
        run.profile = recorded
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await conn.close()
        await bus.close()
    return run


async def measure(infra: Infra, options: Options) -> None:
    started_at = datetime.now(UTC)
    print_environment(await environment(infra))
    count = int(options.rate * options.seconds)
    if count > FLEET:
        raise BenchFailure(f"{count} reports need more than the fleet's {FLEET} computers")
    stream = reports(count)
    with tempfile.TemporaryDirectory() as logs:
        service = ServiceRunner(REPORTING.name, infra, Path(logs)).start()
        try:
            await service.wait_ready(timeout=120)
            loaded = await load_fleet(infra.database_url)
            print("COPY: " + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in loaded.items()))
            assert service.process is not None
            run = await followed_run(infra, stream, options, service.process.pid)
            buckets = ingest_buckets(service.port)
        finally:
            code = service.terminate()
            if code != 0:
                print(service.log()[-3000:])
    print(
        "reporting's own histogram, delivery -> commit of a status report (bucket bounds): "
        + ", ".join(
            f"p{p} <= {bucket_percentile({}, buckets, p) * 1000:g} ms" for p in (50, 90, 99)
        )
    )
    report_run(run, options, started_at)


def report_run(run: Run, options: Options, started_at: datetime) -> None:
    rate, seconds, sample, poll = options.rate, options.seconds, options.sample, options.poll
    counted = [f for f in run.followed if f.sent - run.started >= WARM_UP_SECONDS]
    latencies = [f.visible - f.sent for f in counted]
    confirms = [f.confirmed - f.sent for f in counted]
    after_confirm = [f.visible - f.confirmed for f in counted]
    resolution = [f.visible - max(f.missed, f.sent) for f in counted]
    sent_rate = run.sent / (run.finished - run.started)
    print(
        f"\nsent {run.sent} reports in {run.finished - run.started:.1f} s ({sent_rate:.0f}/s, "
        f"asked {rate:.0f}/s); followed {len(run.followed)} (one in {sample}), "
        f"{len(counted)} after the first {WARM_UP_SECONDS:g} s"
    )
    print(
        f"polls (one statement for every pending report): {run.polls}, "
        f"{run.poll_seconds / max(run.polls, 1) * 1000:.2f} ms each, every {poll * 1000:g} ms"
    )
    print_table(
        ["ms", "p50", "p90", "p99", "max"],
        [
            [
                name,
                *(f"{percentile(values, p) * 1000:.1f}" for p in (50, 90, 99)),
                f"{max(values) * 1000:.1f}",
            ]
            for name, values in (
                ("sent -> visible to the console", latencies),
                ("sent -> publish confirmed", confirms),
                ("confirmed -> shown (reporting's share, about)", after_confirm),
                ("resolution: last poll not showing it -> shown", resolution),
            )
        ],
    )
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    note = (
        f"{sent_rate:.0f} reports/s for {seconds:g} s, one in {sample} followed, "
        f"polled every {poll * 1000:g} ms (an upper bound, late by up to one poll)"
    )
    goal = Goal("value", "at_most", GOAL_MS, f"< {GOAL_MS:g} ms")
    profile = run.profile
    if profile is not None and goal.met(p99, None):
        (ROOT / profile).unlink(missing_ok=True)  # kept only for a missed goal
        profile = None
    results.save(
        "compliance_latency",
        [
            Measure(
                "agent event -> compliance visible, p99 at 1k events/s",
                p99,
                "ms",
                goal=goal,
                higher_is_better=False,
                profile=profile,
                note=note,
            ),
            Measure(
                "agent event -> compliance visible, p50 at 1k events/s",
                p50,
                "ms",
                higher_is_better=False,
                note=note,
            ),
            Measure("agent events sent per second", sent_rate, "msg/s", note=f"asked {rate:g}/s"),
        ],
        parameters={"rate": rate, "seconds": seconds, "sample": sample, "poll_ms": poll * 1000},
        started_at=started_at,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_compliance_latency.__doc__))
    parser.add_argument("--rate", type=float, default=1000.0, help="reports per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sample", type=int, default=20, help="follow one report in N")
    parser.add_argument("--poll-ms", type=float, default=5.0)
    parser.add_argument("--small", action="store_true", help="15 s instead of 60 s")
    parser.add_argument(
        "--py-spy",
        choices=("auto", "never"),
        default="auto",
        help=f"record reporting with py-spy into {PROFILE}, kept when the goal is missed",
    )
    args = parser.parse_args(argv)
    seconds = 15.0 if args.small else args.seconds
    if args.rate <= 0 or seconds <= WARM_UP_SECONDS or args.sample < 1 or args.poll_ms <= 0:
        parser.error("--rate, --seconds (> 1), --sample and --poll-ms must be positive")
    options = Options(args.rate, seconds, args.sample, args.poll_ms / 1000, args.py_spy)
    bench_main(lambda: in_fresh_infra(lambda infra: measure(infra, options)))


if __name__ == "__main__":
    main()
