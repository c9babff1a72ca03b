"""Numbered SQL migrations per schema, applied once under an advisory lock."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from libs.db.pool import advisory_key, check_schema

log = structlog.get_logger(__name__)

LIBS_SQL = Path(__file__).parent / "sql"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_EARLIER = re.compile(r"^-- earlier checksum: ([0-9a-f]{64})$", re.MULTILINE)
"""A migration whose content moved elsewhere (into a shared read copy's migrations, say)
names the checksum it had when databases applied it; those databases accept the edit."""


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

    @property
    def earlier_checksums(self) -> frozenset[str]:
        """Checksums of earlier versions of this file, declared in it."""
        return frozenset(_EARLIER.findall(self.sql))


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


async def migrate(
    url: str,
    schema: str,
    service_dir: Path,
    mounted: Sequence[tuple[str, Path]] = (),
    *,
    connect_timeout: float = 60.0,
) -> list[str]:
    """Apply the shared, then the mounted (read copies'), then the service's pending
    migrations; return the keys applied.

    Safe with any number of processes at once: they queue on one advisory lock and each
    migration is recorded in the transaction that applies it. Statements have no timeout
    (an index build may be long); only connecting is bounded.
    """
    check_schema(schema)
    migrations = load(LIBS_SQL, "libs")
    for name, directory in mounted:
        migrations += load(directory, name)
    migrations += load(service_dir, schema)
    conn = await asyncpg.connect(url, timeout=connect_timeout)
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
                    if done[migration.key] in migration.earlier_checksums:
                        await conn.execute(
                            f"UPDATE {schema}.schema_migrations SET checksum = $2 WHERE key = $1",
                            migration.key,
                            migration.checksum,
                        )
                    elif done[migration.key] != migration.checksum:
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
