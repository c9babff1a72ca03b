"""Connection pools bound to one service's schema, and creation of the database itself.

Every URL here may name several hosts (`postgresql://u@h1:5432,h2:5432/db?target_session_attrs=
read-write`): asyncpg tries them in order and keeps the first that matches, so after a
failover new connections reach the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import asyncpg.pool
import structlog

from libs.db import unit_of_work
from libs.db.unit_of_work import LockgateConnection

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


async def create_pool(
    url: str,
    schema: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float | None = None,
    connect_timeout: float = 60.0,
) -> Pool:
    """A pool whose connections see `schema` first on their search path.

    `command_timeout` bounds each statement (a hung server fails it with TimeoutError
    instead of holding the connection forever); `connect_timeout` bounds each connection
    attempt, per host of a multi-host URL. A connection that broke (a restart, a failover)
    is replaced by a new one on its next acquire; `expire_connections()` replaces them all.
    """
    check_schema(schema)
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        timeout=connect_timeout,
        server_settings={"search_path": schema, "application_name": f"lockgate-{schema}"},
        # The message pipeline's transactions send the reset with their COMMIT
        # (libs/db/unit_of_work.py); every other release sends it as asyncpg does.
        connection_class=LockgateConnection,
        reset=unit_of_work.reset,
    )
    assert pool is not None  # noqa: S101 - create_pool returns None only when not awaited
    return pool


async def answers(url: str, *, timeout: float = 2.0) -> bool:
    """Whether the database of `url` answers now on a new connection and takes writes.

    A standby (in recovery) does not count: after a failover the services must talk to the
    new primary, which a multi-host URL with `target_session_attrs=read-write` finds.
    """
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.debug("db.no_answer", error=f"{type(error).__name__}: {error}")
        return False
    except asyncpg.exceptions.InternalClientError:  # no host matched target_session_attrs
        return False
    try:
        return bool(
            await asyncio.wait_for(conn.fetchval("SELECT NOT pg_is_in_recovery()"), timeout)
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    finally:
        with contextlib.suppress(
            OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError
        ):
            await asyncio.wait_for(conn.close(), timeout)


def hosts(url: str) -> list[tuple[str, int]]:
    """The (host, port) pairs a PostgreSQL URL names, in order (several for a failover)."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    found: list[tuple[str, int]] = []
    for part in netloc.split(","):
        if not part:
            continue
        if part.startswith("["):  # [ipv6]:port
            host, _, rest = part[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = part.partition(":")
        found.append((unquote(host) or "localhost", int(port) if port else 5432))
    return found


def database_name(url: str) -> str:
    """The database a PostgreSQL URL points to."""
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        shown = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        raise ValueError(f"database URL {shown!r} names no database (expected .../<name>)")
    return name


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _server_url(url: str, database: str = "postgres") -> str:
    """The same servers (every host, user, query such as target_session_attrs), another
    database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def ensure_database(url: str, *, timeout: float = 60.0) -> bool:
    """Create the database of `url` if it does not exist; True when it was created."""
    name = database_name(url)
    conn = await asyncpg.connect(_server_url(url), timeout=timeout)
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


async def drop_database(url: str, *, timeout: float = 60.0) -> None:
    """Drop the database of `url`, disconnecting its sessions (tests only)."""
    name = database_name(url)
    conn = await asyncpg.connect(_server_url(url), timeout=timeout)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
    finally:
        await conn.close()
