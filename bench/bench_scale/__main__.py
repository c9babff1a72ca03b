"""python -m bench.bench_scale [--small]: key figures at 10k, 100k and 1M computers, with 1, 2
and 4 replicas, and on a 3-node RabbitMQ cluster; plots in docs/scaling-*.png."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bench_scale
from bench.bench_memory.processes import SERVICES, ServiceSet, service_set
from bench.bench_memory.system import Settings as SystemSettings
from bench.bench_memory.system import SystemRun, print_rss, run_system
from bench.bench_scale import rates
from bench.bench_scale.cluster import QuorumRates, quorum_rates
from bench.bench_scale.plot import DOCS, plot
from bench.bench_scale.postgres import Partitioned, Replica, partitioned, read_replica
from bench.common import results
from bench.common.infra import bench_main, description, environment, fresh_infra
from bench.common.meters import MIB
from bench.common.report import print_environment, print_table
from libs.bus import Bus
from tests.support.infra import Infra


@dataclass(frozen=True)
class Plan:
    system_sizes: list[int]
    """Fleets the whole system is run at here (root approval, replanning, RSS)."""
    rate_sizes: list[int]
    replicas: list[int]
    replica_size: int
    messages: int
    fired: int
    events_seconds: float
    cluster: bool
    partition_rows: int


@dataclass
class SystemPoint:
    computers: int
    plans_current_s: float | None
    events_published_s: float | None
    reply_s: float | None
    rss_mib: dict[str, float]
    source: str
    """`measured here` or the results file it was read from."""


@dataclass
class Figures:
    system: list[SystemPoint] = field(default_factory=list)
    ingest: list[rates.Rate] = field(default_factory=list)
    timers: list[rates.Rate] = field(default_factory=list)
    quorum: list[QuorumRates] = field(default_factory=list)
    cluster_ingest: list[rates.Rate] = field(default_factory=list)
    partitioned: Partitioned | None = None
    replica: Replica | None = None


def system_point(run: SystemRun) -> SystemPoint:
    return SystemPoint(
        computers=run.fleet.computers,
        plans_current_s=run.replan.current,
        events_published_s=run.replan.published,
        reply_s=run.replan.replied,
        rss_mib={s: round(run.watch.service_peak(s) / MIB, 1) for s in SERVICES},
        source="measured here",
    )


def from_memory_results() -> SystemPoint | None:
    """The memory benchmark's run of this `make bench` (1M computers), from its JSON."""
    path = results.RESULTS_DIR / "memory.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    parameters: dict[str, Any] = data.get("parameters", {})
    peaks: dict[str, dict[str, float]] = parameters.get("peaks_mib", {})
    replan: dict[str, Any] = parameters.get("replan", {})
    if "computers" not in parameters:
        return None
    return SystemPoint(
        computers=int(parameters["computers"]),
        plans_current_s=replan.get("plans_current_s"),
        events_published_s=replan.get("events_published_s"),
        reply_s=replan.get("reply_s"),
        rss_mib={s: max((p.get(s, 0.0) for p in peaks.values()), default=0.0) for s in SERVICES},
        source=f"bench/results/memory.json ({data.get('started_at', '?')})",
    )


@contextmanager
def services_in(infra: Infra, tag: str) -> Iterator[ServiceSet]:
    logs = Path(tempfile.mkdtemp(prefix=f"lockgate-bench-scale-{tag}-"))
    with service_set(infra, logs) as services:
        yield services


