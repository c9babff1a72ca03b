"""Third-party packages: the content each update's files use, and what deleting one frees."""

from __future__ import annotations

from collections.abc import Sequence

from libs.contracts.catalog import Package
from libs.db.pool import Connection
from services.catalog.domain.third_party import FreedContent, StoredFile


async def add_content(conn: Connection, sha256: str, size: int) -> None:
    await conn.execute(
        "INSERT INTO contents (sha256, size) VALUES ($1, $2) ON CONFLICT DO NOTHING", sha256, size
    )


async def save(
    conn: Connection, update_id: str, package: Package, files: Sequence[StoredFile]
) -> None:
    """How to install the update, and its files (a file already recorded is kept)."""
    await conn.execute(
        "INSERT INTO packages (update_id, package) VALUES ($1::uuid, $2)"
        " ON CONFLICT (update_id) DO UPDATE SET package = EXCLUDED.package",
        update_id,
        package.model_dump_json(),
    )
    await conn.executemany(
        "INSERT INTO package_files (update_id, path, sha256, size) VALUES ($1::uuid, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        [(update_id, f.path, f.sha256, f.size) for f in files],
    )


async def delete_update(conn: Connection, update_id: str) -> list[FreedContent]:
    """Delete a third-party update; return the content nothing uses any more."""
    hashes = await conn.fetch(
        "SELECT DISTINCT sha256 FROM package_files WHERE update_id = $1::uuid", update_id
    )
    await conn.execute("DELETE FROM updates WHERE update_id = $1::uuid", update_id)
    rows = await conn.fetch(
        "DELETE FROM contents c WHERE c.sha256 = ANY($1::text[]) AND NOT EXISTS ("
        " SELECT 1 FROM package_files p WHERE p.sha256 = c.sha256) RETURNING sha256, size",
        [row["sha256"] for row in hashes],
    )
    return [FreedContent(sha256=row["sha256"], size=row["size"]) for row in rows]
