"""Which bytes a `Range` header asks of a content file (services/console/content.py)."""

from __future__ import annotations

import pytest

from services.console.content import byte_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("", 100, None),
        ("bytes=0-", 100, (0, 99)),
        ("bytes=10-19", 100, (10, 19)),
        ("bytes=90-500", 100, (90, 99)),
        ("bytes=-5", 100, (95, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=100-", 100, "unsatisfiable"),
        ("bytes=-0", 100, "unsatisfiable"),
        ("bytes=0-", 0, "unsatisfiable"),
        ("bytes=-1", 0, "unsatisfiable"),
        ("bytes=20-10", 100, None),
        ("bytes=-", 100, None),
        ("bytes=0-1,5-6", 100, None),
        ("items=0-1", 100, None),
    ],
)
def test_byte_range(header: str | None, size: int, expected: object) -> None:
    """One range is served (206), an unsatisfiable one is refused (416), anything else we may
    ignore gets the whole file (200), as RFC 9110 allows."""
    assert byte_range(header, size) == expected
