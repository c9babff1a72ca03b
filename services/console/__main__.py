"""python -m services.console: serve the operators' API on LOCKGATE_CONSOLE_PORT.

Until the database and the broker answer, the port serves /healthz (alive) and /readyz
(503, saying which is missing) while start-up is tried again with capped backoff; then the
API itself starts on the same port. SIGTERM while waiting ends the process at once.
"""

import asyncio
import signal

import structlog
import uvicorn

from libs.bus import Bus
from libs.db.migrations import migrate
from libs.db.pool import answers, ensure_database
from libs.observability.http import HealthServer
from libs.observability.logging import configure_logging
from libs.service.transient import keep_trying
from libs.settings import ContentSigningKeyMissing, Settings
from services.console.app import MIGRATIONS, create_app

log = structlog.get_logger("services.console")


async def wait_for_dependencies(settings: Settings) -> bool:
    """Serve health while the database and broker do not answer; False if stopped first."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    timeout = settings.database_connect_timeout_seconds

    async def prepared() -> bool:
        await ensure_database(settings.database_url, timeout=timeout)
        await migrate(settings.database_url, "console", MIGRATIONS, connect_timeout=timeout)
        bus = await Bus.connect(
            settings.amqp_url,
            name="lockgate-console-start",
            publish_timeout=settings.publish_timeout_seconds,
        )
        await bus.close()
        return True

    async def readiness() -> dict[str, bool]:
        # Not serving the API yet: never ready, but say which dependency answers.
        return {"database": await answers(settings.database_url), "broker": False}

    health = HealthServer(
        readiness, host=settings.http_host, port=settings.console_port, starting=True
    )
    await health.start()
    try:
        ready = await keep_trying(prepared, what="console start", stopping=stopping)
    finally:
        await health.stop()
    return bool(ready)


def main() -> None:
    settings = Settings()
    configure_logging("console", settings.log_level)
    try:
        app = create_app(settings)
    except ContentSigningKeyMissing as error:
        raise SystemExit(f"console: {error}") from None
    if not asyncio.run(wait_for_dependencies(settings)):
        log.info("console.stopped_while_starting")
        return
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.console_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
