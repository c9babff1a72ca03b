"""The README documents every setting a user can set."""

from __future__ import annotations

from pathlib import Path

from libs.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    """An undocumented LOCKGATE_* variable is a knob nobody knows how to turn."""
    text = README.read_text()
    per_service_ports = {"approval_http_port", "scheduler_http_port"}  # shown as a range
    missing = [
        name
        for name in Settings.model_fields
        if name not in per_service_ports and f"LOCKGATE_{name.upper()}" not in text
    ]
    assert missing == []


def test_quick_start_names_the_two_commands() -> None:
    """Newcomers and CI rely on exactly `make run` and `make test`."""
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text
