"""Rules of an agent check-in."""

from __future__ import annotations

from libs.service.errors import InvalidInput


def check_sender(subject: str | None, computer_id: str) -> None:
    """An agent speaks only for itself: the routing subject must be the body's computer id."""
    if subject != computer_id:
        raise InvalidInput(
            f"computer_id {computer_id!r} does not match the sender {subject!r}: an agent may "
            "only check in as the computer of its own routing key agent.<computer_id>.checkin.v1",
            field="computer_id",
        )
