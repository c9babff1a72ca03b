"""`lockgate sim`: a simulated fleet of agents on the broker (the agent protocol only)."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from libs.bus import Bus
from libs.service.clock import clock_from
from libs.settings import Settings
from services.cli.common import Output
from services.simulator.fleet import Fleet, Options

DEFAULTS = Options()
REJECTIONS_SHOWN = 10
"""The last refusals the summary lists (each is also logged when it arrives)."""

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def options_of(args: argparse.Namespace) -> Options:
    return Options(
        computers=args.computers,
        prefix=args.prefix,
        offline_rate=args.offline_rate,
        failure_rate=args.failure_rate,
        postpone_rate=args.postpone_rate,
        seed=args.seed,
        x86_rate=args.x86_rate,
        arm64_rate=args.arm64_rate,
        windows10_rate=args.windows10_rate,
        request_rate=args.request_rate,
        interrupt_rate=args.interrupt_rate,
        silent_rate=args.silent_rate,
        silent_after=timedelta(hours=args.silent_after_hours),
        mute_rate=args.mute_rate,
    )


async def run_fleet(
    settings: Settings, out: Output, options: Options, duration: float, every: float = 15.0
) -> Fleet:
    """Run a fleet for `duration` seconds (0: until cancelled), printing a summary as it goes."""
    bus = await Bus.connect(settings.amqp_url, name=f"lockgate-sim-{options.prefix}")
    await bus.declare_exchanges()
    fleet = Fleet(bus, clock_from(settings.clock_speed, settings.clock_epoch), options)
    await fleet.start()
    ends = time.monotonic() + duration if duration else None
    try:
        while ends is None or time.monotonic() < ends:
            await asyncio.sleep(
                every if ends is None else min(every, max(ends - time.monotonic(), 0))
            )
            if not out.as_json:
                print(
                    "fleet:", ", ".join(f"{k} {v}" for k, v in fleet.summary().items()), flush=True
                )
    finally:
        await fleet.stop()
        await bus.close()
    return fleet


async def cmd_sim(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    if args.speed is not None:
        settings = settings.model_copy(
            update={
                "clock_speed": args.speed,
                "clock_epoch": settings.clock_epoch or datetime.now(UTC),
            }
        )
    fleet = await run_fleet(settings, out, options_of(args), args.duration)
    summary = fleet.summary()
    out.result(summary, "fleet summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    if not out.as_json:
        for rejected in fleet.rejections[-REJECTIONS_SHOWN:]:
            print(
                f"  rejected {rejected.message_type} of {rejected.computer_id}: "
                f"{rejected.reason_class} {rejected.reason}",
                flush=True,
            )
    return 0


def add_parsers(sub: Commands) -> None:
    sim = sub.add_parser("sim", help="run a simulated fleet of agents against the broker")
    sim.add_argument("--computers", type=int, default=100)
    sim.add_argument("--prefix", default="sim", help="computer ids are PREFIX-00000 ...")
    sim.add_argument("--offline-rate", type=float, default=0.05)
    sim.add_argument("--failure-rate", type=float, default=0.05)
    sim.add_argument("--postpone-rate", type=float, default=0.5)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--x86-rate", type=float, default=DEFAULTS.x86_rate, help="share of 32-bit (x86) computers"
    )
    sim.add_argument(
        "--arm64-rate", type=float, default=DEFAULTS.arm64_rate, help="share of arm64 computers"
    )
    sim.add_argument(
        "--windows10-rate",
        type=float,
        default=DEFAULTS.windows10_rate,
        help="share of computers running Windows 10 (the others run Windows 11)",
    )
    sim.add_argument(
        "--request-rate",
        type=float,
        default=DEFAULTS.request_rate,
        help="chance, at each plan, that a user asks for an available update",
    )
    sim.add_argument(
        "--interrupt-rate",
        type=float,
        default=DEFAULTS.interrupt_rate,
        help="chance that a download is cut halfway (the agent resumes it with Range)",
    )
    sim.add_argument(
        "--silent-rate",
        type=float,
        default=DEFAULTS.silent_rate,
        help="share of computers that go silent for good after --silent-after-hours (no more "
        "check-ins or reports: not reporting once LOCKGATE_NOT_REPORTING_DAYS pass)",
    )
    sim.add_argument(
        "--silent-after-hours",
        type=float,
        default=DEFAULTS.silent_after.total_seconds() / 3600,
        help="simulated hours a silent computer works before it goes quiet",
    )
    sim.add_argument(
        "--mute-rate",
        type=float,
        default=DEFAULTS.mute_rate,
        help="share of computers that check in but never report a status (no status)",
    )
    sim.add_argument(
        "--duration", type=float, default=0, help="seconds to run (0: until interrupted)"
    )
    sim.add_argument(
        "--speed",
        type=float,
        default=None,
        help="time runs this much faster (sets LOCKGATE_CLOCK_SPEED for the simulator only: "
        "the services must run with the same speed and epoch)",
    )
    sim.set_defaults(handler=cmd_sim)
