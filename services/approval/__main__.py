"""python -m services.approval: run one approval instance until SIGTERM."""

from libs.service.runner import main
from services.approval.handlers import SERVICE

if __name__ == "__main__":
    main(SERVICE)
