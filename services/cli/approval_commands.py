"""`lockgate group|approve|decline|updates|computer|rule ...`: the approval service."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from libs.contracts import approval as a
from libs.contracts import catalog as c
from libs.contracts import reporting as r
from libs.contracts.catalog import CLASSIFICATIONS
from libs.contracts.spec import Contract
from libs.settings import Settings
from services.cli import control_commands, rollout_commands, upload_commands
from services.cli.common import ApiClient, ApiFailure, Output, show, with_api

Handler = Callable[[Settings, Output, argparse.Namespace], Awaitable[int]]


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date-time, e.g. 2026-12-01T18:00+01:00"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add one, e.g. +01:00 or Z")
    return value


def _deadline(value: a.Deadline | None) -> str:
    if value is None or value.at is None:
        return "no deadline"
    return f"{value.kind} ({value.at:%Y-%m-%d %H:%M} UTC)"


def _approval(value: a.Approval | None) -> str:
    return "-" if value is None else f"{value.action}, {_deadline(value.deadline)}"


def _group_line(group: a.GroupView) -> str:
    depth = len(group.path) - 1
    return f"{'  ' * depth}{group.name}  ({group.computers} computers)  {group.group_id}"


async def cmd_groups(settings: Settings, out: Output, _: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(a.LIST_GROUPS, a.ListGroups())
        return found, "\n".join(_group_line(g) for g in found.groups)

    return await show(settings, out, produce)


def _group_text(group: a.Group) -> str:
    return f"{' / '.join(group.path)}  {group.group_id}"


async def cmd_group_create(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        group = await client.call(a.CREATE_GROUP, a.CreateGroup(name=args.name, parent=args.parent))
        return group, _group_text(group)

    return await show(settings, out, produce)


async def cmd_group_rename(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        group = await client.call(a.RENAME_GROUP, a.RenameGroup(group=args.group, name=args.name))
        return group, _group_text(group)

    return await show(settings, out, produce)


async def cmd_group_move(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        group = await client.call(a.MOVE_GROUP, a.MoveGroup(group=args.group, parent=args.parent))
        return group, _group_text(group)

    return await show(settings, out, produce)


async def cmd_group_delete(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        deleted = await client.call(a.DELETE_GROUP, a.DeleteGroup(group=args.group))
        return deleted, f"deleted {deleted.name}"

    return await show(settings, out, produce)


async def cmd_group_members(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        result = await client.call(
            a.CHANGE_MEMBERSHIP,
            a.ChangeMembership(computers=args.computers, group=args.group, member=args.member),
        )
        verb = "added to" if args.member else "removed from"
        return result, f"{result.changed} computer(s) {verb} {args.group}"

    return await show(settings, out, produce)


async def cmd_group_approvals(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(a.GROUP_APPROVALS, a.GroupApprovals(group=args.group))
        lines = [
            f"KB{s.kb or '-':<8} {_approval(s.effective):<60} {s.why}" for s in found.approvals
        ]
        return found, "\n".join([_group_text(found.group), *lines])

    return await show(settings, out, produce)


async def cmd_approve(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    request = a.Approve(
        updates=args.updates,
        groups=[
            a.GroupChoice(group=group, action=ACTIONS[args.action], deadline=args.deadline)
            for group in args.group
        ],
    )

    async def produce(client: ApiClient) -> tuple[Contract, str]:
        result = await client.call(a.APPROVE, request)
        return result, (
            f"{result.explicit_changed} approval(s) set; "
            f"{result.effective_changed} group approval(s) changed"
        )

    return await show(settings, out, produce)


async def cmd_decline(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        result = await client.call(a.DECLINE, a.Decline(updates=args.updates))
        return result, (
            f"{len(result.declined)} update(s) declined; "
            f"{result.effective_changed} group approval(s) removed"
        )

    return await show(settings, out, produce)


async def _failed_update_ids(client: ApiClient) -> set[str]:
    """Updates with at least one failed install, from reporting (approval does not know)."""
    found: set[str] = set()
    offset = 0
    while True:
        page = await client.call(r.SUMMARY, r.Summary(page=r.Page(offset=offset, limit=1000)))
        found |= {u.update_id for u in page.updates if u.counts.failed}
        offset += len(page.updates)
        if not page.updates or offset >= page.total:
            return found


async def cmd_updates(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    wanted = [state.replace("-", "_") for state in args.state or []]
    failed_only = "failed" in wanted
    query = a.ListUpdates(
        states=[s for s in wanted if s != "failed"],
        search=args.search,
        classification=args.classification,
        product_family=args.product,
        limit=args.limit,
    )

    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(a.LIST_UPDATES, query)
        if failed_only:
            failed = await _failed_update_ids(client)
            kept = [u for u in found.updates if u.update_id in failed]
            found = a.UpdateList(updates=kept, total=len(kept))
        lines = [
            f"KB{u.kb or '-':<8} {','.join(u.states):<24} {u.classification:<17} {u.title}"
            for u in found.updates
        ]
        return found, "\n".join([*lines, f"{len(found.updates)} of {found.total}"])

    return await show(settings, out, produce)


async def cmd_update_show(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    """Catalog properties, approval state and how many computers it applies to, together."""

    async def run(client: ApiClient) -> int:
        detail = await client.call(c.GET_UPDATE, c.GetUpdate(update=args.update))
        update = detail.update
        listed = await client.call(
            a.LIST_UPDATES,
            a.ListUpdates(states=list(a.UPDATE_STATES), search=update.kb or update.title),
        )
        view = next((v for v in listed.updates if v.update_id == update.update_id), None)
        states = list(view.states) if view else []
        try:
            report = await client.call(
                r.UPDATE_REPORT, r.UpdateReportQuery(update=update.update_id)
            )
            counts: r.StateCounts | None = report.update.counts
        except ApiFailure:
            counts = None  # reporting has not heard of it yet
        shown = {
            "id": update.update_id,
            "kb": update.kb,
            "title": update.title,
            "classification": update.classification,
            "products": [p.name for p in update.products],
            "severity": update.severity,
            "supersedes": update.supersedes,
            "superseded_by": update.superseded_by_kbs or update.superseded_by,
            "expired": update.expired,
            "declined": bool(view and view.declined),
            "offered": update.offered,
            "not_offered_because": update.not_offered_because,
            "states": states,
            "computers": counts.model_dump() if counts else None,
            "update": update.model_dump(mode="json"),
        }
        lines = [
            f"KB{update.kb or '-'}  {update.title}",
            (
                f"id {update.update_id} revision {update.revision}; {update.classification}, "
                f"severity {update.severity or '-'}, restart {update.restart}"
            ),
            f"state: {', '.join(states) or '-'}",
            "offered: yes"
            if update.offered
            else f"offered: no, {update.not_offered_because or 'outside the catalog settings'}",
            (
                f"supersedes: {', '.join(update.supersedes) or '-'}; superseded by: "
                f"{', '.join(update.superseded_by_kbs) or '-'}"
            ),
            f"computers: {counts.applies_to} apply, {counts.installed} installed, "
            f"{counts.needed} needed, {counts.failed} failed"
            if counts
            else "computers: no report yet",
        ]
        out.result(shown, "\n".join(lines))
        return 0

    return await with_api(settings, run)


async def cmd_computer_approvals(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(a.COMPUTER_APPROVALS, a.ComputerApprovals(computer=args.computer))
        lines = [
            f"{found.computer_id} ({found.hostname}) in {', '.join(g.name for g in found.groups)}"
        ]
        for item in found.approvals:
            line = f"KB{item.kb or '-':<8} {item.action:<18} {_deadline(item.deadline)}"
            line += f"  from {', '.join(item.from_groups)}"
            if item.conflict:
                line += f"  CONFLICT: {item.conflict}"
            lines.append(line)
        return found, "\n".join(lines)

    return await show(settings, out, produce)


def _rule_spec(args: argparse.Namespace) -> a.RuleSpec:
    return a.RuleSpec(
        name=args.name,
        description=args.description,
        products=args.product or [],
        classifications=args.classification or [],
        severities=args.severity or [],
        title_contains=args.title,
        groups=args.group or [],
        deadline=DEADLINES[args.deadline],
        rollout=rollout_commands.gate_of(args) if args.rollout else None,
    )


def _rule_text(rule: a.Rule) -> str:
    rollout = "" if rule.rollout is None else " rolled out in that order,"
    return (
        f"{rule.name}: {', '.join(rule.classifications)} of "
        f"{', '.join(rule.products) or 'every product'} -> {len(rule.group_ids)} group(s),"
        f"{rollout} deadline {rule.deadline}  {rule.rule_id}"
    )


async def cmd_rules(settings: Settings, out: Output, _: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(a.LIST_RULES, a.ListRules())
        return found, "\n".join(_rule_text(r) for r in found.rules) or "no rules"

    return await show(settings, out, produce)


async def cmd_rule_create(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        rule = await client.call(a.CREATE_RULE, a.CreateRule(rule=_rule_spec(args)))
        return rule, _rule_text(rule)

    return await show(settings, out, produce)


async def cmd_rule_edit(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        rule = await client.call(
            a.EDIT_RULE, a.EditRule(rule=args.rule, definition=_rule_spec(args))
        )
        return rule, _rule_text(rule)

    return await show(settings, out, produce)


async def cmd_rule_delete(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        deleted = await client.call(a.DELETE_RULE, a.RuleRef(rule=args.rule))
        return deleted, f"deleted rule {deleted.name} (its approvals stay)"

    return await show(settings, out, produce)


async def cmd_rule_run(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    dry_run: bool = args.dry_run

    async def produce(client: ApiClient) -> tuple[Contract, str]:
        ran = await client.call(a.RUN_RULE, a.RunRule(rule=args.rule, dry_run=dry_run))
        counts = f"{len(ran.updates_approved)} update(s), {ran.explicit_changed} approval(s)"
        if not dry_run:
            return ran, f"approved {counts}"
        lines = [f"KB{s.kb or '-':<8} {s.group_name:<24} {s.title}" for s in ran.approvals]
        if ran.approvals_truncated:
            lines.append(f"... the first {len(ran.approvals)} shown")
        return ran, "\n".join([*lines, f"dry run, nothing written: would approve {counts}"])

    return await show(settings, out, produce)


def _rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--description", default="")
    parser.add_argument("--product", action="append", help="product category (repeat)")
    parser.add_argument(
        "--classification", action="append", choices=CLASSIFICATIONS, help="(repeat; one needed)"
    )
    parser.add_argument(
        "--severity", action="append", choices=["Low", "Moderate", "Important", "Critical"]
    )
    parser.add_argument("--title", default=None, help="only titles containing this")
    parser.add_argument("--group", action="append", help="target group id or name (repeat)")
    parser.add_argument(
        "--deadline", choices=list(DEADLINES), default="none", help="none|asap|1w|2w|1m"
    )
    parser.add_argument(
        "--rollout",
        action="store_true",
        help="roll updates out over the groups in the order given, with the gate below",
    )
    rollout_commands.add_gate_options(parser)


if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


ACTIONS = {
    "required": "required_install",
    "not-install": "do_not_install",
    "available": "available_install",
    "uninstall": "uninstall",
    "inherit": "inherit",
}
DEADLINES = {
    "none": "none",
    "asap": "as_soon_as_possible",
    "1w": "one_week",
    "2w": "two_weeks",
    "1m": "one_month",
}


def deadline(text: str) -> a.DeadlineChoice:
    """none, asap, 1w, 2w, 1m, or an ISO 8601 date-time with its time zone."""
    if text in DEADLINES:
        return a.DeadlineChoice(kind=DEADLINES[text])
    try:
        return a.DeadlineChoice(kind="custom", at=_instant(text))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a deadline: none, asap, 1w, 2w, 1m or an ISO 8601 date-time "
            "with a time zone (e.g. 2026-12-01T18:00+01:00)"
        ) from None


def add_parsers(sub: Commands) -> Commands:
    """`groups`, `updates`, `rules` and `computers`; returns `computers`' subcommands, which
    other services' commands join."""
    _group_parsers(sub)
    _update_parsers(sub)
    _rule_parsers(sub)
    computer = sub.add_parser(
        "computers", help="managed computers: the fleet list, one computer's approvals and plan"
    )
    computers = computer.add_subparsers(dest="computer_command", required=True)
    resolved = computers.add_parser("approvals", help="what applies to it, resolved")
    resolved.add_argument("computer")
    resolved.set_defaults(handler=cmd_computer_approvals)
    return computers


