"""python -m bench.bench_scheduler_timers: load the fleet, the four phases, then the figures."""

from __future__ import annotations

import argparse
import asyncio

from bench import bench_scheduler_timers
from bench.bench_scheduler_timers.backlog import SINK_QUEUE, lockgate_backlog
from bench.bench_scheduler_timers.fleet import SCHEMA, load_fleet
from bench.bench_scheduler_timers.paced import explain_batch, paced
from bench.bench_scheduler_timers.raw import instructions, raw_claim, raw_publish_phase
from bench.bench_scheduler_timers.report import report
from bench.common.explain import print_plans
from bench.common.infra import bench_main, check, description, environment, in_fresh_infra
from bench.common.meters import busy_since, machine_ticks
from bench.common.queues import queue_probe
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


async def run(  # noqa: PLR0917 - the command line's choices
    infra: Infra,
    computers: int,
    target: int,
    paced_load: float,
    paced_seconds: float,
    explain: bool,
    profile: str | None,
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
        print(f"lockgate: firing until {target} instructions are published ...", flush=True)
        backlog = await lockgate_backlog(infra, settings, queues, target, profile=profile)
        print(f"lockgate: {backlog.rate:.0f}/s; raw publish of the same messages ...", flush=True)
        items = await instructions(infra, target)
        await queues.purge(SINK_QUEUE)
        raw = await raw_publish_phase(infra, items, settings.outbox_batch_size)
        sunk = await queues.depth(SINK_QUEUE)
        await queues.purge(SINK_QUEUE)
        check(sunk == target, f"raw publish: {sunk} messages in the sink for {target}")
        del items
        print(f"raw publish: {raw.rate:.0f}/s; raw claim ...", flush=True)
        claim = await raw_claim(infra, target, settings.timer_batch_size)
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
    args = parser.parse_args(argv)
    if not 0 < args.fire <= args.computers // 3:
        parser.error("--fire must be positive and at most a third of --computers")
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
            )
        )
    )


if __name__ == "__main__":
    main()
