"""The first admin token is made once, even by console replicas starting together."""

from __future__ import annotations

import asyncio

import pytest

from libs.db.migrations import migrate
from libs.db.pool import create_pool, drop_database, ensure_database
from libs.settings import Settings
from services.console import auth
from tests.support.infra import Infra


async def test_replicas_starting_together_make_one_bootstrap_token(
    infra: Infra, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{infra.database_url}_boot"
    await ensure_database(url)
    try:
        await migrate(url, "console", auth.MIGRATIONS)
        pools = [await create_pool(url, "console") for _ in range(4)]
        try:
            settings = Settings(amqp_url=infra.amqp_url, database_url=url, bootstrap_token=None)
            await asyncio.gather(*(auth.bootstrap(pool, settings) for pool in pools))
            tokens = await pools[0].fetchval("SELECT count(*) FROM tokens")
        finally:
            for pool in pools:
                await pool.close()
    finally:
        await drop_database(url)
    assert tokens == 1
    assert capsys.readouterr().err.count("bootstrap admin token (shown once)") == 1
