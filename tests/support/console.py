"""The console API served in the test's event loop on a free port, with a known admin token."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from pydantic import SecretStr

from libs.settings import Settings
from services.console.app import create_app
from tests.support.processes import free_port


@dataclass(frozen=True)
class ConsoleUnderTest:
    url: str
    admin_token: str

    def cli_env(self, base: dict[str, str], token: str | None = None) -> dict[str, str]:
        """Environment for `lockgate` pointed at this console."""
        return {**base, "LOCKGATE_URL": self.url, "LOCKGATE_TOKEN": token or self.admin_token}


@asynccontextmanager
async def running_console(
    settings: Settings, *, dead_letter_keeper: bool = False
) -> AsyncIterator[ConsoleUnderTest]:
    """The console; its dead-letter keeper only when asked, since most tests read the
    dead-letter queues themselves."""
    token = "lg_test_" + secrets.token_urlsafe(12)
    port = free_port()
    app = create_app(
        settings.model_copy(
            update={
                "bootstrap_token": SecretStr(token),
                "console_port": port,
                "dead_letter_keeper": dead_letter_keeper,
            }
        )
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.05)
    try:
        yield ConsoleUnderTest(f"http://127.0.0.1:{port}", token)
    finally:
        server.should_exit = True
        await task
