"""Connection pools bound to one service's schema, and creation of the database itself."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import asyncpg.pool
import structlog

log = structlog.get_logger(__name__)

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

Pool = asyncpg.Pool
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection, whether opened directly or borrowed from a pool."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit PostgreSQL advisory lock key for `name`."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def rows_affected(status: str) -> int:
    """Row count of a command status such as `DELETE 3`."""
    return int(status.rsplit(maxsplit=1)[-1])


def check_schema(schema: str) -> str:
    """`schema` if it is a plain lower-case identifier (it is interpolated into SQL)."""
    if not _SCHEMA.fullmatch(schema):
        raise ValueError(f"schema {schema!r} is not allowed: use lower-case letters, digits, '_'")
    return schema


async def create_pool(url: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """A pool whose connections see `schema` first on their search path."""
    check_schema(schema)
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"lockgate-{schema}"},
    )
    assert pool is not None  # noqa: S101 - create_pool returns None only when not awaited
    return pool


def database_name(url: str) -> str:
    """The database a PostgreSQL URL points to."""
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        shown = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
        raise ValueError(f"database URL {shown!r} names no database (expected .../<name>)")
    return name


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _server_url(url: str, database: str = "postgres") -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def ensure_database(url: str) -> bool:
    """Create the database of `url` if it does not exist; True when it was created."""
    name = database_name(url)
    conn = await asyncpg.connect(_server_url(url))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await conn.execute(f"CREATE DATABASE {_quoted(name)}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process created it at the same moment; a race on pg_database's
            # unique index surfaces as UniqueViolation rather than DuplicateDatabase.
            return False
        log.info("db.created", database=name)
        return True
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the database of `url`, disconnecting its sessions (tests only)."""
    name = database_name(url)
    conn = await asyncpg.connect(_server_url(url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
    finally:
        await conn.close()
