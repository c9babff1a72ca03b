"""Migrations: N processes starting at once apply each migration exactly once."""

from __future__ import annotations

import asyncio
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from libs.db.migrations import Migration, MigrationError, migrate
from libs.db.pool import drop_database, ensure_database
from libs.settings import SERVICE_NAMES
from services.cli.service_registry import definition
from tests.support.infra import Infra
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

PROCESSES = 4


def fresh_database_url(infra: Infra) -> str:
    parts = urlsplit(infra.database_url)
    name = f"{parts.path.lstrip('/')}_mig_{uuid.uuid4().hex[:6]}"
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def test_concurrent_starts_apply_each_migration_once(infra: Infra) -> None:
    """Four processes migrating one fresh database at once: all succeed, nothing runs twice."""
    url = fresh_database_url(infra)
    try:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.cli.main",
                "--json",
                "migrate",
                cwd=ROOT,
                env=infra.env(LOCKGATE_DATABASE_URL=url),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(PROCESSES)
        ]
        results = await asyncio.gather(*(proc.communicate() for proc in procs))
        codes = [proc.returncode for proc in procs]
        assert codes == [0] * PROCESSES, [err.decode()[-2000:] for _, err in results]

        conn = await asyncpg.connect(url)
        try:
            for service in SERVICE_NAMES:
                rows = await conn.fetch(
                    f"SELECT key, count(*) OVER (PARTITION BY key) AS n"
                    f" FROM {service}.schema_migrations"
                )
                found = definition(service)
                directories = [found.migrations, *(d for _, d in found.mounted_migrations)]
                expected = 1 + sum(len(list(d.glob("*.sql"))) for d in directories)
                assert len(rows) == expected
                assert all(row["n"] == 1 for row in rows)
        finally:
            await conn.close()
    finally:
        await drop_database(url)


async def test_edited_migration_is_refused(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Changing an applied migration is an error, not a silent divergence between databases."""
    url = fresh_database_url(infra)
    directory = tmp_path_factory.mktemp("migrations")
    (directory / "0001_things.sql").write_text("CREATE TABLE things (id int);")
    await ensure_database(url)
    try:
        assert await migrate(url, "edited", directory) == [
            "libs/0001_messaging.sql",
            "edited/0001_things.sql",
        ]
        assert await migrate(url, "edited", directory) == []
        (directory / "0001_things.sql").write_text("CREATE TABLE things (id bigint);")
        with pytest.raises(
            MigrationError, match=r"0001_things\.sql was changed after it was applied"
        ):
            await migrate(url, "edited", directory)
    finally:
        await drop_database(url)


async def test_an_edit_naming_the_earlier_checksum_is_accepted_once(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tables moved out of a migration into a shared read copy: databases that applied the
    old file take the new one when it names the old checksum, and only that one."""
    url = fresh_database_url(infra)
    directory = tmp_path_factory.mktemp("migrations")
    shared = tmp_path_factory.mktemp("shared")
    before = "CREATE TABLE things (id int);\nCREATE TABLE copied (id int);"
    (directory / "0001_things.sql").write_text(before)
    (shared / "0001_copied.sql").write_text("CREATE TABLE IF NOT EXISTS copied (id int);")
    await ensure_database(url)
    try:
        await migrate(url, "moved", directory)
        earlier = Migration("x", before).checksum
        after = f"-- earlier checksum: {earlier}\nCREATE TABLE things (id int);"
        (directory / "0001_things.sql").write_text(after)
        assert await migrate(url, "moved", directory, [("copy", shared)]) == [
            "copy/0001_copied.sql"
        ]
        conn = await asyncpg.connect(url)
        try:
            stored = await conn.fetchval(
                "SELECT checksum FROM moved.schema_migrations WHERE key = 'moved/0001_things.sql'"
            )
        finally:
            await conn.close()
        assert stored == Migration("x", after).checksum
        (directory / "0001_things.sql").write_text(after + "\nCREATE TABLE more (id int);")
        with pytest.raises(MigrationError, match="was changed after it was applied"):
            await migrate(url, "moved", directory, [("copy", shared)])
    finally:
        await drop_database(url)
