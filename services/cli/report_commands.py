"""`lockgate report ...`: compliance per update, group, computer and over the fleet."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from libs.contracts import reporting as r
from libs.contracts.reporting import NOT_ENROLLED
from libs.contracts.spec import Contract
from libs.settings import Settings
from services.cli.common import ApiClient, Output, show

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def _counts(counts: r.StateCounts) -> str:
    return (
        f"applies to {counts.applies_to}: {counts.installed} installed, {counts.needed} needed, "
        f"{counts.failed} failed, {counts.installed_pending_restart} pending restart; "
        f"{counts.not_applicable} not applicable, {counts.no_status} no status, "
        f"{counts.not_reporting} not reporting"
    )


def overview_text(found: r.SummaryReport) -> str:
    """The overview as text: the fleet, its headline counts, then per update; until a
    computer checks in, how to enrol one."""
    if found.computers == 0:
        return NOT_ENROLLED
    head = (
        f"{found.computers} computers, {found.computers_not_reporting} not reporting; "
        "new updates to approve: " + ("yes" if found.new_updates_to_approve else "no")
    )
    lines = [head]
    if found.totals is not None:
        lines.append(f"every update: {_counts(found.totals)}")
    return "\n".join([*lines, *(_line(u) for u in found.updates)])


def _line(update: r.UpdateCompliance) -> str:
    flags = " (superseded)" if update.superseded else ""
    return f"KB{update.kb or '-':<8} {update.title[:50]:<50}{flags}  {_counts(update.counts)}"


def _page(args: argparse.Namespace) -> r.Page:
    return r.Page(offset=args.offset, limit=args.limit)


async def cmd_summary(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(r.SUMMARY, r.Summary(page=_page(args)))
        return found, overview_text(found)

    return await show(settings, out, produce)


async def cmd_update(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(
            r.UPDATE_REPORT, r.UpdateReportQuery(update=args.update, page=_page(args))
        )
        lines = [
            _line(found.update),
            f"installs: {found.successes} succeeded, {found.failures} failed",
            *(
                f"  {f.computer_id}: exit code {f.return_code} at {f.finished_at:%Y-%m-%d %H:%M}"
                for f in found.failed_attempts
            ),
        ]
        return found, "\n".join(lines)

    return await show(settings, out, produce)


async def cmd_group(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(
            r.GROUP_REPORT, r.GroupReportQuery(group=args.group, page=_page(args))
        )
        head = f"{found.name}: {found.computers} computers; {_counts(found.totals)}"
        return found, "\n".join([head, *(_line(u) for u in found.updates)])

    return await show(settings, out, produce)


async def cmd_computer(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(
            r.COMPUTER_REPORT, r.ComputerReportQuery(computer=args.computer, page=_page(args))
        )
        contact = (
            f"last contact {found.last_contact_at:%Y-%m-%d %H:%M}"
            if found.last_contact_at is not None
            else "never in contact"
        )
        silent = " (NOT REPORTING)" if found.not_reporting else ""
        lines = [f"{found.computer_id}: {contact}{silent}; {_counts(found.totals)}"] + [
            f"KB{u.kb or '-':<8} {u.state:<26} {u.title[:60]}" for u in found.updates
        ]
        return found, "\n".join(lines)

    return await show(settings, out, produce)


def add_parsers(sub: Commands) -> None:
    report = sub.add_parser("report", help="compliance reports")
    commands = report.add_subparsers(dest="report_command", required=True)
    for name, handler, argument, text in (
        ("overview", cmd_summary, None, "per update over the fleet, and the notification"),
        ("update", cmd_update, "update", "one update: counts and failed installs"),
        ("group", cmd_group, "group", "a group and its subgroups"),
        ("computer", cmd_computer, "computer", "one computer's updates"),
    ):
        command = commands.add_parser(name, help=text)
        if argument is not None:
            command.add_argument(argument)
        command.add_argument("--offset", type=int, default=0)
        command.add_argument("--limit", type=int, default=100)
        command.set_defaults(handler=handler)
