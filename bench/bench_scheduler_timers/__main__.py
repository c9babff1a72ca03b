"""python -m bench.bench_scheduler_timers: load the fleet, the four phases, then the figures."""

from __future__ import annotations

import argparse
import asyncio

from bench import bench_scheduler_timers
from bench.bench_scheduler_timers.backlog import SINK_QUEUE, Backlog, lockgate_backlog
from bench.bench_scheduler_timers.fleet import SCHEMA, load_fleet
from bench.bench_scheduler_timers.paced import explain_batch, paced
from bench.bench_scheduler_timers.raw import (
    Rate,
    instructions,
    raw_claim_publish,
    raw_publish_phase,
)
from bench.bench_scheduler_timers.report import (
    FAIR_GOAL,
    PUBLISH_GOAL,
    report,
    save_results,
)
from bench.common.baselines import RawMessage
from bench.common.explain import print_plans
from bench.common.infra import bench_main, check, description, environment, in_fresh_infra
from bench.common.meters import busy_since, machine_ticks
from bench.common.queues import QueueProbe, queue_probe
from libs.bus import Bus
from libs.bus.bus import Binding
from libs.contracts.agents import INSTALL
from libs.contracts.names import Exchange
from libs.db.migrations import migrate
from libs.settings import Settings
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.infra import Infra

TIMER_POLL_SECONDS = 0.05
SHUTDOWN_GRACE_SECONDS = 120.0
FLAME_GRAPH = "bench/profiles/scheduler_timers.svg"
"""Where py-spy records one more lockgate pass when a goal is missed."""
SMALL = {"computers": 30_000, "fire": 9_000, "rounds": 3, "paced_seconds": 2.0}
"""--small: a run of about a minute."""


