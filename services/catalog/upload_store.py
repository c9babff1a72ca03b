"""catalog's queries for uploads, content and packages (schema `catalog` only)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from libs.contracts.catalog import UploadFile
from libs.db.pool import Connection


@dataclass
class UploadRow:
    """One upload session as stored."""

    upload_id: str
    state: str
    refusal: str | None
    files: list[UploadFile]
    received_bytes: int
    steps: dict[str, Any]
    extracted: dict[str, Any] | None
    update_id: str | None


async def create(conn: Connection, upload_id: str, files: list[UploadFile]) -> None:
    await conn.execute(
        "INSERT INTO uploads (upload_id, state, files) VALUES ($1, 'receiving', $2)",
        upload_id,
        json.dumps([f.model_dump() for f in files]),
    )


async def load(conn: Connection, upload_id: str) -> UploadRow | None:
    """The session, locked for this transaction (steps of one upload run one at a time)."""
    row = await conn.fetchrow(
        "SELECT * FROM uploads WHERE upload_id::text = $1 FOR UPDATE", upload_id
    )
    if row is None:
        return None
    return UploadRow(
        upload_id=str(row["upload_id"]),
        state=row["state"],
        refusal=row["refusal"],
        files=[UploadFile.model_validate(f) for f in json.loads(row["files"])],
        received_bytes=row["received_bytes"],
        steps=json.loads(row["steps"]),
        extracted=json.loads(row["extracted"]) if row["extracted"] else None,
        update_id=str(row["update_id"]) if row["update_id"] else None,
    )


async def save(conn: Connection, upload: UploadRow) -> None:
    await conn.execute(
        "UPDATE uploads SET state = $2, refusal = $3, received_bytes = $4, steps = $5,"
        " extracted = $6, update_id = $7::uuid, updated_at = now() WHERE upload_id = $1::uuid",
        upload.upload_id,
        upload.state,
        upload.refusal,
        upload.received_bytes,
        json.dumps(upload.steps),
        json.dumps(upload.extracted) if upload.extracted else None,
        upload.update_id,
    )


async def lock_storage(conn: Connection) -> None:
    """Serialise quota decisions for this transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lockgate.catalog.storage'))")


async def used_bytes(conn: Connection) -> int:
    """Stored content plus everything uploads in progress have sent."""
    used: int = await conn.fetchval(
        "SELECT coalesce((SELECT sum(size) FROM contents), 0)"
        " + coalesce((SELECT sum(received_bytes) FROM uploads"
        "             WHERE state IN ('receiving', 'received')), 0)"
    )
    return used


async def received(conn: Connection, upload_id: str, path: str) -> int:
    total: int = await conn.fetchval(
        "SELECT coalesce(sum(length(data)), 0) FROM upload_chunks"
        " WHERE upload_id = $1::uuid AND path = $2",
        upload_id,
        path,
    )
    return total


async def add_chunk(conn: Connection, upload_id: str, path: str, offset: int, data: bytes) -> None:
    await conn.execute(
        'INSERT INTO upload_chunks (upload_id, path, "offset", data) VALUES ($1::uuid, $2, $3, $4)',
        upload_id,
        path,
        offset,
        data,
    )


async def discard_chunks(conn: Connection, upload_id: str) -> None:
    await conn.execute("DELETE FROM upload_chunks WHERE upload_id = $1::uuid", upload_id)


async def chunks(conn: Connection, upload_id: str, path: str) -> AsyncIterator[bytes]:
    """A file's bytes in order, one chunk at a time (call inside a transaction)."""
    async for row in conn.cursor(
        'SELECT data FROM upload_chunks WHERE upload_id = $1::uuid AND path = $2 ORDER BY "offset"',
        upload_id,
        path,
    ):
        yield bytes(row["data"])


async def add_content(conn: Connection, sha256: str, size: int) -> None:
    await conn.execute(
        "INSERT INTO contents (sha256, size) VALUES ($1, $2) ON CONFLICT DO NOTHING", sha256, size
    )


async def save_package(
    conn: Connection, update_id: str, package: dict[str, Any], files: list[tuple[str, str, int]]
) -> None:
    await conn.execute(
        "INSERT INTO packages (update_id, package) VALUES ($1::uuid, $2)"
        " ON CONFLICT (update_id) DO UPDATE SET package = EXCLUDED.package",
        update_id,
        json.dumps(package),
    )
    await conn.executemany(
        "INSERT INTO package_files (update_id, path, sha256, size) VALUES ($1::uuid, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        [(update_id, path, sha, size) for path, sha, size in files],
    )


async def delete_update(conn: Connection, update_id: str) -> list[tuple[str, int]]:
    """Delete a third-party update; return the content (sha256, size) nothing uses any more."""
    hashes = await conn.fetch(
        "SELECT DISTINCT sha256 FROM package_files WHERE update_id = $1::uuid", update_id
    )
    await conn.execute("DELETE FROM updates WHERE update_id = $1::uuid", update_id)
    rows = await conn.fetch(
        "DELETE FROM contents c WHERE c.sha256 = ANY($1::text[]) AND NOT EXISTS ("
        " SELECT 1 FROM package_files p WHERE p.sha256 = c.sha256) RETURNING sha256, size",
        [row["sha256"] for row in hashes],
    )
    return [(row["sha256"], row["size"]) for row in rows]
