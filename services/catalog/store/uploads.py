"""Upload sessions and the bytes they receive; the storage quota they count against."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime

import asyncpg

from libs.contracts.catalog import UploadFile
from libs.contracts.uploads import Extracted, UploadState
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


def _upload(row: asyncpg.Record, received_by_file: Mapping[str, int]) -> Upload:
    return Upload(
        upload_id=str(row["upload_id"]),
        state=row["state"],
        refusal=row["refusal"],
        files=[UploadFile.model_validate(f) for f in json.loads(row["files"])],
        received_bytes=row["received_bytes"],
        steps=steps_from_json(row["steps"]),
        extracted=Extracted.model_validate_json(row["extracted"]) if row["extracted"] else None,
        update_id=str(row["update_id"]) if row["update_id"] else None,
        received_by_file=dict(received_by_file),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _received_by_file(
    conn: Connection, upload_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Bytes stored per upload and declared path (only paths with bytes appear)."""
    if not upload_ids:
        return {}
    rows = await conn.fetch(
        "SELECT upload_id::text AS upload_id, path, sum(length(data))::bigint AS received"
        " FROM upload_chunks WHERE upload_id = ANY($1::uuid[]) GROUP BY upload_id, path",
        list(upload_ids),
    )
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["upload_id"], {})[row["path"]] = row["received"]
    return found


async def load(conn: Connection, upload_id: str) -> Upload | None:
    """The session, locked for this transaction (steps of one upload run one at a time)."""
    row = await conn.fetchrow(
        "SELECT * FROM uploads WHERE upload_id::text = $1 FOR UPDATE", upload_id
    )
    if row is None:
        return None
    # Only an upload still receiving has a partial file; in any other state the session's
    # view knows each file's bytes from the state alone.
    received = (
        await _received_by_file(conn, [str(row["upload_id"])])
        if row["state"] == "receiving"
        else {}
    )
    return _upload(row, received.get(str(row["upload_id"]), {}))


async def recent(conn: Connection, states: Sequence[UploadState], limit: int) -> list[Upload]:
    """The newest sessions (by when they were started), only those in `states` unless it is
    empty; read without locks (a step under way shows as it was before it)."""
    rows = await conn.fetch(
        "SELECT * FROM uploads WHERE cardinality($1::text[]) = 0 OR state = ANY($1::text[])"
        " ORDER BY created_at DESC, upload_id DESC LIMIT $2",
        list(states),
        limit,
    )
    receiving = [str(row["upload_id"]) for row in rows if row["state"] == "receiving"]
    received = await _received_by_file(conn, receiving)
    return [_upload(row, received.get(str(row["upload_id"]), {})) for row in rows]


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
