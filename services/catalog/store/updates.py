"""Updates, and the source documents they are merged from: what each said, supersedence links."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.contracts.catalog import ListUpdates, Origin
from libs.db.pool import Connection
from services.catalog.domain.model import SourceDocument, SourceUpdate
from services.catalog.domain.offers import OfferFacts
from services.catalog.domain.updates import (
    StoredUpdate,
    UpdateContent,
    content_from_json,
    content_json,
    from_json,
    to_json,
)

_COLUMNS = (
    "SELECT u.*, coalesce(("
    "   SELECT array_agg(s.update_id::text ORDER BY s.update_id) FROM supersessions e"
    "   JOIN updates s ON s.kb = e.superseding_kb WHERE e.superseded_kb = u.kb"
    " ), '{}') AS superseded_by, coalesce(("
    "   SELECT array_agg(s.kb ORDER BY s.update_id) FROM supersessions e"
    "   JOIN updates s ON s.kb = e.superseding_kb WHERE e.superseded_kb = u.kb"
    " ), '{}') AS superseded_by_kbs"
)
"""An update row as `u` with who supersedes it (what _stored reads)."""
_SELECT = _COLUMNS + " FROM updates u"


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


async def save_document(conn: Connection, document: SourceDocument, sha256: str) -> int:
    """Record an imported document with what it says, in one statement: the document, its
    contribution to each KB (replacing what it said before), the supersedence links it
    declares and its advisories. Returns how many of the links were new.

    Arrays go as text[] (cast in SQL), which asyncpg encodes without first asking the server
    about the array type on each new connection."""
    pairs = [(u.kb, old) for u in document.updates for old in u.supersedes if old != u.kb]
    advisories = document.advisories
    new_links: int = await conn.fetchval(
        "WITH document AS ("
        "  INSERT INTO documents (source, document_id, title, release_date, sha256)"
        "  VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, document_id) DO UPDATE"
        "  SET sha256 = EXCLUDED.sha256, title = EXCLUDED.title, imported_at = now()"
        "), contributions AS ("
        "  INSERT INTO update_contributions (kb, source, document_id, data)"
        "  SELECT t.kb, $1, $2, t.data::jsonb FROM unnest($6::text[], $7::text[]) AS t(kb, data)"
        "  ON CONFLICT (kb, source, document_id) DO UPDATE SET data = EXCLUDED.data"
        "), advisories AS ("
        "  INSERT INTO advisories (document_id, cve, kind, description, url, product_ids)"
        "  SELECT $2, a.cve, a.kind, a.description, a.url, string_to_array(a.products, ',')"
        "  FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[])"
        "    AS a(cve, kind, description, url, products)"
        "  ON CONFLICT DO NOTHING"
        "), links AS ("
        "  INSERT INTO supersessions (superseding_kb, superseded_kb)"
        "  SELECT * FROM unnest($8::text[], $9::text[]) ON CONFLICT DO NOTHING RETURNING 1"
        ") SELECT count(*) FROM links",
        document.source,
        document.document_id,
        document.title,
        document.release_date,
        sha256,
        [u.kb for u in document.updates],
        [json.dumps(to_json(u)) for u in document.updates],
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        [a.cve for a in advisories],
        [a.kind for a in advisories],
        [a.description for a in advisories],
        [a.url for a in advisories],
        [",".join(a.product_ids) for a in advisories],
    )
    return new_links


async def import_state(
    conn: Connection, kbs: Sequence[str]
) -> tuple[dict[str, list[SourceUpdate]], dict[str, StoredUpdate]]:
    """For each KB, what every document said of it (by source, then document) and its update
    as stored, if any: one statement."""
    rows = await conn.fetch(
        "SELECT k.kb AS wanted_kb, (SELECT json_agg(c.data ORDER BY c.source, c.document_id)"
        "   FROM update_contributions c WHERE c.kb = k.kb)::text AS contributions, e.*"
        " FROM unnest($1::text[]) AS k(kb)"
        " LEFT JOIN LATERAL (" + _SELECT + " WHERE u.kb = k.kb) e ON true",
        list(kbs),
    )
    said: dict[str, list[SourceUpdate]] = {}
    stored: dict[str, StoredUpdate] = {}
    for row in rows:
        kb = row["wanted_kb"]
        if row["contributions"] is not None:
            said[kb] = [from_json(data) for data in json.loads(row["contributions"])]
        if row["update_id"] is not None:
            stored[kb] = _stored(row)
    return said, stored


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


@dataclass(frozen=True)
class UpdateWrite:
    """One update's new current revision, as put_updates writes it."""

    update_id: str
    revision: int
    content_hash: str
    content: UpdateContent
    release_date: datetime


async def put_updates(conn: Connection, origin: Origin, writes: Sequence[UpdateWrite]) -> None:
    """Insert or replace the current revision of many updates in one statement (an import's
    whole batch): what put_update does for one, its product families read from the content.
    Every array goes as text[] and is cast in SQL (see save_document)."""
    if not writes:
        return
    await conn.execute(
        "INSERT INTO updates (update_id, origin, kb, revision, content_hash, data, release_date,"
        "                     product_families)"
        " SELECT t.update_id::uuid, $2, t.kb, t.revision::int, t.content_hash, t.data::jsonb,"
        "   t.release_date::timestamptz,"
        "   ARRAY(SELECT jsonb_array_elements_text(t.data::jsonb -> 'product_families'))"
        " FROM unnest($1::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])"
        "   AS t(update_id, kb, revision, content_hash, data, release_date)"
        " ON CONFLICT (update_id) DO UPDATE SET revision = EXCLUDED.revision,"
        "   content_hash = EXCLUDED.content_hash, data = EXCLUDED.data,"
        "   release_date = EXCLUDED.release_date, product_families = EXCLUDED.product_families,"
        "   updated_at = now()",
        [w.update_id for w in writes],
        origin,
        [w.content.kb for w in writes],
        [str(w.revision) for w in writes],
        [w.content_hash for w in writes],
        [content_json(w.content) for w in writes],
        [w.release_date.isoformat() for w in writes],
    )


async def supersede_and_read(
    conn: Connection, now: datetime, kbs: Sequence[str]
) -> tuple[list[StoredUpdate], dict[str, StoredUpdate]]:
    """Flag updates that a present update now supersedes, and read the updates of `kbs`: the
    updates newly flagged (once each), and those of `kbs` by KB, all as they are now.

    One statement: flagged rows come back as the UPDATE left them, the others as they were
    (the UPDATE changed none of them); who supersedes whom is read from updates and
    supersessions, which the UPDATE does not change."""
    rows = await conn.fetch(
        "WITH marked AS ("
        "  UPDATE updates u SET superseded_at = $1 WHERE u.superseded_at IS NULL AND EXISTS ("
        "    SELECT 1 FROM supersessions e JOIN updates s ON s.kb = e.superseding_kb"
        "    WHERE e.superseded_kb = u.kb) RETURNING u.*"
        ") " + _COLUMNS + ", true AS marked FROM marked u"
        " UNION ALL " + _COLUMNS + ", false FROM updates u WHERE u.kb = ANY($2::text[])"
        "   AND u.update_id NOT IN (SELECT update_id FROM marked)",
        now,
        list(kbs),
    )
    marked: list[StoredUpdate] = []
    wanted = set(kbs)
    read: dict[str, StoredUpdate] = {}
    for row in rows:
        update = _stored(row)
        if row["marked"]:
            marked.append(update)
        if update.kb in wanted:
            read[update.kb] = update
    return marked, read


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
