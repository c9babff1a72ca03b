"""Waking the outbox relay after a commit: the local relay at once, other replicas by a NOTIFY
sent outside the transaction and at most once per NOTIFY_INTERVAL (libs/db/outbox.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import cast

import pytest

from libs.db import outbox
from libs.db.outbox import NOTIFY_INTERVAL, Outbox, OutboxRelay, notify_channel, wake_relays
from libs.db.pool import Connection
from tests.integration import probe


class FakePool:
    """Records the statements a NOTIFY sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[object, ...]]] = []

    async def execute(self, sql: str, *args: object) -> str:
        self.sent.append((sql, args))
        return "SELECT 1"


class FakeRelay:
    """What the wakeup reads of a relay: whether it leads, its pool; it records wakes."""

    def __init__(self, pool: FakePool, *, leader: bool) -> None:
        self.pool = pool
        self.is_leader = leader
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def relays() -> Iterator[list[FakeRelay]]:
    """The relays registered for schema `wakeup_test` during one test."""
    registered: list[FakeRelay] = []
    wakeup = outbox._wakeup("wakeup_test")
    wakeup.relays = cast("list[OutboxRelay]", registered)
    yield registered
    registered.clear()


async def test_a_leading_relay_here_is_woken_without_a_notify(relays: list[FakeRelay]) -> None:
    pool = FakePool()
    relays.append(FakeRelay(pool, leader=True))
    for _ in range(3):
        wake_relays("wakeup_test")
    await asyncio.sleep(NOTIFY_INTERVAL * 2)
    assert relays[0].woken == 3
    assert pool.sent == []


async def test_a_standby_here_notifies_the_leader_elsewhere_at_most_once_per_interval(
    relays: list[FakeRelay],
) -> None:
    pool = FakePool()
    relays.append(FakeRelay(pool, leader=False))
    for _ in range(50):
        wake_relays("wakeup_test")
    await asyncio.sleep(NOTIFY_INTERVAL / 2)
    assert pool.sent == [("SELECT pg_notify($1, '')", (notify_channel("wakeup_test"),))]
    wake_relays("wakeup_test")  # within the interval: one more, but only once it has passed
    await asyncio.sleep(NOTIFY_INTERVAL / 4)
    assert len(pool.sent) == 1
    await asyncio.sleep(NOTIFY_INTERVAL * 1.5)
    assert len(pool.sent) == 2
    assert relays[0].woken == 51


class FakeConnection:
    """A connection whose transaction ends when told."""

    def __init__(self) -> None:
        self.in_transaction = True
        self.executed: list[str] = []

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def is_closed(self) -> bool:
        return False

    async def execute(self, sql: str, *_: object) -> str:
        self.executed.append(sql)
        return "INSERT 0 1"


async def test_an_unmanaged_outbox_wakes_the_relay_once_its_transaction_ends(
    relays: list[FakeRelay],
) -> None:
    """No NOTIFY inside the transaction: only the INSERT; the wake comes after it ended."""
    relays.append(FakeRelay(FakePool(), leader=True))
    conn = FakeConnection()
    box = Outbox(cast("Connection", conn), schema="wakeup_test", source="tests")
    await box.add(probe.COUNTED, probe.Key(key="k"), subject="k")
    await box.add(probe.COUNTED, probe.Key(key="k"), subject="k")
    await asyncio.sleep(0.01)
    assert relays[0].woken == 0
    assert all(sql.startswith("INSERT INTO outbox") for sql in conn.executed)
    conn.in_transaction = False
    await asyncio.sleep(0.05)
    assert relays[0].woken == 1


async def test_a_managed_outbox_wakes_only_when_told_it_committed(
    relays: list[FakeRelay],
) -> None:
    relays.append(FakeRelay(FakePool(), leader=True))
    conn = FakeConnection()
    box = Outbox(cast("Connection", conn), schema="wakeup_test", source="tests", managed=True)
    box.committed()  # nothing written: nothing to wake for
    await box.add(probe.COUNTED, probe.Key(key="k"), subject="k")
    conn.in_transaction = False
    await asyncio.sleep(0.05)
    assert relays[0].woken == 0
    box.committed()
    assert relays[0].woken == 1
