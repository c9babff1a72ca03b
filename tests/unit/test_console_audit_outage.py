"""An audit write waits out a short database outage (a failover) instead of going unrecorded."""

from __future__ import annotations

import errno
from typing import cast

import pytest

from libs.db.pool import Pool
from services.console import audit


class FlakyPool:
    """Fails each execute with the queued errors, then succeeds (a unit-test fake)."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.written = 0

    async def execute(self, _query: str, *_args: object) -> str:
        if self.errors:
            raise self.errors.pop(0)
        self.written += 1
        return "INSERT 0 1"


async def test_an_outage_is_waited_out_and_the_row_written() -> None:
    pool = FlakyPool(
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    )
    await audit.recorded_despite_outages(cast(Pool, pool), "INSERT ...")
    assert pool.written == 1


async def test_a_failure_of_its_own_is_raised_at_once() -> None:
    pool = FlakyPool(ValueError("bad row"))
    with pytest.raises(ValueError, match="bad row"):
        await audit.recorded_despite_outages(cast(Pool, pool), "INSERT ...")
    assert pool.written == 0