async def run(  # noqa: PLR0917 - the command line's choices
    infra: Infra,
    computers: int,
    target: int,
    paced_load: float,
    paced_seconds: float,
    explain: bool,
    profile: str | None,
    rounds: int,
    record_when: str,
) -> None:
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=infra.database_url,
        timer_poll_seconds=TIMER_POLL_SECONDS,
        shutdown_grace_seconds=SHUTDOWN_GRACE_SECONDS,
    )
    env = await environment(infra)
    before = machine_ticks()
    await asyncio.sleep(3.0)
    env["before run"] = f"machine {busy_since(before):.0%} busy over 3 s with this benchmark idle"
    await migrate(infra.database_url, SCHEMA, SCHEDULER.migrations)
    print(f"loading {computers} computers and timers ...", flush=True)
    load = await load_fleet(infra.database_url, computers)
    print(f"loaded in {load.copy_seconds:.1f} s + vacuum {load.vacuum_seconds:.1f} s", flush=True)
    if explain:
        print_plans(
            "EXPLAIN (ANALYZE, BUFFERS) of one batch of the timers task, rolled back:",
            await explain_batch(infra, settings.timer_batch_size),
        )
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    try:
        await bus.declare_exchanges()
        await bus.declare_queue(SINK_QUEUE, [Binding(Exchange.AGENTS, INSTALL.binding_key)])
    finally:
        await bus.close()
    async with queue_probe(infra.amqp_url) as queues:
        backlog, raw, claim = await measured_rounds(
            infra, settings, queues, target, rounds, profile
        )
        flame_graph = None
        missed = claim.rate * FAIR_GOAL > backlog.rate or raw.rate * PUBLISH_GOAL > backlog.rate
        if record_when == "always" or (missed and record_when != "never"):
            flame_graph = FLAME_GRAPH
            count = max(1, target // rounds)
            print(
                f"lockgate again ({count}), recorded by py-spy into {flame_graph} ...", flush=True
            )
            await lockgate_backlog(
                infra, settings, queues, count, profile=None, flame_graph=flame_graph
            )
            await queues.purge(SINK_QUEUE)
        pace = None
        if paced_seconds > 0:
            rate = paced_load * backlog.rate
            print(f"paced: {rate:.0f} timers/s for {paced_seconds:g} s ...", flush=True)
            pace = await paced(infra, settings, queues, rate, paced_seconds)
    choices = (
        f"timer_batch_size {settings.timer_batch_size}, outbox_batch_size "
        f"{settings.outbox_batch_size}, timer_poll_seconds {settings.timer_poll_seconds}"
    )
    report(env, choices, load, backlog, raw, claim, pace)
    parameters: dict[str, object] = {
        "computers": computers,
        "fire": target,
        "rounds": rounds,
        "paced_load": paced_load,
        "paced_seconds": paced_seconds,
        "timer_batch_size": settings.timer_batch_size,
        "outbox_batch_size": settings.outbox_batch_size,
        "timer_poll_seconds": settings.timer_poll_seconds,
    }
    save_results(load, backlog, raw, claim, pace, parameters, flame_graph or profile)


async def measured_rounds(  # noqa: PLR0917 - one run's settings
    infra: Infra,
    settings: Settings,
    queues: QueueProbe,
    target: int,
    rounds: int,
    profile: str | None,
) -> tuple[Backlog, Rate, Rate]:
    """Phases 1-3 in `rounds` rounds of `target / rounds` timers, each round in another order
    (lockgate first in the first: the raw phases send its instructions), so a change in the
    machine's load (other tenants) falls on all three alike; each phase's rounds added up."""
    passes: list[Backlog] = []
    raws: list[Rate] = []
    claims: list[Rate] = []
    items: list[tuple[RawMessage, str]] = []
    order = ("lockgate", "raw publish", "raw claim")
    for index in range(rounds):
        count = target // rounds + (1 if index < target % rounds else 0)
        for name in order[index % 3 :] + order[: index % 3]:
            print(f"round {index + 1}/{rounds}: {name}, {count} timers ...", flush=True)
            if name == "lockgate":
                one = await lockgate_backlog(infra, settings, queues, count, profile=profile)
                passes.append(one)
                items = await instructions(infra, count, one.after_seq)
                print(f"  {one.rate:.0f}/s", flush=True)
                await queues.purge(SINK_QUEUE)
                continue
            chunk = items[:count]
            if name == "raw publish":
                rate = await raw_publish_phase(infra, chunk, settings.outbox_batch_size)
                raws.append(rate)
            else:
                rate = await raw_claim_publish(infra, chunk, settings.timer_batch_size)
                claims.append(rate)
            print(f"  {rate.rate:.0f}/s", flush=True)
            sunk = await queues.depth(SINK_QUEUE)
            await queues.purge(SINK_QUEUE)
            check(sunk == len(chunk), f"{name}: {sunk} messages in the sink for {len(chunk)}")
    return Backlog.combine(passes), Rate.combine(raws), Rate.combine(claims)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_scheduler_timers.__doc__))
    parser.add_argument("--computers", type=int, default=1_000_000, help="computers and timers")
    parser.add_argument(
        "--fire", type=int, default=100_000, help="timed slice: instructions to publish"
    )
    parser.add_argument(
        "--paced-load", type=float, default=0.5, help="paced phase rate, share of backlog rate"
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=20.0, help="paced phase length (0: skip it)"
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE a batch first")
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the backlog phase, stats saved to FILE"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds phases 1-3 are split into, interleaved"
    )
    parser.add_argument(
        "--flame-graph",
        choices=("missed", "always", "never"),
        default="missed",
        help=f"record one more lockgate pass with py-spy into {FLAME_GRAPH} (default: when a"
        " goal is missed)",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="a quick run: "
        + ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in SMALL.items()),
    )
    args = parser.parse_args(argv)
    if args.small:
        for name, value in SMALL.items():
            setattr(args, name, type(getattr(args, name))(value))
    if not 0 < args.fire <= args.computers // 3:
        parser.error("--fire must be positive and at most a third of --computers")
    if not 0 < args.rounds <= args.fire:
        parser.error("--rounds must be positive and at most --fire")
    if not 0 < args.paced_load <= 2 or args.paced_seconds < 0:
        parser.error("--paced-load must be in (0, 2], --paced-seconds >= 0")
    bench_main(
        lambda: in_fresh_infra(
            lambda infra: run(
                infra,
                args.computers,
                args.fire,
                args.paced_load,
                args.paced_seconds,
                args.explain,
                args.profile,
                args.rounds,
                args.flame_graph,
            )
        )
    )


if __name__ == "__main__":
    main()