def _group_parsers(sub: Commands) -> None:
    group = sub.add_parser("groups", help="computer groups and their members")
    groups = group.add_subparsers(dest="group_command", required=True)
    groups.add_parser("list", help="the group tree").set_defaults(handler=cmd_groups)
    create = groups.add_parser("create", help="create a group")
    create.add_argument("name")
    create.add_argument("--parent", default=a.ROOT_GROUP_NAME)
    create.set_defaults(handler=cmd_group_create)
    rename = groups.add_parser("rename", help="rename a group")
    rename.add_argument("group")
    rename.add_argument("name")
    rename.set_defaults(handler=cmd_group_rename)
    move = groups.add_parser("move", help="move a group under another parent")
    move.add_argument("group")
    move.add_argument("parent")
    move.set_defaults(handler=cmd_group_move)
    delete = groups.add_parser("delete", help="delete an empty group")
    delete.add_argument("group")
    delete.set_defaults(handler=cmd_group_delete)
    for name, member in (("add-computer", True), ("remove-computer", False)):
        change = groups.add_parser(name, help=f"{name.split('-')[0]} computers")
        change.add_argument("group")
        change.add_argument("computers", nargs="+")
        change.set_defaults(handler=cmd_group_members, member=member)
    approvals = groups.add_parser(
        "show", help="effective approvals: action, deadline, set here or inherited from where"
    )
    approvals.add_argument("group")
    approvals.set_defaults(handler=cmd_group_approvals)


