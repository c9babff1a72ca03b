"""`lockgate updates pause|resume|rollback <update> [--group G] --reason ...`: hold an
update's installs, let them go on, or turn its approval into uninstall (the approval
service's services/approval/use_cases/controls.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from libs.contracts import approval as a
from libs.contracts.spec import Contract
from libs.settings import Settings
from services.cli.common import ApiClient, Output, show

if TYPE_CHECKING:
    from collections.abc import Callable

    from services.cli.approval_commands import Commands


def controlled_text(result: a.UpdateControlled) -> str:
    """What a pause, resume or rollback did, in one line."""
    name = f"KB{result.kb}" if result.kb else result.update_id
    where = "fleet-wide" if result.group_name is None else f"in group {result.group_name!r}"
    if not result.changed:
        return f"{name}: nothing changed {where}: {result.note}"
    done = f"{name} {result.verb.replace('_', ' ')} {where}"
    if result.groups:
        done += f" (uninstall set on {', '.join(result.groups)})"
    return f"{done}; {result.effective_changed} group approval(s) changed"


def _request(args: argparse.Namespace) -> a.PauseUpdate | a.ResumeUpdate | a.RollbackUpdate:
    if args.control == "pause":
        return a.PauseUpdate(update=args.update, group=args.group, reason=args.reason)
    if args.control == "resume":
        return a.ResumeUpdate(update=args.update, group=args.group, reason=args.reason)
    return a.RollbackUpdate(
        update=args.update, group=args.group, reason=args.reason, deadline=args.deadline
    )


async def cmd_control(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    request = _request(args)

    async def produce(client: ApiClient) -> tuple[Contract, str]:
        if isinstance(request, a.PauseUpdate):
            result = await client.call(a.PAUSE_UPDATE, request)
        elif isinstance(request, a.ResumeUpdate):
            result = await client.call(a.RESUME_UPDATE, request)
        else:
            result = await client.call(a.ROLLBACK_UPDATE, request)
        return result, controlled_text(result)

    return await show(settings, out, produce)


def add_parsers(updates: Commands, deadline: Callable[[str], a.DeadlineChoice]) -> None:
    """`pause`, `resume` and `rollback` under `lockgate updates`; `deadline` parses the
    rollback's --deadline as `updates approve` does."""
    helps = {
        "pause": "hold an update: no new install of it starts (fleet-wide or in a group)",
        "resume": "let a paused update install again (fleet-wide: every pause of it)",
        "rollback": "turn an update's install approvals into uninstall",
    }
    for name, text in helps.items():
        command = updates.add_parser(name, help=text)
        command.add_argument("update", help="KB number or update id")
        command.add_argument(
            "--group",
            default=None,
            help="group id or name (and what inherits from it); default: fleet-wide",
        )
        command.add_argument("--reason", required=True, help="why (kept and published)")
        if name == "rollback":
            command.add_argument(
                "--deadline",
                type=deadline,
                default=a.DeadlineChoice(),
                help="the uninstall's deadline: none|asap|1w|2w|1m|ISO-8601 (default none)",
            )
        command.set_defaults(handler=cmd_control, control=name)
