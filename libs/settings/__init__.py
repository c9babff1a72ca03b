"""Process settings read from LOCKGATE_* environment variables."""

from libs.settings.settings import (
    SERVICE_NAMES,
    ContentSigningKeyMissing,
    ServiceName,
    Settings,
)

__all__ = ["SERVICE_NAMES", "ContentSigningKeyMissing", "ServiceName", "Settings"]
