"""`lockgate policies|agent-releases ...` and `lockgate computer plan`: the scheduler's side."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from libs.contracts import agents as ag
from libs.contracts import policies as p
from libs.contracts.spec import Contract
from libs.settings import Settings
from services.cli import window_commands
from services.cli.common import ApiClient, Output, show

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def setting(text: str) -> tuple[str, object]:
    """`key=value`; the value is read as JSON (true, 12, {...}) or else kept as text (03:00)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not key=value (e.g. restart_delay_minutes=20)"
        )
    if key not in p.PolicySettings.model_fields:
        raise argparse.ArgumentTypeError(
            f"{key!r} is not a policy setting; settings: {', '.join(p.PolicySettings.model_fields)}"
        )
    try:
        value: object = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _policy_text(policy: p.Policy) -> str:
    changed = {
        k: v
        for k, v in policy.settings.model_dump(mode="json").items()
        if v != p.RECOMMENDED.model_dump(mode="json")[k]
    }
    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in changed.items()) or "recommended values"
    return f"{policy.name}: {shown}; {len(policy.groups)} group(s)  {policy.policy_id}"


async def cmd_list(settings: Settings, out: Output, _: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(p.LIST_POLICIES, p.ListPolicies())
        return found, "\n".join(_policy_text(x) for x in found.policies) or "no policies"

    return await show(settings, out, produce)


async def cmd_create(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    request = p.CreatePolicy(
        name=args.name, settings=p.PolicySettings.model_validate(dict(args.set or []))
    )

    async def produce(client: ApiClient) -> tuple[Contract, str]:
        policy = await client.call(p.CREATE_POLICY, request)
        return policy, _policy_text(policy)

    return await show(settings, out, produce)


async def cmd_edit(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        policy = await client.call(
            p.EDIT_POLICY, p.EditPolicy(policy=args.policy, settings=dict(args.set))
        )
        return policy, _policy_text(policy)

    return await show(settings, out, produce)


async def cmd_delete(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        deleted = await client.call(p.DELETE_POLICY, p.PolicyRef(policy=args.policy))
        return deleted, f"deleted policy {deleted.name}"

    return await show(settings, out, produce)


async def cmd_assign(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        policy = await client.call(
            p.ASSIGN_POLICY, p.AssignPolicy(policy=args.policy, group=args.group)
        )
        return policy, _policy_text(policy)

    return await show(settings, out, produce)


async def cmd_unassign(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(p.UNASSIGN_POLICY, p.UnassignPolicy(group=args.group))
        return found, f"{args.group} has no policy of its own now"

    return await show(settings, out, produce)


async def cmd_plan(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        plan = await client.call(ag.GET_PLAN, ag.GetPlan(computer=args.computer))
        lines = [
            f"{plan.computer_id}: policy {plan.policy_name}"
            + (f" (conflict: {plan.policy_conflict})" if plan.policy_conflict else ""),
            f"next window: {plan.next_window or '-'} ({plan.timezone})",
        ]
        if plan.maintenance_windows:
            shown = "; ".join(window.text() for window in plan.maintenance_windows)
            lines.append(f"maintenance windows: {shown}")
        lines += [
            f"KB{i.kb or '-':<8} {i.action:<18} {i.state:<14} install at {i.install_at or '-'}"
            f"  deadline {i.deadline or '-'}"
            for i in plan.items
        ]
        if plan.agent_update is not None:
            lines.append(
                f"agent update to {plan.agent_update.version} at {plan.agent_update.install_at}"
            )
        return plan, "\n".join(lines)

    return await show(settings, out, produce)


def _release_text(release: p.AgentRelease) -> str:
    kind = "mandatory" if release.mandatory else "optional"
    return f"{release.version:<12} {kind:<10} {release.published_at:%Y-%m-%d %H:%M} {release.notes}"


async def cmd_releases(settings: Settings, out: Output, _: argparse.Namespace) -> int:
    async def produce(client: ApiClient) -> tuple[Contract, str]:
        found = await client.call(p.LIST_AGENT_RELEASES, p.ListAgentReleases())
        lines = [_release_text(r) for r in found.releases] or ["no agent releases"]
        return found, "\n".join(lines)

    return await show(settings, out, produce)


async def cmd_publish(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    request = p.PublishAgentRelease(
        version=args.version, mandatory=not args.optional, notes=args.notes
    )

    async def produce(client: ApiClient) -> tuple[Contract, str]:
        release = await client.call(p.PUBLISH_AGENT_RELEASE, request)
        return release, "published " + _release_text(release)

    return await show(settings, out, produce)


def add_parsers(sub: Commands, computer: Commands) -> None:
    """`lockgate policy ...`, and `plan` under `lockgate computer`."""
    policy = sub.add_parser("policies", help="agent update policies")
    commands = policy.add_subparsers(dest="policy_command", required=True)
    commands.add_parser("list", help="every policy").set_defaults(handler=cmd_list)
    create = commands.add_parser("create", help="create a policy (unset = recommended)")
    create.add_argument("name")
    create.add_argument("--set", type=setting, action="append", metavar="KEY=VALUE")
    create.set_defaults(handler=cmd_create)
    edit = commands.add_parser("edit", help="change settings of a policy")
    edit.add_argument("policy")
    edit.add_argument("--set", type=setting, action="append", required=True, metavar="KEY=VALUE")
    edit.set_defaults(handler=cmd_edit)
    delete = commands.add_parser("delete", help="delete a policy")
    delete.add_argument("policy")
    delete.set_defaults(handler=cmd_delete)
    assign = commands.add_parser("assign", help="assign a policy to a group")
    assign.add_argument("policy")
    assign.add_argument("--group", required=True)
    assign.set_defaults(handler=cmd_assign)
    unassign = commands.add_parser("unassign", help="remove a group's policy")
    unassign.add_argument("group")
    unassign.set_defaults(handler=cmd_unassign)

    releases = sub.add_parser("agent-releases", help="agent versions; mandatory ones install")
    release_commands = releases.add_subparsers(dest="release_command", required=True)
    release_commands.add_parser("list", help="every release, newest first").set_defaults(
        handler=cmd_releases
    )
    publish = release_commands.add_parser(
        "publish", help="publish a version; outdated computers install it per their policy"
    )
    publish.add_argument("version", help="major.minor.patch, newer than every release")
    publish.add_argument("--optional", action="store_true", help="not mandatory")
    publish.add_argument("--notes", default="", help="what changed")
    publish.set_defaults(handler=cmd_publish)

    window_commands.add_parsers(sub)

    plan = computer.add_parser("plan", help="its plan: policy, windows, what installs when")
    plan.add_argument("computer")
    plan.set_defaults(handler=cmd_plan)
