"""python -m services.scheduler: run one scheduler instance until SIGTERM."""

from libs.service.runner import main
from services.scheduler.handlers import SERVICE

if __name__ == "__main__":
    main(SERVICE)
