"""python -m bench.bench_pipeline: both phases, then the figures (see the package docstring)."""

from __future__ import annotations

import argparse
import statistics

import asyncpg

from bench import bench_pipeline
from bench.bench_pipeline.rpc import RPC_WARMUP, baseline_rpc, lockgate_rpc
from bench.bench_pipeline.throughput import (
    BASELINE_SCHEMA,
    KEYS,
    POOL_SIZE,
    PREFETCH,
    Throughput,
    baseline_throughput,
    lockgate_throughput,
)
from bench.common.infra import bench_main, description, environment, in_fresh_infra
from bench.common.meters import MIB
from bench.common.queues import queue_probe
from bench.common.report import print_environment, print_table
from bench.common.stats import percentile
from libs.bus import Bus
from libs.db.migrations import migrate
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from tests.integration import probe
from tests.support.infra import Infra

THROUGHPUT_COLUMNS = (
    *("consumer", "drain s", "msg/s", "CPU s", "CPU ms/msg", "machine busy"),
    *("RSS start MiB", "RSS peak MiB", "RSS delta MiB"),
)


def report(messages: int, rows: list[Throughput], latencies: dict[str, list[float]]) -> None:
    print(
        "CPU s: this process (user+sys); machine busy: all cores, RabbitMQ and PostgreSQL"
        " included; RSS: this process, sampled from /proc/self/statm every 5 ms"
    )
    print()
    print(
        f"Throughput: {messages} messages pre-published, prefetch {PREFETCH}, "
        f"pool {POOL_SIZE}, {KEYS} counter keys, quorum queues"
    )
    print_table(
        THROUGHPUT_COLUMNS,
        [
            [
                row.name,
                f"{row.seconds:.2f}",
                f"{row.rate:.0f}",
                f"{row.cpu:.2f}",
                f"{row.cpu / row.messages * 1000:.3f}",
                f"{row.machine_busy:.0%}",
                f"{row.rss_start / MIB:.1f}",
                f"{row.rss_peak / MIB:.1f}",
                f"{(row.rss_peak - row.rss_start) / MIB:.1f}",
            ]
            for row in rows
        ],
    )
    base, lockgate = rows
    if lockgate.handled_seconds is not None:
        print(
            f"lockgate: all messages handled after {lockgate.handled_seconds:.2f} s "
            f"({messages / lockgate.handled_seconds:.0f} msg/s), outbox published after "
            f"{lockgate.seconds:.2f} s"
        )
    print(f"throughput ratio lockgate/baseline: {lockgate.rate / base.rate:.3f}")
    print()
    calls = len(latencies["baseline"])
    print(f"RPC: {calls} sequential {probe.DIVIDE.type} round trips after {RPC_WARMUP} warm-ups")
    print_table(
        ["client", "p50 ms", "p95 ms", "p99 ms", "mean ms"],
        [
            [name]
            + [f"{percentile(samples, p) * 1000:.3f}" for p in (50, 95, 99)]
            + [f"{statistics.fmean(samples) * 1000:.3f}"]
            for name, samples in latencies.items()
        ],
    )
    ratios = ", ".join(
        f"p{p} {percentile(latencies['lockgate'], p) / percentile(latencies['baseline'], p):.2f}"
        for p in (50, 95, 99)
    )
    print(f"RPC latency ratio lockgate/baseline: {ratios}")


async def run(infra: Infra, messages: int, calls: int) -> None:
    settings = Settings(amqp_url=infra.amqp_url, database_url=infra.database_url, prefetch=PREFETCH)
    env = await environment(infra)
    await migrate(infra.database_url, probe.NAME, probe.PROBE.migrations)
    setup = await asyncpg.connect(infra.database_url)
    try:
        await setup.execute(BASELINE_SCHEMA)
    finally:
        await setup.close()
    bus = await Bus.connect(
        infra.amqp_url, name="lockgate-bench", delivery_limit=settings.delivery_limit
    )
    stack: list[ServiceProcess] = []
    try:
        await bus.declare_exchanges()
        async with queue_probe(infra.amqp_url) as queues:
            print(f"baseline: publishing {messages} then draining ...", flush=True)
            base = await baseline_throughput(infra, bus, queues, messages)
            print(f"lockgate: publishing {messages} then draining ...", flush=True)
            lockgate = await lockgate_throughput(infra, bus, queues, settings, messages, stack)
        print(f"RPC: {calls} calls each ...", flush=True)
        latencies = {
            "baseline": await baseline_rpc(infra, bus, calls),
            "lockgate": await lockgate_rpc(bus, calls),
        }
    finally:
        for process in stack:
            await process.stop()
        await bus.close()
    print()
    print_environment(env)
    report(messages, [base, lockgate], latencies)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_pipeline.__doc__))
    parser.add_argument("--messages", type=int, default=20_000, help="messages per consumer")
    parser.add_argument("--rpc-calls", type=int, default=500, help="timed RPC calls per client")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rpc_calls < 1:
        parser.error("--messages and --rpc-calls must be positive")
    bench_main(lambda: in_fresh_infra(lambda infra: run(infra, args.messages, args.rpc_calls)))


if __name__ == "__main__":
    main()
