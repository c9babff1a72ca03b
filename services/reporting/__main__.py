"""python -m services.reporting: run one reporting instance until SIGTERM."""

from libs.service.runner import main
from services.reporting.handlers import SERVICE

if __name__ == "__main__":
    main(SERVICE)
