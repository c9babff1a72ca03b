"""python -m bench.bench_pipeline [--small]: the phases, then the figures (see the package
docstring); ends with bench/results/pipeline.json (bench.common.results)."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from bench import bench_pipeline
from bench.bench_pipeline.profile import PROFILE
from bench.bench_pipeline.rpc import RPC_WARMUP, baseline_rpc, lockgate_rpc
from bench.bench_pipeline.throughput import (
    BASELINE_SCHEMA,
    KEYS,
    POOL_SIZE,
    PREFETCH,
    Throughput,
    baseline_throughput,
    lockgate_throughput,
    raw_pipeline_throughput,
)
from bench.common import results
from bench.common.infra import bench_main, description, environment, in_fresh_infra
from bench.common.meters import MIB, PG_THIS_DB, RABBITMQ
from bench.common.queues import queue_probe
from bench.common.report import print_environment, print_table
from bench.common.results import Goal, Measure
from bench.common.stats import percentile
from libs.bus import Bus
from libs.db.migrations import migrate
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from tests.integration import probe
from tests.support.infra import Infra

GOAL = 0.8
"""The pipeline's rate against the raw pipeline's, at least (issue 19)."""

THROUGHPUT_COLUMNS = (
    *("consumer", "drain s", "msg/s", "CPU s", "CPU ms/msg", "pg ms/msg", "rabbit ms/msg"),
    *("machine busy", "RSS start MiB", "RSS peak MiB", "RSS delta MiB"),
)


def report(
    messages: int, rounds: int, rows: list[Throughput], latencies: dict[str, list[float]]
) -> None:
    print(
        "CPU s: this process (user+sys); pg: the run's PostgreSQL backends; rabbit: RabbitMQ"
        " (all its queues, other runs' too); machine busy: all cores, RabbitMQ and PostgreSQL"
        " included; RSS: this process, sampled from /proc/self/statm every 5 ms"
    )
    print()
    print(
        f"Throughput: {messages} messages per consumer in {rounds} interleaved rounds, each"
        f" round's pre-published; prefetch {PREFETCH}, pool {POOL_SIZE}, {KEYS} counter keys,"
        " quorum queues"
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
                f"{row.per_message_ms(PG_THIS_DB):.3f}",
                f"{row.per_message_ms(RABBITMQ):.3f}",
                f"{row.machine_busy:.0%}",
                f"{row.rss_start / MIB:.1f}",
                f"{row.rss_peak / MIB:.1f}",
                f"{(row.rss_peak - row.rss_start) / MIB:.1f}",
            ]
            for row in rows
        ],
    )
    fair, raw, lockgate = rows
    if lockgate.handled_seconds is not None:
        print(
            f"lockgate: all messages handled after {lockgate.handled_seconds:.2f} s "
            f"({messages / lockgate.handled_seconds:.0f} msg/s), outbox published after "
            f"{lockgate.seconds:.2f} s"
        )
    print(
        f"throughput ratio lockgate/raw pipeline: {lockgate.rate / fair.rate:.3f} (goal >= 0.8);"
        f" lockgate/raw consumer (2 rows, no publish): {lockgate.rate / raw.rate:.3f}"
    )
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


def save(  # noqa: PLR0917 - one run's figures
    messages: int,
    rounds: int,
    calls: int,
    rows: list[Throughput],
    latencies: dict[str, list[float]],
    started_at: datetime,
    profile: str | None,
) -> None:
    """bench/results/pipeline.json: the end-to-end rate against the raw pipeline (goal >= 0.8x),
    against the earlier bare consumer, and the RPC latencies beside the raw client's."""
    fair, raw, lockgate = rows
    measures = [
        Measure(
            "pipeline: consume, inbox, handler, outbox, confirmed publish, ack",
            lockgate.rate,
            "msg/s",
            goal=Goal("ratio", "at_least", GOAL, f">= {GOAL:g}x"),
            baseline="raw aio-pika consume + 1-row transaction + confirmed publish + ack",
            baseline_value=fair.rate,
            profile=profile,
            note=f"{messages} messages in {rounds} rounds interleaved with the baseline's,"
            f" prefetch {PREFETCH}, pool {POOL_SIZE}",
        ),
        Measure(
            "pipeline against the bare raw consumer (earlier baseline)",
            lockgate.rate,
            "msg/s",
            baseline="raw consume + 2-row transaction + ack, nothing published",
            baseline_value=raw.rate,
        ),
    ]
    measures.extend(
        Measure(
            f"RPC round trip p{p}",
            percentile(latencies["lockgate"], p) * 1000,
            "ms",
            baseline="raw direct reply-to client and server, no database, no confirm",
            baseline_value=percentile(latencies["baseline"], p) * 1000,
            higher_is_better=False,
        )
        for p in (50, 99)
    )
    results.save(
        "pipeline",
        measures,
        parameters={
            "messages": messages,
            "rounds": rounds,
            "rpc_calls": calls,
            "prefetch": PREFETCH,
        },
        started_at=started_at,
    )


