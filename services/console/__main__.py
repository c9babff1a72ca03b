"""python -m services.console: serve the operators' API on LOCKGATE_CONSOLE_PORT."""

import uvicorn

from libs.observability.logging import configure_logging
from libs.settings import Settings
from services.console.app import create_app

if __name__ == "__main__":
    settings = Settings()
    configure_logging("console", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.console_port,
        log_level=settings.log_level,
    )
