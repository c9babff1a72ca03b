"""The whole system as processes for end-to-end tests: the four services and the console on
one fresh database, a shared fast clock, and the console's address signed into content URLs;
plus the operator's moves those tests repeat (uploading an installer)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from libs.contracts.api import PREFIX
from libs.contracts.names import dead_letter_queue_name
from libs.db.pool import drop_database
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.infra import Infra
from tests.support.processes import ServiceRunner

SERVICES = ("catalog", "approval", "scheduler", "reporting")


@dataclass(frozen=True)
class System:
    """The running system, as the operator (HTTP) and a test reading its database see it."""

    http: httpx.AsyncClient
    database_url: str
    console_url: str
    service_urls: dict[str, str] = field(default_factory=dict)
    """Each service's own HTTP address (its /metrics, /readyz), by service name."""
    runners: dict[str, ServiceRunner] = field(default_factory=dict)
    """Each service's process, by service name (console included): fault tests kill -9 one
    and start it again on the same port and settings."""

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """An API call that must succeed; its JSON body."""
        response = await self.http.request(method, PREFIX + path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json()

    async def refused(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An API call that must be refused (4xx); the response, to read why."""
        response = await self.http.request(method, PREFIX + path, **kwargs)
        assert 400 <= response.status_code < 500, (
            f"{method} {path} should be refused: {response.status_code} {response.text}"
        )
        return response

    async def upload(self, installer: Path, steps: dict[str, dict[str, Any]]) -> Any:
        """Upload one installer, answer each step (`requirements`, `description`, ...: the
        route under /uploads/<id>/ and its body), commit; the update it became."""
        data = await asyncio.to_thread(installer.read_bytes)
        session = await self.ok(
            "POST", "/uploads", json={"installer": {"path": installer.name, "size": len(data)}}
        )
        upload = session["upload_id"]
        await self.ok(
            "POST",
            f"/uploads/{upload}/chunks",
            json={"path": installer.name, "offset": 0, "data_b64": base64.b64encode(data).decode()},
        )
        for step, body in steps.items():
            await self.ok("PUT", f"/uploads/{upload}/{step}", json=body)
        return (await self.ok("POST", f"/uploads/{upload}/commit"))["update"]


@asynccontextmanager
async def running_system(
    infra: Infra,
    log_dir: Path,
    content_dir: Path,
    *,
    epoch: datetime,
    speed: float,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    port: Callable[[], int] | None = None,
) -> AsyncIterator[System]:
    """Start every service and the console; stop them, delete the services' queues (so later
    tests' messages do not pile up in them) and drop the database at the end.

    `database_url` runs the system on that database instead of a fresh one beside the
    session's (a private cluster's multi-host URL, say); the caller then owns and drops it.
    `extra_env` adds or overrides settings of every process. `port` picks each process's HTTP
    port instead of the kernel: a test that restarts processes picks ports the kernel never
    hands out, so no other process takes one while it is down."""
    database = database_url or f"{infra.database_url}_e2e{secrets.token_hex(3)}"
    token = "lg_e2e_" + secrets.token_urlsafe(12)
    env = {
        "LOCKGATE_CLOCK_SPEED": str(speed),
        "LOCKGATE_CLOCK_EPOCH": epoch.isoformat(),
        "LOCKGATE_TIMER_POLL_SECONDS": "0.2",
        "LOCKGATE_PLANNER_POLL_SECONDS": "0.2",
        "LOCKGATE_COMPLIANCE_PUBLISH_SECONDS": "0.5",
        "LOCKGATE_HEARTBEAT_SECONDS": "60",
        "LOCKGATE_BOOTSTRAP_TOKEN": token,
        "LOCKGATE_CONTENT_DIR": str(content_dir),
        "LOCKGATE_DATABASE_URL": database,
        # Tests read the dead-letter queues themselves (tests/integration/test_dead_letters.py
        # covers the console's keeper).
        "LOCKGATE_DEAD_LETTER_KEEPER": "false",
        **(extra_env or {}),
    }
    console = _on_port(ServiceRunner("console", infra, log_dir, **env), port)
    # Plans sign content URLs for the console the agents download from.
    console_url = f"http://127.0.0.1:{console.port}"
    console.env["LOCKGATE_CONTENT_URL"] = env["LOCKGATE_CONTENT_URL"] = console_url
    runners = [
        *(_on_port(ServiceRunner(name, infra, log_dir, **env), port).start() for name in SERVICES),
        console.start(),
    ]
    try:
        for runner in runners:
            await runner.wait_ready(60)
        async with httpx.AsyncClient(
            base_url=console_url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as http:
            yield System(
                http,
                database,
                console_url,
                {r.service: f"http://127.0.0.1:{r.port}" for r in runners},
                {r.service: r for r in runners},
            )
    finally:
        # Off the event loop and side by side: a blocking wait here would freeze anything the
        # test serves from this loop (a TcpProxy in front of the broker: the services' last
        # frames would go unanswered until their shutdown deadline), and five graceful stops
        # in turn add up.
        await asyncio.gather(*(asyncio.to_thread(runner.stop_quietly) for runner in runners))
        try:
            await _delete_queues(infra)
        finally:
            if database_url is None:
                await drop_database(database)


def _on_port(runner: ServiceRunner, port: Callable[[], int] | None) -> ServiceRunner:
    """The runner moved to a port of `port`'s choosing (unchanged when None)."""
    if port is not None:
        service = runner.service.upper()
        setting = (
            "LOCKGATE_CONSOLE_PORT" if service == "CONSOLE" else f"LOCKGATE_{service}_HTTP_PORT"
        )
        runner.port = port()
        runner.env[setting] = str(runner.port)
        runner.log_path = runner.log_path.with_name(f"{runner.service}-{runner.port}.log")
    return runner


async def _delete_queues(infra: Infra) -> None:
    """Remove the services' queues over a connection of its own: the test's connection may
    have been closed by the broker (aiormq can leave a cancelled channel open half-done,
    which the broker answers by closing the whole connection), and the clean-up must still
    happen."""
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        for service in (CATALOG, APPROVAL, SCHEDULER, REPORTING):
            for queue in service.queues():
                await channel.queue_delete(queue)
                await channel.queue_delete(dead_letter_queue_name(queue))
    finally:
        await connection.close()
