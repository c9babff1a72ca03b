"""What every `lockgate` command shares: output (text or --json) and an RPC connection."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from libs.bus import Bus, RpcClient
from libs.settings import Settings

EXIT_FAILED = 1


class Output:
    """Prints results as text, or as one JSON document with `--json`."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, text: str) -> None:  # noqa: ANN401 - any JSON-able value
        if self.as_json:
            print(json.dumps(_plain(data), indent=2, default=str))
        else:
            print(text)

    def error(self, message: str) -> None:
        if self.as_json:
            print(json.dumps({"error": message}), file=sys.stderr)
        else:
            print(f"lockgate: {message}", file=sys.stderr)


def _plain(data: Any) -> Any:  # noqa: ANN401 - converts any model tree to JSON-able values
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
    produce: Callable[[RpcClient], Awaitable[tuple[BaseModel, str]]],
) -> int:
    """Call over RPC and print what `produce` returns: (result for --json, text)."""

    async def run(client: RpcClient) -> int:
        result, text = await produce(client)
        out.result(result, text)
        return 0

    return await with_rpc(settings, run)


async def with_rpc(settings: Settings, call: Callable[[RpcClient], Awaitable[int]]) -> int:
    bus = await Bus.connect(settings.amqp_url, name="lockgate-cli")
    try:
        client = RpcClient(bus, source="lockgate/cli", timeout=settings.rpc_timeout_seconds)
        await client.start()
        return await call(client)
    finally:
        await bus.close()
