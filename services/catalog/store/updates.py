"""Updates, and the source documents they are merged from: what each said, supersedence links."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from libs.contracts.catalog import ListUpdates, Origin
from libs.db.pool import Connection, rows_affected
from services.catalog.domain.model import Advisory, SourceDocument, SourceUpdate
from services.catalog.domain.offers import OfferFacts
from services.catalog.domain.updates import (
    StoredUpdate,
    UpdateContent,
    content_from_json,
    content_json,
    from_json,
    to_json,
)

_SELECT = (
    "SELECT u.*, coalesce(("
    "   SELECT array_agg(s.update_id::text ORDER BY s.update_id) FROM supersessions e"
    "   JOIN updates s ON s.kb = e.superseding_kb WHERE e.superseded_kb = u.kb"
    " ), '{}') AS superseded_by, coalesce(("
    "   SELECT array_agg(s.kb ORDER BY s.update_id) FROM supersessions e"
    "   JOIN updates s ON s.kb = e.superseding_kb WHERE e.superseded_kb = u.kb"
    " ), '{}') AS superseded_by_kbs FROM updates u"
)


def _stored(row: asyncpg.Record) -> StoredUpdate:
    return StoredUpdate(
        update_id=str(row["update_id"]),
        origin=row["origin"],
        kb=row["kb"],
        revision=row["revision"],
        content_hash=row["content_hash"],
        content=content_from_json(row["data"]),
        superseded_at=row["superseded_at"],
        expired_at=row["expired_at"],
        superseded_by=tuple(row["superseded_by"]),
        superseded_by_kbs=tuple(row["superseded_by_kbs"]),
    )


async def lock_catalog(conn: Connection) -> None:
    """Serialise writers of updates (imports, expiry) for this transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lockgate.catalog.updates'))")


async def record_document(conn: Connection, document: SourceDocument, sha256: str) -> None:
    await conn.execute(
        "INSERT INTO documents (source, document_id, title, release_date, sha256)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, document_id) DO UPDATE"
        " SET sha256 = EXCLUDED.sha256, title = EXCLUDED.title, imported_at = now()",
        document.source,
        document.document_id,
        document.title,
        document.release_date,
        sha256,
    )


async def save_contributions(conn: Connection, document: SourceDocument) -> None:
    """What this document says of each KB (replacing what it said before)."""
    await conn.execute(
        "INSERT INTO update_contributions (kb, source, document_id, data)"
        " SELECT kb, $2, $3, data FROM unnest($1::text[], $4::jsonb[]) AS t(kb, data)"
        " ON CONFLICT (kb, source, document_id) DO UPDATE SET data = EXCLUDED.data",
        [u.kb for u in document.updates],
        document.source,
        document.document_id,
        [json.dumps(to_json(u)) for u in document.updates],
    )


async def contributions(conn: Connection, kbs: Sequence[str]) -> dict[str, list[SourceUpdate]]:
    rows = await conn.fetch(
        "SELECT kb, data FROM update_contributions WHERE kb = ANY($1::text[])"
        " ORDER BY kb, source, document_id",
        list(kbs),
    )
    found: dict[str, list[SourceUpdate]] = {}
    for row in rows:
        found.setdefault(row["kb"], []).append(from_json(json.loads(row["data"])))
    return found


