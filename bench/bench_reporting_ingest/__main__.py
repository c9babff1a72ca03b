"""python -m bench.bench_reporting_ingest: each prefetch value, the summary, then the figures."""

from __future__ import annotations

import argparse
import statistics
import time

import asyncpg

from bench import bench_reporting_ingest
from bench.bench_reporting_ingest.fleet import STREAM, bodies_of, derive, load_fleet
from bench.bench_reporting_ingest.phases import (
    RAW_QUEUE,
    REPORTS_QUEUE,
    Phase,
    check_round,
    lockgate_drain,
    publish,
    raw_consume,
    raw_upsert,
)
from bench.bench_reporting_ingest.report import print_lockgate, print_round, print_summary
from bench.bench_reporting_ingest.summary import explain_ingest, summary_phase
from bench.common.explain import print_plans
from bench.common.infra import bench_main, check, description, environment, in_fresh_infra
from bench.common.queues import QueueProbe, queue_probe
from bench.common.report import print_environment, print_table
from libs.bus import Bus
from libs.bus.bus import Binding
from libs.contracts import agents as ag
from libs.contracts.names import Exchange
from libs.db.pool import database_name
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.reporting.handlers import SERVICE as REPORTING
from tests.support.infra import Infra

RESET = (
    "TRUNCATE reporting.computer_updates, reporting.update_counts, reporting.install_attempts,"
    " reporting.compliance_dirty, reporting.inbox, reporting.outbox, bench_raw.computer_updates"
)

ALL_COLUMNS = (
    *("prefetch", "raw consume msg/s", "raw upsert rows/s", "lockgate msg/s"),
    *("lockgate rows/s", "ingest ratio", "rows ratio"),
)


async def one_round(  # noqa: PLR0917 - one prefetch value's collaborators
    infra: Infra, bus: Bus, queues: QueueProbe, bodies: list[bytes], prefetch: int, profile: bool
) -> list[Phase]:
    messages, database = len(bodies), database_name(infra.database_url)
    print(f"[prefetch {prefetch}] deriving the raw upsert's rows ...", flush=True)
    derived = derive(bodies, prefetch)
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(RESET)
    finally:
        await conn.close()
    print(f"[prefetch {prefetch}] publishing {messages} reports with confirms ...", flush=True)
    publish_seconds = await publish(bus, bodies)
    depths = [await queues.depth(q) for q in (REPORTS_QUEUE, RAW_QUEUE)]
    check(depths == [messages, messages], f"queues hold {depths} after publishing {messages}")
    print(
        f"[prefetch {prefetch}] published in {publish_seconds:.1f} s; raw consume ...", flush=True
    )
    raw = await raw_consume(infra.amqp_url, database, messages, prefetch)
    print(f"[prefetch {prefetch}] raw upsert ...", flush=True)
    upsert = await raw_upsert(infra.database_url, database, derived, messages)
    print(f"[prefetch {prefetch}] lockgate ...", flush=True)
    settings = Settings(amqp_url=infra.amqp_url, database_url=infra.database_url, prefetch=prefetch)
    lockgate = await lockgate_drain(settings, database, messages, derived.rows, profile=profile)
    checks = await check_round(queues, infra.database_url, messages, derived)
    checks += (
        f"\nmessages {messages}: {derived.detections} detections + {derived.installs} install "
        f"results = {derived.detections + derived.installs} observations; "
        f"{derived.rows} (computer, update) rows after keeping the newest per key and batch"
    )
    phases = [raw, upsert, lockgate.phase]
    print_round(prefetch, publish_seconds, phases, checks)
    print_lockgate(lockgate)
    return phases


async def run(
    infra: Infra, messages: int, prefetches: list[int], calls: int, profile: bool
) -> None:
    print_environment(await environment(infra))
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    try:
        await bus.declare_exchanges()
        settings = Settings(amqp_url=infra.amqp_url, database_url=infra.database_url)
        setup = ServiceProcess(REPORTING, settings, http_port=0)
        await setup.start()  # migrations and reporting's queues
        await setup.stop()
        loaded = await load_fleet(infra.database_url)
        print("COPY: " + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in loaded.items()))
        await bus.declare_queue(RAW_QUEUE, [Binding(Exchange.AGENTS, ag.AGENT_STATUS.binding_key)])
        started = time.perf_counter()
        bodies = bodies_of(0, messages)
        sizes = [len(b) for b in bodies]
        print(
            f"generated {messages} report bodies in {time.perf_counter() - started:.1f} s "
            f"(body bytes: mean {statistics.fmean(sizes):.0f}, max {max(sizes)})",
            flush=True,
        )
        rounds = []
        async with queue_probe(infra.amqp_url) as queues:
            for prefetch in prefetches:
                phases = await one_round(infra, bus, queues, bodies, prefetch, profile)
                rounds.append((prefetch, phases))
        print("\n=== all prefetch values ===")
        print_table(
            ALL_COLUMNS,
            [
                [
                    str(prefetch),
                    f"{raw.rate:.0f}",
                    f"{upsert.row_rate:.0f}",
                    f"{lockgate.rate:.0f}",
                    f"{lockgate.row_rate:.0f}",
                    f"{lockgate.rate / raw.rate:.3f}",
                    f"{lockgate.row_rate / upsert.row_rate:.3f}",
                ]
                for prefetch, (raw, upsert, lockgate) in rounds
            ],
        )
        print("\ngoals: ingest >= 0.8x raw consume, rows >= 0.7x raw upsert, summary p95 < 200 ms")
        last = prefetches[-1]
        print_plans(
            f"EXPLAIN (ANALYZE, BUFFERS) of one ingest batch ({last} next reports, reports "
            f"{messages}..{messages + last - 1} of the stream, rolled back):",
            await explain_ingest(infra.database_url, messages, last),
        )
        figures = await summary_phase(bus, settings, infra.database_url, calls)
        print_summary(figures, calls)
    finally:
        await bus.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_reporting_ingest.__doc__))
    parser.add_argument(
        "--messages", type=int, default=200_000, help="first N reports of the 1M stream"
    )
    parser.add_argument("--prefetch", type=int, nargs="+", default=[256, 500])
    parser.add_argument("--summary-calls", type=int, default=20)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the lockgate phases (slows them)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.messages <= STREAM or args.summary_calls < 1:
        parser.error(f"--messages must be 1..{STREAM}, --summary-calls positive")
    bench_main(
        lambda: in_fresh_infra(
            lambda infra: run(infra, args.messages, args.prefetch, args.summary_calls, args.profile)
        )
    )


if __name__ == "__main__":
    main()
