"""python -m services.scheduler: run one scheduler instance until SIGTERM."""

from libs.service.runner import main
from libs.settings import ContentSigningKeyMissing, Settings
from services.scheduler.handlers import SERVICE

if __name__ == "__main__":
    try:
        Settings().content_links()  # plans carry signed content URLs: no key, no start
    except ContentSigningKeyMissing as error:
        raise SystemExit(f"scheduler: {error}") from None
    main(SERVICE)