async def rates_at(
    infra: Infra, size: int, replicas: list[int], plan: Plan, figures: Figures
) -> None:
    """Reporting ingest, then scheduler timers, at `size` computers with each replica count."""
    await rates.seed_reporting(infra.database_url, size)
    await rates.seed_timers(infra.database_url, size)
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    try:
        with services_in(infra, f"rates-{size}") as services:
            for count in replicas:
                rate = await rates.ingest(
                    services, bus, infra.database_url, size, count, plan.messages
                )
                print(f"  reporting ingest, {count} replica(s): {rate.per_second:,.0f} msg/s")
                figures.ingest.append(rate)
            for count in replicas:
                fired = min(plan.fired, size // 2)  # not every due timer makes an instruction
                rate = await rates.timers(services, infra.database_url, size, count, fired)
                print(f"  timers -> published, {count} replica(s): {rate.per_second:,.0f}/s")
                figures.timers.append(rate)
    finally:
        await bus.close()


async def cluster_part(infra: Infra, plan: Plan, figures: Figures) -> None:
    """The shared node, then a private 3-node cluster: quorum rates, reporting ingest."""
    from tests.support.servers import rabbitmq_cluster  # noqa: PLC0415 - only with --cluster

    figures.quorum.append(await quorum_rates(infra.amqp_url, 1, plan.messages))
    with rabbitmq_cluster(3) as cluster:
        vhost = "lockgate-bench-scale"
        cluster.add_vhost(vhost)
        figures.quorum.append(await quorum_rates(cluster.amqp_url(0, vhost), 3, plan.messages))
        on_cluster = Infra(cluster.amqp_url(0, vhost), infra.database_url, vhost)
        size = plan.replica_size
        await rates.seed_reporting(infra.database_url, size)
        bus = await Bus.connect(on_cluster.amqp_url, name="lockgate-bench")
        try:
            with services_in(on_cluster, "cluster") as services:
                rate = await rates.ingest(services, bus, infra.database_url, size, 1, plan.messages)
                figures.cluster_ingest.append(rate)
        finally:
            await bus.close()
    for q in figures.quorum:
        print(
            f"  quorum queue, {q.nodes} node(s): publish {q.publish_per_second:,.0f}/s,"
            f" consume {q.consume_per_second:,.0f}/s"
        )
    for rate in figures.cluster_ingest:
        print(f"  reporting ingest through the 3-node cluster: {rate.per_second:,.0f} msg/s")


def draw(figures: Figures) -> list[str]:
    drawn = []
    system = sorted(figures.system, key=lambda p: p.computers)
    path = plot(
        "scaling-approval",
        "Root approval: until every plan is current / events published",
        "computers",
        "seconds",
        {
            "every plan current": [
                (p.computers, p.plans_current_s) for p in system if p.plans_current_s is not None
            ],
            "approval's events published": [
                (p.computers, p.events_published_s)
                for p in system
                if p.events_published_s is not None
            ],
        },
    )
    drawn.append(path)
    drawn.append(
        plot(
            "scaling-memory",
            "Peak RSS per service (goal < 1 GiB)",
            "computers",
            "MiB",
            {s: [(p.computers, p.rss_mib.get(s, 0.0)) for p in system] for s in SERVICES},
        )
    )
    one = {
        "reporting ingest (msg/s)": [
            (r.computers, r.per_second) for r in figures.ingest if r.replicas == 1
        ],
        "timers -> instructions published (/s)": [
            (r.computers, r.per_second) for r in figures.timers if r.replicas == 1
        ],
    }
    drawn.append(plot("scaling-rates", "Rates with one replica", "computers", "per second", one))
    largest = max((r.computers for r in figures.ingest), default=0)
    many = {
        "reporting ingest (msg/s)": [
            (r.replicas, r.per_second) for r in figures.ingest if r.computers == largest
        ],
        "timers -> instructions published (/s)": [
            (r.replicas, r.per_second) for r in figures.timers if r.computers == largest
        ],
    }
    drawn.append(
        plot(
            "scaling-replicas",
            f"Replicas on this 2-core box ({largest:,} computers)",
            "replicas",
            "per second",
            many,
            log_x=False,
        )
    )
    return [str(p.relative_to(DOCS.parent)) for p in drawn if p is not None]


def measures_of(figures: Figures) -> list[results.Measure]:
    found = []
    for p in sorted(figures.system, key=lambda p: p.computers):
        if p.plans_current_s is not None:
            found.append(
                results.Measure(
                    f"scale: root approval -> every plan current, {p.computers:,} computers",
                    round(p.plans_current_s, 1),
                    "s",
                    higher_is_better=False,
                    note=p.source,
                )
            )
        service, peak = max(p.rss_mib.items(), key=lambda item: item[1])
        found.append(
            results.Measure(
                f"scale: largest service RSS ({service}), {p.computers:,} computers",
                peak,
                "MiB",
                higher_is_better=False,
                note=p.source,
            )
        )
    for label, series, unit in (
        ("reporting ingest", figures.ingest, "msg/s"),
        ("timers -> instructions published", figures.timers, "/s"),
        ("reporting ingest through a 3-node RabbitMQ cluster", figures.cluster_ingest, "msg/s"),
    ):
        found += [
            results.Measure(
                f"scale: {label}, {rate.computers:,} computers, {rate.replicas} replica(s)",
                round(rate.per_second),
                unit,
                note=""
                if rate.complete
                else f"stopped after {rate.count:,} in {rates.RUN_TIMEOUT:g} s",
            )
            for rate in series
        ]
    found += [
        results.Measure(
            f"scale: quorum queue confirmed publish, {q.nodes} node(s)",
            round(q.publish_per_second),
            "msg/s",
            note=f"then consume + ack {q.consume_per_second:,.0f} msg/s",
        )
        for q in figures.quorum
    ]
    if figures.partitioned is not None:
        part = figures.partitioned
        found.append(
            results.Measure(
                f"scale: state rows upserted, hash-partitioned by computer ({part.rows:,} rows)",
                round(part.partitioned_rows_per_second),
                "rows/s",
                baseline="the same table unpartitioned",
                baseline_value=round(part.plain_rows_per_second),
                note=f"one computer's rows by key: {part.partitioned_lookup_ms:.2f} ms partitioned,"
                f" {part.plain_lookup_ms:.2f} ms not",
            )
        )
    if figures.replica is not None:
        r = figures.replica
        found.append(
            results.Measure(
                "scale: streaming standby replay lag while the primary takes upserts, max",
                round(r.lag_max_ms, 1),
                "ms",
                higher_is_better=False,
                note=f"p50 {r.lag_p50_ms:.1f} ms; fleet counts read on the standby"
                f" {r.standby_read_ms:.1f} ms p50, on the primary {r.primary_read_ms:.1f} ms",
            )
        )
    return found


def print_figures(figures: Figures) -> None:
    print("\nRoot approval and memory, by fleet size")
    print_table(
        ["computers", "reply s", "events published s", "plans current s", *SERVICES, "from"],
        [
            [
                f"{p.computers:,}",
                "-" if p.reply_s is None else f"{p.reply_s:.2f}",
                "-" if p.events_published_s is None else f"{p.events_published_s:.1f}",
                "not in time" if p.plans_current_s is None else f"{p.plans_current_s:.1f}",
                *(f"{p.rss_mib.get(s, 0.0):.0f}" for s in SERVICES),
                p.source,
            ]
            for p in sorted(figures.system, key=lambda p: p.computers)
        ],
    )
    print("\nRates (per second between 10% and 90% of the run)")
    print_table(
        ["what", "computers", "replicas", "items", "per s", "run s"],
        [
            [
                what,
                f"{r.computers:,}",
                str(r.replicas),
                f"{r.count:,}",
                f"{r.per_second:,.0f}",
                f"{r.seconds:.1f}",
            ]
            for what, series in (
                ("reporting ingest", figures.ingest),
                ("timers -> published", figures.timers),
                ("ingest, 3-node cluster", figures.cluster_ingest),
            )
            for r in series
        ],
    )


def run(plan: Plan) -> None:
    started_at = datetime.now(UTC)
    figures = Figures()
    for size in plan.system_sizes:
        print(f"\n== the whole system at {size:,} computers", flush=True)
        with fresh_infra() as infra:
            if size == plan.system_sizes[0]:
                print_environment(asyncio.run(environment(infra)))
            settings = SystemSettings(
                computers=size,
                rate=1000.0,
                events_seconds=plan.events_seconds,
                idle_seconds=3.0,
                replan_timeout=600.0,
                drain_timeout=120.0,
            )
            measured = asyncio.run(run_system(infra, settings))
            print_rss(measured)
            figures.system.append(system_point(measured))
    remembered = from_memory_results()
    if remembered is not None and remembered.computers not in plan.system_sizes:
        figures.system.append(remembered)
    for size in plan.rate_sizes:
        counts = plan.replicas if size == plan.replica_size else [1]
        print(f"\n== rates at {size:,} computers, replicas {counts}", flush=True)
        with fresh_infra() as infra:
            asyncio.run(rates_at(infra, size, counts, plan, figures))
    size = plan.replica_size
    print(f"\n== reporting's state rows partitioned by computer ({size:,} computers)", flush=True)
    with fresh_infra() as infra:
        figures.partitioned = asyncio.run(
            partitioned(infra.database_url, size, plan.partition_rows)
        )
    print(f"  {figures.partitioned}")
    if plan.cluster:
        print("\n== one broker node, then a 3-node RabbitMQ cluster", flush=True)
        with fresh_infra() as infra:
            asyncio.run(cluster_part(infra, plan, figures))
        print("\n== a private PostgreSQL primary and streaming standby", flush=True)
        from tests.support.servers import postgres_cluster  # noqa: PLC0415 - only here

        with postgres_cluster(standby=True) as pg:
            figures.replica = asyncio.run(
                read_replica(
                    pg.primary_url("lockgate_bench_scale"),
                    pg.standby_url("lockgate_bench_scale"),
                    size,
                    plan.partition_rows,
                )
            )
        print(f"  {figures.replica}")
    print_figures(figures)
    drawn = draw(figures)
    print("plots: " + (", ".join(drawn) or "none"))
    results.save(
        "scale",
        measures_of(figures),
        parameters={
            "plan": asdict(plan),
            "system": [asdict(p) for p in figures.system],
            "ingest": [asdict(r) for r in figures.ingest],
            "timers": [asdict(r) for r in figures.timers],
            "quorum": [asdict(q) for q in figures.quorum],
            "cluster_ingest": [asdict(r) for r in figures.cluster_ingest],
            "partitioned": asdict(figures.partitioned) if figures.partitioned else None,
            "read_replica": asdict(figures.replica) if figures.replica else None,
            "plots": drawn,
        },
        started_at=started_at,
    )


def sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=description(bench_scale.__doc__))
    parser.add_argument(
        "--system-sizes",
        type=sizes,
        default=[10_000, 100_000],
        help="fleets to run the whole system at (1M comes from bench/results/memory.json)",
    )
    parser.add_argument("--rate-sizes", type=sizes, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--replicas", type=sizes, default=[1, 2, 4])
    parser.add_argument("--messages", type=int, default=20_000, help="reports per ingest run")
    parser.add_argument("--fired", type=int, default=20_000, help="instructions per timers run")
    parser.add_argument(
        "--no-cluster", action="store_true", help="skip the 3-node RabbitMQ and PostgreSQL parts"
    )
    parser.add_argument("--cluster", action="store_true", help="with --small: do them too")
    parser.add_argument(
        "--small",
        action="store_true",
        help="whole system at 2k (and memory.json's fleet), rates at 2k and 10k, 1-2 replicas",
    )
    args = parser.parse_args()
    if args.small:
        plan = Plan(
            [2_000],
            [2_000, 10_000],
            [1, 2],
            10_000,
            2_000,
            1_000,
            5.0,
            cluster=args.cluster,
            partition_rows=20_000,
        )
    else:
        plan = Plan(
            args.system_sizes,
            args.rate_sizes,
            args.replicas,
            max(args.rate_sizes),
            args.messages,
            args.fired,
            20.0,
            cluster=not args.no_cluster,
            partition_rows=200_000,
        )
    bench_main(lambda: run(plan))


if __name__ == "__main__":
    main()
