"""`lockgate broker ...`: least-privilege RabbitMQ definitions, generated from the code.

`lockgate broker definitions` writes deploy/rabbitmq/definitions.json (vhost, exchanges, a
passwordless user per service and the console, their permissions); `--check` fails when
the committed file drifts. `lockgate broker agents ID...` prints the definitions that
enrol agents. Both are imported with `rabbitmqctl import_definitions FILE` (it merges).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from libs.bus.definitions import (
    DEFAULT_USER_PREFIX,
    DEFAULT_VHOST,
    agent_definitions,
    definitions,
    render,
    service_users,
    with_passwords,
)
from libs.settings import SERVICE_NAMES, Settings
from services.cli.common import Output
from services.cli.service_registry import definition

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_DRIFT = 2
EXIT_REFUSED = 1
COMMITTED = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.json"
PASSWORD_ENV = "LOCKGATE_BROKER_PASSWORD_"  # noqa: S105 - names variables, holds no password
"""`--passwords-from-env` reads LOCKGATE_BROKER_PASSWORD_<NAME> (CATALOG, ..., CONSOLE)."""


def document(
    vhost: str = DEFAULT_VHOST, user_prefix: str = DEFAULT_USER_PREFIX
) -> dict[str, object]:
    """The definitions of every service and client, read from their handler tables (the JSON
    document RabbitMQ imports)."""
    return definitions(
        [definition(service) for service in SERVICE_NAMES], vhost=vhost, user_prefix=user_prefix
    )


def generated(vhost: str = DEFAULT_VHOST, user_prefix: str = DEFAULT_USER_PREFIX) -> str:
    """The committed text: no password (every user must be given one before it can log in)."""
    return render(document(vhost, user_prefix))


def _passwords_from_env(user_prefix: str) -> tuple[dict[str, str], list[str]]:
    passwords: dict[str, str] = {}
    missing: list[str] = []
    for name, user in service_users(SERVICE_NAMES, user_prefix=user_prefix).items():
        variable = PASSWORD_ENV + name.upper()
        value = os.environ.get(variable, "")
        if value:
            passwords[user] = value
        else:
            missing.append(variable)
    return passwords, missing


def _is_committed(output: str) -> bool:
    return output != "-" and Path(output).resolve() == COMMITTED


def _read_or_empty(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def _emit(out: Output, text: str, output: str, summary: Mapping[str, object]) -> int:
    if output == "-":
        sys.stdout.write(text)
        return 0
    path = Path(output)
    await asyncio.to_thread(_write, path, text)
    out.result({**summary, "path": str(path), "written": True}, f"wrote {path}")
    return 0


async def cmd_definitions(_: Settings, out: Output, args: argparse.Namespace) -> int:
    text = generated(args.vhost, args.user_prefix)
    if args.check:
        path = Path(args.output)
        current = await asyncio.to_thread(_read_or_empty, path)
        if current != text:
            out.error(
                f"{path} is out of date with the services' handler tables: "
                "run `lockgate broker definitions`"
            )
            return EXIT_DRIFT
        out.result({"path": str(path), "up_to_date": True}, f"{path} is up to date")
        return 0
    if args.passwords_from_env:
        if _is_committed(args.output):
            out.error(
                f"{COMMITTED} is committed: write definitions with password hashes "
                "elsewhere (--output FILE or -), e.g. into a secret"
            )
            return EXIT_REFUSED
        passwords, missing = _passwords_from_env(args.user_prefix)
        if missing:
            out.error(f"--passwords-from-env: set {', '.join(missing)}")
            return EXIT_REFUSED
        text = render(with_passwords(document(args.vhost, args.user_prefix), passwords))
    return await _emit(out, text, args.output, {"vhost": args.vhost})


async def cmd_agents(_: Settings, out: Output, args: argparse.Namespace) -> int:
    reserved = service_users(SERVICE_NAMES, user_prefix=args.user_prefix).values()
    try:
        enrolment = agent_definitions(args.computer_ids, vhost=args.vhost, reserved=reserved)
    except ValueError as error:
        out.error(str(error))
        return EXIT_REFUSED
    return await _emit(
        out, render(enrolment), args.output, {"vhost": args.vhost, "agents": args.computer_ids}
    )


def add_parsers(sub: Commands) -> None:
    broker = sub.add_parser("broker", help="RabbitMQ definitions: users and permissions")
    commands = broker.add_subparsers(dest="broker_command", required=True)

    made = commands.add_parser(
        "definitions",
        help="write (or --check) the vhost, exchanges, service users and their permissions",
    )
    made.add_argument("--vhost", default=DEFAULT_VHOST)
    made.add_argument("--user-prefix", default=DEFAULT_USER_PREFIX, help="user = PREFIX<service>")
    made.add_argument("--output", default="deploy/rabbitmq/definitions.json", help="FILE or -")
    made.add_argument("--check", action="store_true", help="fail if the file differs")
    made.add_argument(
        "--passwords-from-env",
        action="store_true",
        help=f"include password hashes of {PASSWORD_ENV}<SERVICE> (CATALOG, APPROVAL, "
        "SCHEDULER, REPORTING, CONSOLE); for a deploy-time file, never the committed one",
    )
    made.set_defaults(handler=cmd_definitions)

    agents = commands.add_parser(
        "agents",
        help="definitions enrolling agents: user = computer id, its queue agent.<id>",
    )
    agents.add_argument("computer_ids", nargs="+", metavar="COMPUTER_ID")
    agents.add_argument("--vhost", default=DEFAULT_VHOST)
    agents.add_argument(
        "--user-prefix", default=DEFAULT_USER_PREFIX, help="of the service users (never agents)"
    )
    agents.add_argument("--output", default="-", help="FILE, or - for standard output")
    agents.set_defaults(handler=cmd_agents)