def _update_parsers(sub: Commands) -> None:
    update = sub.add_parser(
        "updates",
        help="updates: list, show, approve, decline, pause, resume, rollback, edit, delete",
    )
    updates = update.add_subparsers(dest="updates_command", required=True)
    listing = updates.add_parser("list", help="updates with their approval state")
    listing.add_argument(
        "--filter",
        dest="state",
        action="append",
        choices=[*(s.replace("_", "-") for s in a.UPDATE_STATES), "failed"],
        help="(repeat) default: every update neither declined nor not-offered (outside the "
        "catalog settings)",
    )
    listing.add_argument("--search", default=None, help="in title or KB")
    listing.add_argument("--classification", choices=CLASSIFICATIONS, default=None)
    listing.add_argument("--product", default=None, help="product category")
    listing.add_argument("--limit", type=int, default=10_000)
    listing.set_defaults(handler=cmd_updates)

    shown = updates.add_parser("show", help="properties, supersession, computers it applies to")
    shown.add_argument("update", help="KB number or update id")
    shown.set_defaults(handler=cmd_update_show)

    approve = updates.add_parser("approve", help="approve updates for groups")
    approve.add_argument("updates", nargs="+", help="KB numbers or update ids")
    approve.add_argument("--group", action="append", required=True, help="group (repeat)")
    approve.add_argument("--action", choices=list(ACTIONS), default="required")
    approve.add_argument(
        "--deadline", type=deadline, default=a.DeadlineChoice(), help="none|asap|1w|2w|1m|ISO-8601"
    )
    approve.set_defaults(handler=cmd_approve)

    decline = updates.add_parser("decline", help="decline updates (removes their approvals)")
    decline.add_argument("updates", nargs="+", help="KB numbers or update ids")
    decline.set_defaults(handler=cmd_decline)
    control_commands.add_parsers(updates, deadline)
    upload_commands.add_edit_parsers(updates)


def _rule_parsers(sub: Commands) -> None:
    rule = sub.add_parser("rules", help="auto-approval rules")
    rules = rule.add_subparsers(dest="rule_command", required=True)
    rules.add_parser("list", help="every rule").set_defaults(handler=cmd_rules)
    create_rule = rules.add_parser("create", help="create a rule (new updates only until run)")
    create_rule.add_argument("name")
    _rule_options(create_rule)
    create_rule.set_defaults(handler=cmd_rule_create)
    edit = rules.add_parser("edit", help="replace a rule's definition")
    edit.add_argument("rule", help="rule id or current name")
    edit.add_argument("--name", required=True)
    _rule_options(edit)
    edit.set_defaults(handler=cmd_rule_edit)
    for name, handler, text in (
        ("delete", cmd_rule_delete, "delete a rule (approvals stay)"),
        ("run", cmd_rule_run, "apply a rule to the updates already known"),
    ):
        command = rules.add_parser(name, help=text)
        command.add_argument("rule", help="rule id or name")
        if name == "run":
            command.add_argument(
                "--dry-run",
                action="store_true",
                help="only list what it would approve; write nothing",
            )
        command.set_defaults(handler=handler)
