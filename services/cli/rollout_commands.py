"""`lockgate rollouts start|show|list|go|cancel`: rollouts over rings of groups, with the
figures of their gates (the approval service; libs/contracts/rollouts.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from libs.contracts import rollouts as ro
from libs.contracts.rings import RingGate
from libs.contracts.spec import Contract
from libs.settings import Settings
from services.cli.common import ApiClient, Output, show

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

ACTIONS: dict[str, ro.RolloutAction] = {
    "required": "required_install",
    "available": "available_install",
}


def _when(value: object) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def figures_text(figures: ro.GateFigures) -> str:
    """A gate's figures on one line: verdict, counts and why."""
    return (
        f"gate {figures.verdict} at {_when(figures.measured_at)} over ring(s) 1-"
        f"{figures.rings_measured}: {figures.reported} reported, {figures.installed} installed "
        f"({figures.installed_percent:g}%), {figures.failed} failed ({figures.failed_percent:g}%), "
        f"{figures.needed} needed, {figures.no_status} no status, {figures.not_reporting} not "
        f"reporting; {figures.why}"
    )


def rollout_text(rollout: ro.Rollout) -> str:
    """A rollout as `lockgate rollouts show` prints it."""
    gate = rollout.gate
    lines = [
        f"rollout {rollout.rollout_id}: KB{rollout.kb or '-'} {rollout.title}",
        (
            f"{rollout.state}; {rollout.action}, deadline {rollout.deadline.kind}; started "
            f"{_when(rollout.started_at)} by {rollout.started_by}"
        ),
        (
            f"gate: {gate.delay_hours:g} h after each ring, then at least "
            f"{gate.min_installed_percent:g}% installed and below {gate.max_failed_percent:g}% "
            f"failed among at least {gate.min_reports} reports"
        ),
    ]
    for ring in rollout.rings:
        started = (
            f"started {_when(ring.started_at)} ({ring.started_by})"
            if ring.started_at is not None
            else "waiting"
        )
        lines.append(f"  ring {ring.position}: {ring.group_name:<24} {started}")
    if rollout.next_ring_due_at is not None:
        lines.append(f"next ring: gate measured from {_when(rollout.next_ring_due_at)}")
    if rollout.held_because is not None:
        lines.append(f"HELD: {rollout.held_because}")
    if rollout.gate_figures is not None:
        lines.append(figures_text(rollout.gate_figures))
    if rollout.finished_at is not None:
        lines.append(f"{rollout.state} at {_when(rollout.finished_at)}")
    return "\n".join(lines)


def gate_of(args: argparse.Namespace) -> RingGate:
    """The gate the options of `add_gate_options` give."""
    return RingGate(
        delay_hours=args.delay_hours,
        min_installed_percent=args.min_installed,
        max_failed_percent=args.max_failed,
        min_reports=args.min_reports,
    )


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """The gate between rings: `--delay-hours`, `--min-installed`, `--max-failed`,
    `--min-reports` (defaults: RingGate's)."""
    defaults = RingGate()
    parser.add_argument(
        "--delay-hours", type=float, default=defaults.delay_hours, help="after each ring starts"
    )
    parser.add_argument(
        "--min-installed", type=float, default=defaults.min_installed_percent, help="percent"
    )
    parser.add_argument(
        "--max-failed",
        type=float,
        default=defaults.max_failed_percent,
        help="percent; failures must stay below it",
    )
    parser.add_argument("--min-reports", type=int, default=defaults.min_reports)


async def cmd_start(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    request = ro.StartRollout(
        update=args.update,
        rings=args.ring or [],
        action=ACTIONS[args.action],
        deadline=args.deadline,
        gate=gate_of(args),
    )

    async def produce(client: ApiClient) -> tuple[Contract, str]:
        rollout = await client.call(ro.START_ROLLOUT, request)
        return rollout, rollout_text(rollout)

    return await show(settings, out, produce)


async def cmd_show(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        rollout = await client.call(ro.SHOW_ROLLOUT, ro.RolloutRef(rollout=args.rollout))
        return rollout, rollout_text(rollout)

    return await show(settings, out, produce)


async def cmd_list(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(
            ro.LIST_ROLLOUTS, ro.ListRollouts(states=args.state or [], limit=args.limit)
        )
        lines = [
            f"{r.rollout_id}  KB{r.kb or '-':<8} {r.state:<9} ring {r.rings_started}/"
            f"{len(r.rings)}  {r.title}"
            for r in found.rollouts
        ]
        return found, "\n".join(lines) or "no rollouts"

    return await show(settings, out, produce)


async def cmd_go(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        rollout = await client.call(
            ro.GO_ROLLOUT, ro.RolloutDecision(rollout=args.rollout, reason=args.reason)
        )
        return rollout, rollout_text(rollout)

    return await show(settings, out, produce)


async def cmd_cancel(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        rollout = await client.call(
            ro.CANCEL_ROLLOUT, ro.RolloutDecision(rollout=args.rollout, reason=args.reason)
        )
        return rollout, rollout_text(rollout)

    return await show(settings, out, produce)


def add_parsers(sub: Commands) -> None:
    parser = sub.add_parser(
        "rollouts", help="roll an update out ring by ring, each next ring after a success gate"
    )
    commands = parser.add_subparsers(dest="rollout_command", required=True)
    from services.cli.approval_commands import deadline  # noqa: PLC0415 - it imports this module

    start = commands.add_parser("start", help="approve the first ring now, the next after gates")
    start.add_argument("update", help="update id or KB number")
    start.add_argument(
        "--ring", action="append", help="group id or name, first ring first (repeat; 2 or more)"
    )
    start.add_argument("--action", choices=list(ACTIONS), default="required")
    start.add_argument(
        "--deadline",
        type=deadline,
        default="none",
        help="per ring: none|asap|1w|2w|1m (from each ring's start) or an ISO 8601 date-time",
    )
    add_gate_options(start)
    start.set_defaults(handler=cmd_start)

    shown = commands.add_parser("show", help="a rollout, its rings and its gate's figures")
    shown.add_argument("rollout", help="rollout id, or update id / KB number (latest rollout)")
    shown.set_defaults(handler=cmd_show)

    listed = commands.add_parser("list", help="rollouts, newest first")
    listed.add_argument("--state", action="append", choices=list(ro.ROLLOUT_STATES))
    listed.add_argument("--limit", type=int, default=100)
    listed.set_defaults(handler=cmd_list)

    for name, handler, text in (
        ("go", cmd_go, "start the next ring now, whatever its delay and gate"),
        ("cancel", cmd_cancel, "start no further ring (approvals given stay)"),
    ):
        decided = commands.add_parser(name, help=text)
        decided.add_argument("rollout", help="rollout id, or update id / KB number")
        decided.add_argument("--reason", default="", help="why (kept in the event)")
        decided.set_defaults(handler=handler)
