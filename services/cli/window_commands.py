"""`lockgate windows set|list|clear`: maintenance windows per group (the scheduler's)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pydantic import ValidationError

from libs.contracts import windows as w
from libs.contracts.spec import Contract
from libs.settings import Settings
from services.cli.common import ApiClient, Output, show

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def window(text: str) -> w.MaintenanceWindow:
    """One window as text, checked before anything is sent."""
    try:
        return w.MaintenanceWindow.model_validate(text)
    except ValidationError as error:
        reasons = [
            f"{field} {e['input']!r}: {e['msg']}"
            if (field := ".".join(map(str, e["loc"])))
            else str(e["msg"]).removeprefix("Value error, ")
            for e in error.errors()
        ]
        raise argparse.ArgumentTypeError("; ".join(reasons)) from None


def _text(group: w.GroupWindows) -> str:
    shown = "; ".join(group.texts) or "no windows of its own"
    return f"{group.group_name}: {shown}"


async def cmd_set(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    request = w.SetMaintenanceWindows(group=args.group, windows=args.windows)

    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(w.SET_WINDOWS, request)
        return found, _text(found)

    return await show(settings, out, produce)


async def cmd_clear(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(w.CLEAR_WINDOWS, w.ClearMaintenanceWindows(group=args.group))
        return found, _text(found)

    return await show(settings, out, produce)


async def cmd_list(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(w.LIST_WINDOWS, w.ListMaintenanceWindows(group=args.group))
        return found, "\n".join(_text(g) for g in found.groups) or "no group has windows"

    return await show(settings, out, produce)


def add_parsers(sub: Commands) -> None:
    """`lockgate windows ...`."""
    windows = sub.add_parser(
        "windows",
        help="maintenance windows per group: installs and restarts only inside them "
        "unless a deadline has passed",
    )
    commands = windows.add_subparsers(dest="windows_command", required=True)
    listing = commands.add_parser("list", help="groups' own windows (or one group's)")
    listing.add_argument("--group", help="group id or name")
    listing.set_defaults(handler=cmd_list)
    setting = commands.add_parser("set", help="replace a group's windows")
    setting.add_argument("group", help="group id or name")
    setting.add_argument(
        "windows",
        type=window,
        nargs="+",
        metavar="WINDOW",
        help="'tuesday 22:00-02:00' (weekly) or 'second tuesday + 1 day, 22:00-02:00' "
        "(monthly), computer's local time",
    )
    setting.set_defaults(handler=cmd_set)
    clear = commands.add_parser("clear", help="remove a group's windows")
    clear.add_argument("group", help="group id or name")
    clear.set_defaults(handler=cmd_clear)
