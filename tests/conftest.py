"""Session-wide isolation: one RabbitMQ vhost and one PostgreSQL database per test run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from libs.bus import Bus
from tests.support.faults import write_report
from tests.support.infra import Infra, session_infra


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """This session's own vhost and database, removed at the end."""
    with session_infra() as created:
        yield created


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where service subprocesses write their logs (shown when a test fails)."""
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture
async def bus(infra: Infra) -> AsyncIterator[Bus]:
    """A connection to this session's vhost with every exchange declared."""
    connected = await Bus.connect(infra.amqp_url, name="lockgate-tests", delivery_limit=5)
    await connected.declare_exchanges()
    yield connected
    await connected.close()


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to this session's database, to read what services wrote."""
    conn = await asyncpg.connect(infra.database_url)
    yield conn
    await conn.close()


def pytest_sessionfinish() -> None:
    """docs/RELIABILITY.md from the fault tests, when some ran (tests/support/faults.py)."""
    write_report()
