"""Which items a page of a report shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from libs.contracts.reporting import Page

T = TypeVar("T")


def page_of(items: Sequence[T], page: Page) -> list[T]:
    """The items of one page, in the given order."""
    return list(items[page.offset : page.offset + page.limit])
