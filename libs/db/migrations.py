"""Numbered SQL migrations per schema, applied once under an advisory lock."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from libs.db.pool import advisory_key, check_schema

log = structlog.get_logger(__name__)

LIBS_SQL = Path(__file__).parent / "sql"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """A migration cannot be applied, or an applied one was edited afterwards."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: `<origin>/<NNNN_name>.sql`."""

    key: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(directory: Path, origin: str) -> list[Migration]:
    """The migrations of `directory`, in number order; names must be `NNNN_words.sql`."""
    files = sorted(directory.glob("*.sql"))
    numbers: set[str] = set()
    migrations = []
    for path in files:
        match = _NAME.fullmatch(path.name)
        if not match:
            raise MigrationError(f"migration file {path} must be named NNNN_lower_case.sql")
        if match.group(1) in numbers:
            raise MigrationError(f"two migrations in {directory} share number {match.group(1)}")
        numbers.add(match.group(1))
        migrations.append(Migration(f"{origin}/{path.name}", path.read_text()))
    return migrations


def lock_key(schema: str) -> int:
    """The advisory lock key for migrating `schema`."""
    return advisory_key(f"lockgate.migrate.{schema}")


async def migrate(url: str, schema: str, service_dir: Path) -> list[str]:
    """Apply the shared then the service's pending migrations; return the keys applied.

    Safe with any number of processes at once: they queue on one advisory lock and each
    migration is recorded in the transaction that applies it.
    """
    check_schema(schema)
    migrations = load(LIBS_SQL, "libs") + load(service_dir, schema)
    conn = await asyncpg.connect(url)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key(schema))
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
                " key text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), applied_by int NOT NULL)"
            )
            done = {
                row["key"]: row["checksum"]
                for row in await conn.fetch(f"SELECT key, checksum FROM {schema}.schema_migrations")
            }
            for migration in migrations:
                if migration.key in done:
                    if done[migration.key] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.key} was changed after it was applied to "
                            f"{schema}; add a new numbered file instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL search_path TO {schema}")
                    await conn.execute(migration.sql)
                    await conn.execute(
                        f"INSERT INTO {schema}.schema_migrations (key, checksum, applied_by)"
                        " VALUES ($1, $2, pg_backend_pid())",
                        migration.key,
                        migration.checksum,
                    )
                applied_now.append(migration.key)
                log.info("db.migrated", schema=schema, migration=migration.key)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key(schema))
    finally:
        await conn.close()
    return applied_now
