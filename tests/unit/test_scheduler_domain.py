"""The scheduler's check-in rule: an agent may only speak for its own computer."""

from __future__ import annotations

import pytest

from libs.service.errors import InvalidInput
from services.scheduler.domain.checkin import check_sender


def test_check_sender_accepts_a_matching_subject() -> None:
    """An agent checking in as itself is the normal case and must go through."""
    check_sender("pc-0042", "pc-0042")


def test_check_sender_refuses_a_mismatch_on_computer_id() -> None:
    """An agent must not register or refresh another computer by naming it in the body."""
    with pytest.raises(InvalidInput) as caught:
        check_sender("pc-0042", "pc-0099")
    assert caught.value.field == "computer_id"


def test_check_sender_refusal_names_both_ids() -> None:
    """The dead-letter reason must show which id was claimed and which agent sent it."""
    with pytest.raises(InvalidInput, match=r"'pc-0099' does not match the sender 'pc-0042'"):
        check_sender("pc-0042", "pc-0099")


def test_check_sender_refuses_a_message_without_subject() -> None:
    """A check-in that does not say who sent it cannot be attributed to any computer."""
    with pytest.raises(InvalidInput) as caught:
        check_sender(None, "pc-0042")
    assert caught.value.field == "computer_id"


def test_check_sender_is_case_sensitive() -> None:
    """Computer ids are compared exactly, as the broker compares routing keys."""
    with pytest.raises(InvalidInput):
        check_sender("PC-0042", "pc-0042")
