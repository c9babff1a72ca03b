"""Upload sessions and the bytes they receive; the storage quota they count against."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

from libs.contracts.catalog import UploadFile
from libs.contracts.uploads import Extracted
from libs.db.pool import Connection
from services.catalog.domain.uploads import Upload, steps_from_json, steps_json


async def create(conn: Connection, upload_id: str, files: list[UploadFile], now: datetime) -> None:
    await conn.execute(
        "INSERT INTO uploads (upload_id, state, files, created_at, updated_at)"
        " VALUES ($1, 'receiving', $2, $3, $3)",
        upload_id,
        json.dumps([f.model_dump() for f in files]),
        now,
    )


async def load(conn: Connection, upload_id: str) -> Upload | None:
    """The session, locked for this transaction (steps of one upload run one at a time)."""
    row = await conn.fetchrow(
        "SELECT * FROM uploads WHERE upload_id::text = $1 FOR UPDATE", upload_id
    )
    if row is None:
        return None
    return Upload(
        upload_id=str(row["upload_id"]),
        state=row["state"],
        refusal=row["refusal"],
        files=[UploadFile.model_validate(f) for f in json.loads(row["files"])],
        received_bytes=row["received_bytes"],
        steps=steps_from_json(row["steps"]),
        extracted=Extracted.model_validate_json(row["extracted"]) if row["extracted"] else None,
        update_id=str(row["update_id"]) if row["update_id"] else None,
    )


async def save(conn: Connection, upload: Upload, now: datetime) -> None:
    """Write the session; `now` (the handler's clock) is its last activity, which expiry
    reads (LOCKGATE_UPLOAD_EXPIRY_HOURS)."""
    await conn.execute(
        "UPDATE uploads SET state = $2, refusal = $3, received_bytes = $4, steps = $5,"
        " extracted = $6, update_id = $7::uuid, updated_at = $8 WHERE upload_id = $1::uuid",
        upload.upload_id,
        upload.state,
        upload.refusal,
        upload.received_bytes,
        steps_json(upload.steps),
        upload.extracted.model_dump_json() if upload.extracted is not None else None,
        upload.update_id,
        now,
    )


async def expire_abandoned(
    conn: Connection, idle_since: datetime, now: datetime, limit: int
) -> list[str]:
    """Expire the uploads not committed and untouched since `idle_since`, and drop their
    bytes; returns their ids. Sessions a step holds right now are skipped (their activity
    is about to move anyway)."""
    rows = await conn.fetch(
        "WITH idle AS (SELECT upload_id FROM uploads"
        "  WHERE state IN ('receiving', 'received') AND updated_at < $1"
        "  ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
        " UPDATE uploads u SET state = 'expired', received_bytes = 0, updated_at = $2"
        " FROM idle WHERE u.upload_id = idle.upload_id RETURNING u.upload_id::text AS upload_id",
        idle_since,
        now,
        limit,
    )
    expired = [row["upload_id"] for row in rows]
    await conn.execute("DELETE FROM upload_chunks WHERE upload_id = ANY($1::uuid[])", expired)
    return expired


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
