"""The HTTP endpoints every service serves: /metrics, /healthz (alive), /readyz (ready)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
RETRY_AFTER_SECONDS = 2


class HealthServer:
    """aiohttp app serving metrics and health; readiness asks `check` each time.

    With `starting=True` (a process that serves its real API only once its dependencies
    answer) every other path gets 503 with Retry-After, so a client retries instead of taking
    a bare 404 for a final answer.
    """

    def __init__(
        self, check: ReadinessCheck, *, host: str, port: int, starting: bool = False
    ) -> None:
        self._check = check
        self._starting = starting
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self._starting:
            app.router.add_route("*", "/{path:.*}", self._not_yet)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:  # type: ignore[attr-defined]  # asyncio.Server
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _not_yet(self, _: web.Request) -> web.Response:
        problem = {
            "title": "Service unavailable",
            "status": 503,
            "detail": "starting: waiting for the database and the broker; try again shortly",
            "field": None,
        }
        return web.json_response(
            problem,
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            content_type="application/problem+json",
        )

    async def _readyz(self, _: web.Request) -> web.Response:
        checks = await self._check()
        ready = all(checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )
