"""What every `lockgate` command shares: output (text or --json) and an RPC connection."""

from __future__ import annotations

import json
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping

import httpx
from pydantic import BaseModel

from libs.bus import Bus, RpcClient
from libs.contracts.api import FILLED_BY_CONSOLE, PREFIX, route_for
from libs.contracts.spec import CommandSpec, Rep, Req
from libs.settings import Settings

EXIT_FAILED = 1


class Output:
    """Prints results as text, or as one JSON document with `--json`."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: object, text: str) -> None:
        """`data` is what --json prints: a model, or lists and dicts of models and JSON values."""
        if self.as_json:
            print(json.dumps(_plain(data), indent=2, default=str))
        else:
            print(text)

    def error(self, message: str) -> None:
        if self.as_json:
            print(json.dumps({"error": message}), file=sys.stderr)
        else:
            print(f"lockgate: {message}", file=sys.stderr)


def _plain(data: object) -> object:
    """JSON-able values for a tree of models, lists and dicts."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_plain(item) for item in data]
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    return data


async def show(
    settings: Settings,
    out: Output,
    produce: Callable[[ApiClient], Awaitable[tuple[BaseModel, str]]],
) -> int:
    """Call the API and print what `produce` returns: (result for --json, text)."""

    async def run(client: ApiClient) -> int:
        result, text = await produce(client)
        out.result(result, text)
        return 0

    return await with_api(settings, run)


class Progress:
    """A one-line progress bar on stderr (not with --json, whose output scripts read)."""

    def __init__(self, label: str, total: int, *, enabled: bool) -> None:
        self.label, self.total, self.enabled, self.done = label, max(total, 1), enabled, 0

    def advance(self, amount: int) -> None:
        self.done += amount
        if self.enabled:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            print(
                f"\r{self.label} [{bar:<30}] {share:4.0%} ({self.done} of {self.total} bytes)",
                end="" if share < 1 else "\n",
                file=sys.stderr,
                flush=True,
            )


class ApiFailure(Exception):
    """The console answered an error (problem details) or could not be reached."""


class ApiClient:
    """Sends commands through the console's HTTP API, by the routes of libs/contracts/api.py."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def call(
        self, spec: CommandSpec[Req, Rep], request: Req, *, timeout: float | None = None
    ) -> Rep:
        route = route_for(spec)
        limit: float | httpx.USE_CLIENT_DEFAULT = (  # type: ignore[valid-type]
            httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        )
        data = request.model_dump(mode="json")
        for name in FILLED_BY_CONSOLE:  # the console sets these from the caller
            data.pop(name, None)
        path = route.path.format(
            **{f: urllib.parse.quote(str(data.pop(f)), safe="") for f in route.path_fields}
        )
        if route.method in ("GET", "DELETE"):
            response = await self._http.request(
                route.method, PREFIX + path, params=_query(data), timeout=limit
            )
        else:
            response = await self._http.request(
                route.method, PREFIX + path, json=data, timeout=limit
            )
        if response.status_code >= 400:
            raise ApiFailure(problem_text(response))
        return spec.reply.model_validate_json(response.content)


def _query(data: Mapping[str, object]) -> list[tuple[str, str | int | float | bool | None]]:
    """Query parameters: nested models flattened, lists repeated, nulls left out."""
    found: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in data.items():
        if isinstance(value, dict):
            found += _query(value)
        elif isinstance(value, list):
            found += [(name, str(item)) for item in value]
        elif isinstance(value, bool):
            found.append((name, "true" if value else "false"))
        elif value is not None:
            found.append((name, str(value)))
    return found


def problem_text(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    detail = problem.get("detail", problem)
    title = problem.get("title", "")
    return f"HTTP {response.status_code} {title}: {detail}".replace("  ", " ")


async def with_api(settings: Settings, call: Callable[[ApiClient], Awaitable[int]]) -> int:
    """Run `call` with a client of the console at LOCKGATE_URL, with LOCKGATE_TOKEN."""
    token = settings.token.get_secret_value() if settings.token else ""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(
            base_url=settings.url, headers=headers, timeout=settings.rpc_timeout_seconds + 5
        ) as http:
            return await call(ApiClient(http))
    except httpx.TransportError as error:
        raise ApiFailure(
            f"cannot reach the console at {settings.url} ({type(error).__name__}); "
            "is it running (python -m services.console) and is LOCKGATE_URL right?"
        ) from None


async def with_rpc(settings: Settings, call: Callable[[RpcClient], Awaitable[int]]) -> int:
    """Diagnostics only (`lockgate ping`): straight to the services over RabbitMQ."""
    bus = await Bus.connect(settings.amqp_url, name="lockgate-cli")
    try:
        client = RpcClient(bus, source="lockgate/cli", timeout=settings.rpc_timeout_seconds)
        await client.start()
        return await call(client)
    finally:
        await bus.close()
