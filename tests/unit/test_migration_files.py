"""Migration files: naming, ordering, checksums and advisory lock keys (no database)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from libs.db.migrations import LIBS_SQL, Migration, MigrationError, load, lock_key

ROOT = Path(__file__).resolve().parents[2]
MIGRATION_DIRS = [LIBS_SQL, *sorted(ROOT.glob("services/*/migrations"))]


def _write(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_text(f"-- {name}\nSELECT 1;\n")


def test_load_orders_files_by_number(tmp_path: Path) -> None:
    """Migrations build on each other; applying 0010 before 0002 would break a schema."""
    _write(tmp_path, "0010_add_index.sql", "0002_add_column.sql", "0001_init.sql")
    keys = [migration.key for migration in load(tmp_path, "approval")]
    assert keys == [
        "approval/0001_init.sql",
        "approval/0002_add_column.sql",
        "approval/0010_add_index.sql",
    ]


def test_load_reads_the_sql_of_each_file(tmp_path: Path) -> None:
    """The checksum recorded in the database is of exactly what is applied."""
    (tmp_path / "0001_init.sql").write_text("CREATE TABLE t (id int);\n")
    assert load(tmp_path, "approval") == [
        Migration("approval/0001_init.sql", "CREATE TABLE t (id int);\n")
    ]


def test_load_ignores_files_that_are_not_sql(tmp_path: Path) -> None:
    """A README next to the migrations (as catalog has) is documentation, not a migration."""
    _write(tmp_path, "0001_init.sql")
    (tmp_path / "README.md").write_text("notes\n")
    assert [migration.key for migration in load(tmp_path, "catalog")] == ["catalog/0001_init.sql"]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("1_init.sql", id="short-number"),
        pytest.param("0001-init.sql", id="dash"),
        pytest.param("0001_Init.sql", id="upper-case"),
        pytest.param("init.sql", id="no-number"),
        pytest.param("0001_.sql", id="no-words"),
    ],
)
def test_load_refuses_a_badly_named_file(tmp_path: Path, name: str) -> None:
    """Only `NNNN_words.sql` sorts reliably; anything else would be applied out of order."""
    _write(tmp_path, "0001_init.sql", name)
    with pytest.raises(
        MigrationError, match=re.escape(f"{name} must be named NNNN_lower_case.sql")
    ):
        load(tmp_path, "approval")


def test_load_refuses_two_files_with_one_number(tmp_path: Path) -> None:
    """Two authors picking the same number would make the order between them arbitrary."""
    _write(tmp_path, "0001_init.sql", "0002_add_rules.sql", "0002_add_groups.sql")
    with pytest.raises(MigrationError, match="share number 0002"):
        load(tmp_path, "approval")


def test_checksum_changes_when_the_sql_changes() -> None:
    """An edited, already-applied migration is detected by its checksum."""
    before = Migration("approval/0001_init.sql", "CREATE TABLE t (id int);")
    after = Migration("approval/0001_init.sql", "CREATE TABLE t (id bigint);")
    assert before.checksum != after.checksum


def test_checksum_is_the_sha256_of_the_sql() -> None:
    """Checksums are stored in the database, so they must not depend on the Python process."""
    migration = Migration("libs/0001_messaging.sql", "SELECT 1;")
    assert migration.checksum == hashlib.sha256(b"SELECT 1;").hexdigest()


def test_lock_key_is_stable_across_processes() -> None:
    """Processes on different machines must queue on the same advisory lock."""
    assert lock_key("approval") == -1739988735978413049


def test_lock_key_fits_a_signed_64_bit_integer() -> None:
    """pg_advisory_lock takes a bigint; a larger key would fail at start-up."""
    assert all(-(2**63) <= lock_key(schema) < 2**63 for schema in ("approval", "scheduler"))


def test_lock_key_differs_per_schema() -> None:
    """Services migrating their own schemas must not wait on each other's lock."""
    schemas = ["catalog", "approval", "scheduler", "reporting"]
    assert len({lock_key(schema) for schema in schemas}) == len(schemas)


@pytest.mark.parametrize("directory", MIGRATION_DIRS, ids=lambda path: path.parent.name)
def test_real_migration_directory_loads(directory: Path) -> None:
    """A misnamed file in the repository would stop the service at start-up."""
    migrations = load(directory, directory.parent.name)
    assert len(migrations) == len(list(directory.glob("*.sql")))


def test_real_migration_directories_are_found() -> None:
    """The check above must actually cover the shared and every service's migrations."""
    assert LIBS_SQL in MIGRATION_DIRS
    assert len(MIGRATION_DIRS) >= 5
