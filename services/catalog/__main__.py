"""python -m services.catalog: run one catalog instance until SIGTERM."""

from libs.service.runner import main
from services.catalog.handlers import SERVICE

if __name__ == "__main__":
    main(SERVICE)