async def run(infra: Infra, messages: int, rounds: int, calls: int, profile: str | None) -> None:
    """Both phases; then, when the goal is missed (or `profile` is "always"), one more
    lockgate pass recorded by py-spy into bench/profiles/ (its figures are not reported)."""
    started_at = datetime.now(UTC)
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
    recorded: str | None = None
    each = messages // rounds
    try:
        await bus.declare_exchanges()
        async with queue_probe(infra.amqp_url) as queues:

            async def lockgate_round(count: int) -> Throughput:
                while stack:  # one service per round; the last one answers the RPC phase
                    await stack.pop().stop()
                return await lockgate_throughput(infra, bus, queues, settings, count, stack)

            phases: dict[str, Callable[[int], Awaitable[Throughput]]] = {
                "raw pipeline": lambda n: raw_pipeline_throughput(infra, bus, queues, n),
                "raw consumer": lambda n: baseline_throughput(infra, bus, queues, n),
                "lockgate": lockgate_round,
            }
            measured: dict[str, list[Throughput]] = {name: [] for name in phases}
            names = list(phases)
            for index in range(rounds):
                # Rounds interleave the consumers, each round in another order, so that a
                # change in the machine's load (other tenants) falls on all of them alike.
                for name in names[index % 3 :] + names[: index % 3]:
                    measured[name].append(await phases[name](each))
                    print(
                        f"round {index + 1}/{rounds}: {name}, {each} messages,"
                        f" {measured[name][-1].rate:.0f} msg/s",
                        flush=True,
                    )
            fair, raw, lockgate = (Throughput.combine(measured[name]) for name in names)
            print(f"RPC: {calls} calls each ...", flush=True)
            latencies = {
                "baseline": await baseline_rpc(infra, bus, calls),
                "lockgate": await lockgate_rpc(bus, calls),
            }
            missed = lockgate.rate < GOAL * fair.rate
            if profile == "always" or (missed and profile != "never"):
                recorded = PROFILE
                print(f"lockgate again, recorded by py-spy into {recorded} ...", flush=True)
                while stack:
                    await stack.pop().stop()
                await lockgate_throughput(
                    infra, bus, queues, settings, each, stack, profile=recorded
                )
    finally:
        for process in stack:
            await process.stop()
        await bus.close()
    print()
    print_environment(env)
    rows = [fair, raw, lockgate]
    report(each * rounds, rounds, rows, latencies)
    save(each * rounds, rounds, calls, rows, latencies, started_at, recorded)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_pipeline.__doc__))
    parser.add_argument("--messages", type=int, default=20_000, help="messages per consumer")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="rounds the messages are split into, the consumers interleaved",
    )
    parser.add_argument("--rpc-calls", type=int, default=500, help="timed RPC calls per client")
    parser.add_argument(
        "--small", action="store_true", help="a quick run: 3,000 messages in 3 rounds, 50 RPC calls"
    )
    parser.add_argument(
        "--profile",
        choices=("missed", "always", "never"),
        default="missed",
        help=f"record one more lockgate pass with py-spy into {PROFILE} (default: when the"
        " goal is missed)",
    )
    args = parser.parse_args(argv)
    if args.small:
        args.messages, args.rounds, args.rpc_calls = 3000, 3, 50
    if min(args.messages, args.rounds, args.rpc_calls) < 1 or args.messages < args.rounds:
        parser.error("--messages, --rounds and --rpc-calls must be positive, messages >= rounds")
    bench_main(
        lambda: in_fresh_infra(
            lambda infra: run(infra, args.messages, args.rounds, args.rpc_calls, args.profile)
        )
    )


if __name__ == "__main__":
    main()
