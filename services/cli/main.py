"""`lockgate`: database setup, migrations, AsyncAPI export, ping and status over the bus."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TypeVar, cast

from pydantic import ValidationError

from libs.bus import RpcClient, RpcError, RpcTimeout, ServiceUnavailable
from libs.bus.codec import describe_validation_error
from libs.contracts import REGISTRY
from libs.contracts.asyncapi import build, render
from libs.contracts.reporting import LIST_SERVICE_INSTANCES, ListServiceInstances
from libs.contracts.system import PING, Ping
from libs.db.migrations import migrate
from libs.db.pool import ensure_database
from libs.observability.logging import configure_logging
from libs.service.runner import lockgate_version
from libs.service.transient import keep_trying
from libs.settings import SERVICE_NAMES, ServiceName, Settings
from services.cli import (
    approval_commands,
    broker_commands,
    catalog_commands,
    demo,
    dlq_commands,
    fleet_commands,
    policy_commands,
    report_commands,
    rollout_commands,
    sim_commands,
    token_commands,
    upload_commands,
)
from services.cli.common import EXIT_FAILED, ApiClient, ApiFailure, Output, with_api, with_rpc
from services.cli.service_registry import definition, subscriptions

T = TypeVar("T")
WAIT_HELP = "seconds to wait for a database that does not answer yet (default 60)"

EXIT_DRIFT = 2
MSRC_DIR = Path(__file__).resolve().parents[2] / "data" / "msrc"


def _services(choice: str) -> list[ServiceName]:
    return list(SERVICE_NAMES) if choice == "all" else [choice]  # type: ignore[list-item]  # argparse choices


async def _when_the_database_answers(
    settings: Settings, step: Callable[[], Awaitable[T]], seconds: float
) -> T:
    """`step`, tried again while the database does not answer yet (a server still starting),
    for up to `seconds`; any other failure at once. Waiting is said on stderr, so stdout
    keeps only the command's result (`--json` stays parseable)."""
    configure_logging("cli", "warning")
    given_up = asyncio.Event()
    timer = asyncio.get_running_loop().call_later(seconds, given_up.set)
    try:
        done = await keep_trying(step, what="database", stopping=given_up)
    finally:
        timer.cancel()
    if given_up.is_set():
        raise SystemExit(
            f"lockgate: the database at {settings.database_url.split('@')[-1]} did not answer "
            f"within {seconds:g} s (--wait)"
        )
    return cast(T, done)


