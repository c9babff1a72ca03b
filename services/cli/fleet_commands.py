"""`lockgate computers list`: the fleet list (every managed computer, filtered, sorted, paged)."""

from __future__ import annotations

import argparse
import shlex
from datetime import datetime
from typing import TYPE_CHECKING

from libs.contracts import reporting as r
from libs.contracts.reporting import NOT_ENROLLED
from libs.contracts.spec import Contract
from libs.settings import Settings
from services.cli.common import ApiClient, Output, show

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

FILTERS = ("not-reporting", "failed", "restart-pending", "past-deadline")
SORTS: dict[str, r.FleetSort] = {
    "name": "name",
    "last-contact": "last_contact",
    "failed": "failed",
}
COLUMNS = (
    f"{'computer':<16} {'host':<24} {'groups':<20} {'os':<11} {'arch':<5} {'agent':<7} "
    f"{'policy':<14} {'last contact':<16}  inst need fail rst nost"
)


def query_of(args: argparse.Namespace) -> r.ListComputers:
    """The fleet list query the command line asks for."""
    chosen = set(args.filter or ())
    return r.ListComputers(
        not_reporting="not-reporting" in chosen,
        failed="failed" in chosen,
        restart_pending="restart-pending" in chosen,
        past_deadline="past-deadline" in chosen,
        group=args.group,
        search=args.search,
        sort=SORTS[args.sort],
        cursor=args.cursor,
        limit=args.limit,
    )


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _when(instant: datetime) -> str:
    return f"{instant:%Y-%m-%d %H:%M}"


def row(computer: r.FleetComputer) -> str:
    """One computer as a table row; a computer not reporting is flagged after its contact."""
    c = computer.compliance
    contact = _when(computer.last_contact_at) + ("!" if computer.not_reporting else " ")
    return (
        f"{_short(computer.computer_id, 16):<16} {_short(computer.hostname, 24):<24} "
        f"{_short(','.join(computer.groups) or '-', 20):<20} "
        f"{_short(computer.operating_system or '-', 11):<11} "
        f"{computer.architecture or '-':<5} {_short(computer.agent_version or '-', 7):<7} "
        f"{_short(computer.policy or '-', 14):<14} {contact:<17} "
        f"{c.installed:>4} {c.needed:>4} {c.failed:>4} {c.installed_pending_restart:>3} "
        f"{c.no_status:>4}"
    )


def next_command(args: argparse.Namespace, cursor: str) -> str:
    """The command line that shows the next page: the same filters, the cursor given."""
    words = ["lockgate", "computers", "list"]
    for name in args.filter or ():
        words += ["--filter", name]
    for option, value in (("--group", args.group), ("--search", args.search)):
        if value is not None:
            words += [option, value]
    if args.sort != "name":
        words += ["--sort", args.sort]
    if args.limit != r.ListComputers.model_fields["limit"].default:
        words += ["--limit", str(args.limit)]
    return shlex.join([*words, "--cursor", cursor])


def table(found: r.ComputerList, args: argparse.Namespace) -> str:
    if found.managed == 0:
        return NOT_ENROLLED
    # The managed count comes with the first page only (counting a million rows per page
    # cost more than the page): later pages say how many they show.
    of_managed = "" if found.managed is None else f" of {found.managed} managed"
    if not found.computers:
        return (
            f"no computer matches ({of_managed.strip()})"
            if of_managed
            else ("no computer matches on this page")
        )
    lines = [COLUMNS, *(row(c) for c in found.computers)]
    silent = sum(c.not_reporting for c in found.computers)
    lines.append(
        f"{len(found.computers)} shown{of_managed}"
        + (f"; ! = not reporting ({silent} here)" if silent else "")
    )
    if found.next_cursor is not None:
        lines.append(f"next page: {next_command(args, found.next_cursor)}")
    return "\n".join(lines)


async def cmd_list(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(r.LIST_COMPUTERS, query_of(args))
        return found, table(found, args)

    return await show(settings, out, produce)


def add_parsers(computers: Commands) -> None:
    listed = computers.add_parser(
        "list",
        help="the fleet: every managed computer with its groups, inventory, last contact and "
        "compliance (installed, needed, failed, restart pending, no status)",
    )
    listed.add_argument(
        "--filter",
        action="append",
        choices=FILTERS,
        help="only computers not reporting, with a failed update, a restart pending or past "
        "a deadline (repeat to combine)",
    )
    listed.add_argument("--group", default=None, help="members of this group or its subgroups")
    listed.add_argument("--search", default=None, help="host name or id starting with TEXT")
    listed.add_argument(
        "--sort",
        choices=list(SORTS),
        default="name",
        help="name (A-Z), last-contact (longest silent first) or failed (most first)",
    )
    listed.add_argument("--limit", type=int, default=100)
    listed.add_argument("--cursor", default=None, help="the next page (printed under a page)")
    listed.set_defaults(handler=cmd_list)
