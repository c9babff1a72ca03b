"""The pipeline's transaction by hand (libs/db/unit_of_work.py) against a real PostgreSQL:
statements riding on BEGIN and COMMIT, literals that round-trip exactly, savepoints for
`conn.transaction()` inside it, and the pool's reset sent with COMMIT."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.db import inbox
from libs.db.pool import Connection, Pool, create_pool
from libs.db.unit_of_work import Transaction, Unquotable, quote
from tests.support.infra import Infra

pytestmark = [pytest.mark.integration]

SCHEMA = "unit_of_work_test"


@pytest.fixture
async def pool(infra: Infra, db: asyncpg.Connection) -> AsyncIterator[Pool]:
    """One connection, so that every acquire gets the connection the previous one left."""
    await db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    await db.execute(
        f"CREATE TABLE {SCHEMA}.inbox (message_id text NOT NULL, handler text NOT NULL,"
        " processed_at timestamptz NOT NULL DEFAULT now(), reply_status text, reply bytea,"
        " PRIMARY KEY (message_id, handler));"
        f" CREATE TABLE {SCHEMA}.rows (value text)"
    )
    created = await create_pool(infra.database_url, SCHEMA, min_size=1, max_size=1)
    yield created
    await created.close()
    await db.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


ODD_IDS = [
    *("plain", "it's", r"back\slash", r"\x41", "$$dollar$$", "ünï 🙂"),
    "'; DROP TABLE rows; --",
]


@pytest.mark.parametrize("message_id", ODD_IDS)
async def test_a_claim_riding_on_begin_stores_the_id_exactly(pool: Pool, message_id: str) -> None:
    async with pool.acquire() as conn:
        transaction = Transaction(conn)
        assert transaction.literal
        assert inbox.claimed(await transaction.begin(inbox.claim_sql(message_id, "h/x")))
        body = bytes(range(256))
        await transaction.commit([inbox.store_reply_sql(message_id, "h/x", "ok", body)])
    async with pool.acquire() as conn:
        stored = await inbox.stored_reply(conn, message_id, "h/x")
        assert stored == inbox.StoredReply("ok", body)
        second = Transaction(conn)
        assert not inbox.claimed(await second.begin(inbox.claim_sql(message_id, "h/x")))
        await second.rollback()
        assert await conn.fetchval("SELECT count(*) FROM rows") == 0


def test_what_cannot_be_a_literal_is_refused() -> None:
    with pytest.raises(Unquotable):
        quote("nul\x00inside")
    with pytest.raises(Unquotable):
        quote("lone \ud800 surrogate")
    assert quote(None) == "NULL"
    assert quote(b"\x00\xff") == "'\\x00ff'::bytea"


async def _insert_then_fail(conn: Connection) -> None:
    async with conn.transaction():
        await conn.execute("INSERT INTO rows VALUES ('undone')")
        raise RuntimeError("handler changed its mind")


async def test_conn_transaction_inside_is_a_savepoint(pool: Pool) -> None:
    """A handler's `conn.transaction()` nests as asyncpg's would: its rollback undoes only
    its own statements, and the outer transaction commits the rest."""
    async with pool.acquire() as conn:
        transaction = Transaction(conn)
        await transaction.begin()
        await conn.execute("INSERT INTO rows VALUES ('kept')")
        with pytest.raises(RuntimeError):
            await _insert_then_fail(conn)
        async with conn.transaction():
            await conn.execute("INSERT INTO rows VALUES ('nested and kept')")
        await transaction.commit()
    async with pool.acquire() as conn:
        values = await conn.fetch("SELECT value FROM rows ORDER BY value")
        assert [r["value"] for r in values] == ["kept", "nested and kept"]
        async with conn.transaction():  # outside one: asyncpg's own transaction, as ever
            await conn.execute("INSERT INTO rows VALUES ('plain')")
        assert await conn.fetchval("SELECT count(*) FROM rows") == 3


async def test_the_session_is_reset_with_commit_and_after_a_rollback(
    pool: Pool, db: asyncpg.Connection
) -> None:
    """What a handler changed in the session (a setting, an advisory lock) does not outlive
    its transaction, whether the reset went with COMMIT or the pool sent it."""
    key = uuid.uuid4().int >> 65
    for ending in ("commit", "rollback"):
        async with pool.acquire() as conn:
            default = await conn.fetchval("SHOW application_name")
            transaction = Transaction(conn)
            await transaction.begin()
            await conn.execute("SET application_name = 'changed by a handler'")
            await conn.execute("SELECT pg_advisory_lock($1)", key)
            if ending == "commit":
                await transaction.commit()
            else:
                await transaction.rollback()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == default, ending
        assert await db.fetchval("SELECT pg_try_advisory_lock($1)", key), ending  # released
        await db.execute("SELECT pg_advisory_unlock($1)", key)


async def test_a_failing_commit_leaves_nothing_and_the_connection_usable(pool: Pool) -> None:
    async with pool.acquire() as conn:
        transaction = Transaction(conn)
        await transaction.begin(inbox.claim_sql("m1", "h/x"))
        await conn.execute("INSERT INTO rows VALUES ('lost')")
        with pytest.raises(asyncpg.UndefinedTableError):
            await transaction.commit(["INSERT INTO no_such_table VALUES (1)"])
        await transaction.rollback()
        assert not conn.is_in_transaction()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM rows") == 0
        assert await conn.fetchval("SELECT count(*) FROM inbox") == 0


async def test_no_literals_once_a_handler_turns_standard_conforming_strings_off(
    pool: Pool,
) -> None:
    """Quoted literals are exact only with standard_conforming_strings on: the transaction
    asks before each use, so a handler turning it off sends the rest through parameters."""
    async with pool.acquire() as conn:
        transaction = Transaction(conn)
        await transaction.begin()
        assert transaction.literal
        await conn.execute("SET LOCAL standard_conforming_strings = off")
        assert not transaction.literal
        await transaction.rollback()
    async with pool.acquire() as conn:
        assert Transaction(conn).literal