async def save_links(conn: Connection, updates: Sequence[SourceUpdate]) -> int:
    """Store declared supersedence links; returns how many were new."""
    pairs = [(u.kb, old) for u in updates for old in u.supersedes if old != u.kb]
    result: str = await conn.execute(
        "INSERT INTO supersessions (superseding_kb, superseded_kb)"
        " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return rows_affected(result)


async def save_advisories(
    conn: Connection, document_id: str, advisories: Sequence[Advisory]
) -> None:
    await conn.execute(
        "INSERT INTO advisories (document_id, cve, kind, description, url, product_ids)"
        " SELECT $1, a.cve, a.kind, a.description, a.url, string_to_array(a.products, ',')"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"
        "   AS a(cve, kind, description, url, products)"
        " ON CONFLICT DO NOTHING",
        document_id,
        [a.cve for a in advisories],
        [a.kind for a in advisories],
        [a.description for a in advisories],
        [a.url for a in advisories],
        [",".join(a.product_ids) for a in advisories],
    )


async def updates_by_kb(conn: Connection, kbs: Sequence[str]) -> dict[str, StoredUpdate]:
    rows = await conn.fetch(_SELECT + " WHERE u.kb = ANY($1::text[])", list(kbs))
    return {row["kb"]: _stored(row) for row in rows}


async def update(
    conn: Connection, update_id: str | None = None, kb: str | None = None
) -> StoredUpdate | None:
    row = await conn.fetchrow(_SELECT + " WHERE u.update_id::text = $1 OR u.kb = $2", update_id, kb)
    return None if row is None else _stored(row)


async def put_update(
    conn: Connection,
    *,
    update_id: str,
    origin: Origin,
    revision: int,
    content_hash: str,
    content: UpdateContent,
    release_date: datetime,
) -> None:
    """Insert or replace the current revision of an update (its KB and families from content)."""
    await conn.execute(
        "INSERT INTO updates (update_id, origin, kb, revision, content_hash, data, release_date,"
        "                     product_families)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (update_id) DO UPDATE SET revision = EXCLUDED.revision,"
        "   content_hash = EXCLUDED.content_hash, data = EXCLUDED.data,"
        "   release_date = EXCLUDED.release_date, product_families = EXCLUDED.product_families,"
        "   updated_at = now()",
        update_id,
        origin,
        content.kb,
        revision,
        content_hash,
        content_json(content),
        release_date,
        list(content.product_families),
    )


async def mark_newly_superseded(conn: Connection, now: datetime) -> list[StoredUpdate]:
    """Flag updates that a present update now supersedes; return them (once each)."""
    rows = await conn.fetch(
        "UPDATE updates u SET superseded_at = $1 WHERE u.superseded_at IS NULL AND EXISTS ("
        "  SELECT 1 FROM supersessions e JOIN updates s ON s.kb = e.superseding_kb"
        "  WHERE e.superseded_kb = u.kb) RETURNING u.update_id",
        now,
    )
    ids = [str(row["update_id"]) for row in rows]
    found = await conn.fetch(_SELECT + " WHERE u.update_id = ANY($1::uuid[])", ids)
    return [_stored(row) for row in found]


async def expire(conn: Connection, update_id: str, now: datetime, reason: str) -> bool:
    """Expire an update; False if it already was."""
    result: str = await conn.execute(
        "UPDATE updates SET expired_at = $2, expiry_reason = $3, updated_at = now()"
        " WHERE update_id = $1::uuid AND expired_at IS NULL",
        update_id,
        now,
        reason,
    )
    return result.endswith(" 1")


async def list_updates(conn: Connection, query: ListUpdates) -> tuple[list[StoredUpdate], int]:
    where = (
        " WHERE ($1::bool IS NULL OR (u.superseded_at IS NOT NULL) = $1)"
        " AND ($2::bool IS NULL OR (u.expired_at IS NOT NULL) = $2)"
        " AND ($3::text IS NULL OR u.origin = $3)"
        " AND ($4::text IS NULL OR $4 = ANY(u.product_families))"
    )
    args = (query.superseded, query.expired, query.origin, query.product_family)
    total: int = await conn.fetchval("SELECT count(*) FROM updates u" + where, *args)
    rows = await conn.fetch(
        _SELECT + where + " ORDER BY u.release_date DESC, u.kb LIMIT $5", *args, query.limit
    )
    return [_stored(row) for row in rows], total


async def known_families(conn: Connection) -> list[str]:
    """Product categories of Microsoft updates: the settings choose among those only."""
    rows = await conn.fetch(
        "SELECT DISTINCT unnest(product_families) AS family FROM updates"
        " WHERE origin = 'microsoft' ORDER BY 1"
    )
    return [row["family"] for row in rows]


async def offer_facts(conn: Connection) -> list[OfferFacts]:
    """What the offer of every update depends on (a settings change looks at all of them)."""
    rows = await conn.fetch(
        "SELECT update_id::text, kb, origin, revision, data->>'title' AS title,"
        " data->>'classification' AS classification, product_families FROM updates"
        " ORDER BY release_date, update_id"
    )
    return [
        OfferFacts(
            update_id=row["update_id"],
            kb=row["kb"],
            title=row["title"],
            origin=row["origin"],
            revision=row["revision"],
            classification=row["classification"],
            product_families=tuple(row["product_families"]),
        )
        for row in rows
    ]


async def update_states(conn: Connection) -> dict[str, int]:
    """Updates by state for the gauges: expired first, then superseded, else active."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE expired_at IS NOT NULL) AS expired,"
        " count(*) FILTER (WHERE expired_at IS NULL AND superseded_at IS NOT NULL) AS superseded,"
        " count(*) FILTER (WHERE expired_at IS NULL AND superseded_at IS NULL) AS active"
        " FROM updates"
    )
    return dict(row) if row is not None else {}
