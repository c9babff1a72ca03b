"""python -m services.console: serve the operators' API on LOCKGATE_CONSOLE_PORT."""

import uvicorn

from libs.observability.logging import configure_logging
from libs.settings import ContentSigningKeyMissing, Settings
from services.console.app import create_app

if __name__ == "__main__":
    settings = Settings()
    configure_logging("console", settings.log_level)
    try:
        app = create_app(settings)
    except ContentSigningKeyMissing as error:
        raise SystemExit(f"console: {error}") from None
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.console_port,
        log_level=settings.log_level,
    )
