"""Each import of a source document: what it changed, when, from where, how long it took."""

from __future__ import annotations

from datetime import datetime

from libs.contracts.catalog import ImportRecord, ImportResult
from libs.db.pool import Connection
from services.catalog.domain.model import SourceDocument


async def record(
    conn: Connection,
    document: SourceDocument,
    *,
    result: ImportResult,
    sha256: str,
    label: str,
    sent_by: str,
    imported_at: datetime,
    duration_seconds: float,
) -> None:
    """Add one import (every import is a row, the same document's again included)."""
    await conn.execute(
        "INSERT INTO imports (source, document_id, title, release_date, label, sent_by, sha256,"
        " result, imported_at, duration_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        document.source,
        document.document_id,
        document.title,
        document.release_date,
        label,
        sent_by,
        sha256,
        result.model_dump_json(),
        imported_at,
        duration_seconds,
    )


async def recent(conn: Connection, limit: int) -> list[ImportRecord]:
    """The newest imports first."""
    rows = await conn.fetch(
        "SELECT * FROM imports ORDER BY imported_at DESC, import_id DESC LIMIT $1", limit
    )
    return [
        ImportRecord.model_validate(
            {
                **ImportResult.model_validate_json(row["result"]).model_dump(),
                "import_id": row["import_id"],
                "source": row["source"],
                "title": row["title"],
                "release_date": row["release_date"],
                "label": row["label"],
                "sent_by": row["sent_by"],
                "sha256": row["sha256"],
                "imported_at": row["imported_at"],
                "duration_seconds": row["duration_seconds"],
            }
        )
        for row in rows
    ]