async def cmd_db_create(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    created = await _when_the_database_answers(
        settings, lambda: ensure_database(settings.database_url), args.wait
    )
    out.result({"created": created}, "database created" if created else "database exists")
    return 0


async def cmd_migrate(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    await _when_the_database_answers(
        settings, lambda: ensure_database(settings.database_url), args.wait
    )
    applied: dict[str, list[str]] = {}
    for service in _services(args.service):
        found = definition(service)
        applied[service] = await migrate(
            settings.database_url, service, found.migrations, found.mounted_migrations
        )
    lines = [f"{svc}: {', '.join(keys) or 'up to date'}" for svc, keys in applied.items()]
    out.result(applied, "\n".join(lines))
    return 0


def _read_or_empty(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def cmd_asyncapi(_: Settings, out: Output, args: argparse.Namespace) -> int:
    text = render(build(REGISTRY, subscriptions(), lockgate_version()))
    path = Path(args.output)
    if args.check:
        current = await asyncio.to_thread(_read_or_empty, path)
        if current != text:
            out.error(f"{path} is out of date with libs/contracts: run `make asyncapi`")
            return EXIT_DRIFT
        out.result({"path": str(path), "up_to_date": True}, f"{path} is up to date")
        return 0
    await asyncio.to_thread(_write, path, text)
    out.result({"path": str(path), "written": True}, f"wrote {path}")
    return 0


async def cmd_ping(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def run(client: RpcClient) -> int:
        results: dict[str, dict[str, object]] = {}
        failed = False
        for service in _services(args.service):
            started = time.perf_counter()
            try:
                pong = await client.call(PING[service], Ping(echo=args.echo))
                results[service] = {
                    **pong.model_dump(mode="json"),
                    "round_trip_ms": round((time.perf_counter() - started) * 1000, 1),
                }
            except (RpcError, RpcTimeout, ServiceUnavailable) as error:
                results[service] = {"error": str(error)}
                failed = True
        lines = [
            f"{svc:<10} "
            + (
                f"error: {r['error']}"
                if "error" in r
                else f"ok  {r['instance_id']}  {r['round_trip_ms']} ms"
            )
            for svc, r in results.items()
        ]
        out.result(results, "\n".join(lines))
        return EXIT_FAILED if failed else 0

    return await with_rpc(settings, run)


async def cmd_status(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def run(client: ApiClient) -> int:
        reply = await client.call(
            LIST_SERVICE_INSTANCES,
            ListServiceInstances(service=args.service, include_stale=args.all),
        )
        lines = [f"{'service':<10} {'instance':<40} {'state':<6} {'heartbeats':>10}  last seen"]
        lines += [
            f"{i.service:<10} {i.instance_id:<40} {'alive' if i.alive else 'stale':<6} "
            f"{i.heartbeats_total:>10}  {i.last_seen.isoformat(timespec='seconds')}"
            for i in reply.instances
        ]
        out.result(reply.instances, "\n".join(lines))
        return 0

    return await with_api(settings, run)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def cmd_wait_ready(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    services = _services(args.service)
    status: dict[str, bool] = {}
    while True:
        status = {
            s: _ready(f"http://{settings.http_host}:{settings.http_port(s)}/readyz")
            for s in services
        }
        if args.service == "all":
            status["console"] = _ready(f"{settings.url}/readyz")
        if all(status.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    ok = all(status.values())
    out.result(
        status, "\n".join(f"{s:<10} {'ready' if r else 'NOT ready'}" for s, r in status.items())
    )
    return 0 if ok else EXIT_FAILED


async def cmd_demo(settings: Settings, out: Output, _: argparse.Namespace) -> int:
    """What `make run` shows: services ready, answering pings, heartbeats reaching reporting."""
    if await cmd_wait_ready(settings, out, argparse.Namespace(service="all", timeout=60)):
        return EXIT_FAILED
    if await cmd_ping(settings, out, argparse.Namespace(service="all", echo="hello")):
        return EXIT_FAILED

    async def run(client: ApiClient) -> int:
        # Heartbeats sent before reporting's queue existed are gone; wait for fresh ones.
        deadline = time.monotonic() + 3 * settings.heartbeat_seconds
        while time.monotonic() < deadline:
            reply = await client.call(LIST_SERVICE_INSTANCES, ListServiceInstances())
            if {i.service for i in reply.instances} >= set(SERVICE_NAMES):
                break
            await asyncio.sleep(1.0)
        return 0

    await with_api(settings, run)
    if await cmd_status(settings, out, argparse.Namespace(service=None, all=False)):
        return EXIT_FAILED
    for month in ("Jan", "Feb"):  # in release order
        for document in sorted(MSRC_DIR.glob(f"cvrf-*-{month}.xml")):
            args = argparse.Namespace(location=str(document), json=out.as_json)
            if await catalog_commands.cmd_import_msrc(settings, out, args):
                return EXIT_FAILED
    return await demo.show_fleet(settings, out)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="lockgate", description=__doc__)
    root.add_argument("--json", action="store_true", help="print results as JSON")
    sub = root.add_subparsers(dest="command", required=True)
    service_choices = ["all", *SERVICE_NAMES]

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    create = db_sub.add_parser(
        "create", help="create the database of LOCKGATE_DATABASE_URL if missing"
    )
    create.add_argument("--wait", type=float, default=60.0, help=WAIT_HELP)
    db.set_defaults(handler=cmd_db_create, wait=60.0)

    mig = sub.add_parser("migrate", help="apply pending migrations of one or every service")
    mig.add_argument("--service", choices=service_choices, default="all")
    mig.add_argument("--wait", type=float, default=60.0, help=WAIT_HELP)
    mig.set_defaults(handler=cmd_migrate)

    api = sub.add_parser("asyncapi", help="write (or --check) the AsyncAPI document")
    api.add_argument("--output", default="docs/asyncapi.yaml")
    api.add_argument("--check", action="store_true", help="fail if the file differs")
    api.set_defaults(handler=cmd_asyncapi)

    ping = sub.add_parser("ping", help="ping services over RabbitMQ RPC")
    ping.add_argument("service", nargs="?", choices=service_choices, default="all")
    ping.add_argument("--echo", default=None)
    ping.set_defaults(handler=cmd_ping)

    status = sub.add_parser("status", help="service instances reporting has heard from")
    status.add_argument("--service", choices=SERVICE_NAMES, default=None)
    status.add_argument("--all", action="store_true", help="include stale instances")
    status.set_defaults(handler=cmd_status)

    ready = sub.add_parser("wait-ready", help="wait until services answer /readyz with 200")
    ready.add_argument("service", nargs="?", choices=service_choices, default="all")
    ready.add_argument("--timeout", type=float, default=60.0)
    ready.set_defaults(handler=cmd_wait_ready)

    catalog_commands.add_parser(sub)
    computers = approval_commands.add_parsers(sub)
    policy_commands.add_parsers(sub, computers)
    fleet_commands.add_parsers(computers)
    report_commands.add_parsers(sub)
    rollout_commands.add_parsers(sub)
    upload_commands.add_upload_parser(sub)
    token_commands.add_parsers(sub)
    sim_commands.add_parsers(sub)
    broker_commands.add_parsers(sub)
    dlq_commands.add_parsers(sub)

    demo = sub.add_parser("demo", help="show the running system working (used by make run)")
    demo.set_defaults(handler=cmd_demo)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = Output(args.json)
    settings = Settings()
    handler: Callable[[Settings, Output, argparse.Namespace], Coroutine[object, object, int]] = (
        args.handler
    )
    try:
        return asyncio.run(handler(settings, out, args))
    except (ApiFailure, RpcError, RpcTimeout, ServiceUnavailable, OSError) as error:
        out.error(str(error))
        return EXIT_FAILED
    except ValidationError as error:  # refused before sending: say which option and why
        out.error(describe_validation_error(error, args.command))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
