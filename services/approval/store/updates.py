"""approval's read copy of catalog updates, and the declines set here."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.contracts.approval import UpdateSort, UpdateState
from libs.contracts.catalog import UpdateSnapshot
from libs.db.pool import Connection, rows_affected
from libs.domain.references import as_id, kb_number
from services.approval.domain.updates import HIDDEN_BY_DEFAULT, ListedUpdate, Offer, Update

_COLUMNS = (
    "update_id::text",
    "kb",
    "revision",
    "origin",
    "title",
    "classification",
    "severity",
    "product_families",
    "release_date",
    "superseded_by::text[]",
    "expired_at",
    "declined_at",
    "products",
    "supersedes",
    "offered",
    "not_offered_because",
)
_UPDATE_COLUMNS = ", ".join(_COLUMNS)
U_COLUMNS = ", ".join(f"u.{column}" for column in _COLUMNS)
"""The columns `from_row` reads, qualified with the alias `u`, for joins."""


def from_row(r: asyncpg.Record) -> Update:
    return Update(
        update_id=r["update_id"],
        kb=r["kb"],
        revision=r["revision"],
        origin=r["origin"],
        title=r["title"],
        classification=r["classification"],
        severity=r["severity"],
        product_families=list(r["product_families"]),
        release_date=r["release_date"],
        superseded_by=list(r["superseded_by"]),
        expired_at=r["expired_at"],
        declined_at=r["declined_at"],
        products=list(r["products"]),
        supersedes=list(r["supersedes"]),
        offered=r["offered"],
        not_offered_because=r["not_offered_because"],
    )


async def learn(conn: Connection, snapshot: UpdateSnapshot) -> str | None:
    """Keep the newest revision seen: `new`, `revised`, or None (older or repeated).

    A new row takes the snapshot's offered state; an existing one changes it only through
    `learn_offer` (call it after this), which keeps the newest decision.
    """
    inserted: bool | None = await conn.fetchval(
        "INSERT INTO updates (update_id, kb, revision, origin, title, classification, severity,"
        " product_families, release_date, superseded_by, expired_at, products, supersedes,"
        " offered, not_offered_because, offer_revision, offer_settings_version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::uuid[],"
        "         CASE WHEN $11 THEN now() END, $12, $13, $14, $15, $3, $16)"
        " ON CONFLICT (update_id) DO UPDATE SET kb = EXCLUDED.kb, revision = EXCLUDED.revision,"
        " origin = EXCLUDED.origin, title = EXCLUDED.title,"
        " classification = EXCLUDED.classification, severity = EXCLUDED.severity,"
        " product_families = EXCLUDED.product_families, release_date = EXCLUDED.release_date,"
        " superseded_by = EXCLUDED.superseded_by, products = EXCLUDED.products,"
        " supersedes = EXCLUDED.supersedes,"
        " expired_at = coalesce(updates.expired_at, EXCLUDED.expired_at)"
        " WHERE updates.revision < EXCLUDED.revision RETURNING xmax = 0",
        uuid.UUID(snapshot.update_id),
        snapshot.kb,
        snapshot.revision,
        snapshot.origin,
        snapshot.title,
        snapshot.classification,
        snapshot.severity,
        snapshot.product_families,
        snapshot.release_date,
        snapshot.superseded_by,
        snapshot.expired,
        [p.name for p in snapshot.products],
        snapshot.supersedes,
        snapshot.offered,
        snapshot.not_offered_because,
        snapshot.settings_version,
    )
    if inserted is None:
        return None
    return "new" if inserted else "revised"


async def learn_offer(conn: Connection, offer: Offer) -> bool | None:
    """Keep whether the update is offered, unless what is kept was decided on a later
    revision or later settings (an older message arriving late changes nothing).

    Returns None if the update is unknown here, else whether its offered state changed.
    """
    row = await conn.fetchrow(
        "WITH before AS (SELECT update_id, offered FROM updates WHERE update_id = $1 FOR UPDATE)"
        " UPDATE updates u SET offered = $2, not_offered_because = $3, offer_revision = $4,"
        " offer_settings_version = $5 FROM before"
        " WHERE u.update_id = before.update_id"
        " AND u.offer_revision <= $4 AND u.offer_settings_version <= $5"
        " RETURNING before.offered <> $2 AS changed",
        uuid.UUID(offer.update_id),
        offer.offered,
        offer.not_offered_because,
        offer.revision,
        offer.settings_version,
    )
    if row is not None:
        return bool(row["changed"])
    known: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM updates WHERE update_id = $1)", uuid.UUID(offer.update_id)
    )
    return False if known else None


async def mark_superseded(conn: Connection, update_id: str, superseded_by: Sequence[str]) -> bool:
    status = await conn.execute(
        "UPDATE updates SET superseded_by = ARRAY(SELECT DISTINCT unnest(superseded_by || $2))"
        " WHERE update_id = $1",
        uuid.UUID(update_id),
        [uuid.UUID(s) for s in superseded_by],
    )
    return rows_affected(status) == 1


async def mark_expired(conn: Connection, update_id: str, at: datetime) -> bool:
    status = await conn.execute(
        "UPDATE updates SET expired_at = coalesce(expired_at, $2) WHERE update_id = $1",
        uuid.UUID(update_id),
        at,
    )
    return rows_affected(status) == 1


async def set_declined(conn: Connection, update_ids: Collection[str], at: datetime | None) -> None:
    await conn.execute(
        "UPDATE updates SET declined_at = $2 WHERE update_id = ANY ($1::uuid[])",
        list(update_ids),
        at,
    )


async def forget(conn: Connection, update_id: str) -> None:
    """A deleted update goes with its approvals (cascade)."""
    await conn.execute("DELETE FROM updates WHERE update_id = $1", uuid.UUID(update_id))


async def by_id(conn: Connection, update_id: str) -> Update | None:
    row = await conn.fetchrow(
        f"SELECT {_UPDATE_COLUMNS} FROM updates WHERE update_id = $1",
        uuid.UUID(update_id),
    )
    return None if row is None else from_row(row)


async def by_ids(conn: Connection, update_ids: Collection[str]) -> dict[str, Update]:
    """The known ones among these updates, by id."""
    rows = await conn.fetch(
        f"SELECT {_UPDATE_COLUMNS} FROM updates WHERE update_id = ANY ($1::uuid[])",
        list(update_ids),
    )
    return {update.update_id: update for update in map(from_row, rows)}


async def find(conn: Connection, reference: str) -> Update | None:
    """An update by id, or by KB number (with or without `KB`)."""
    update_id = as_id(reference)
    if update_id is not None:
        return await by_id(conn, str(update_id))
    row = await conn.fetchrow(
        f"SELECT {_UPDATE_COLUMNS} FROM updates WHERE kb = $1",
        kb_number(reference),
    )
    return None if row is None else from_row(row)


async def every(conn: Connection) -> list[Update]:
    rows = await conn.fetch(f"SELECT {_UPDATE_COLUMNS} FROM updates ORDER BY release_date, kb")
    return [from_row(r) for r in rows]


async def with_explicit(conn: Connection) -> list[Update]:
    """Updates explicitly approved on at least one group."""
    rows = await conn.fetch(
        f"SELECT {_UPDATE_COLUMNS} FROM updates"
        " WHERE update_id IN (SELECT update_id FROM explicit_approvals) ORDER BY update_id"
    )
    return [from_row(r) for r in rows]


_APPROVED = "EXISTS (SELECT 1 FROM explicit_approvals e WHERE e.update_id = u.update_id)"
STATE_SQL: dict[UpdateState, str] = {
    "declined": "u.declined_at IS NOT NULL",
    "approved": f"(u.declined_at IS NULL AND {_APPROVED})",
    "new": f"(u.declined_at IS NULL AND u.offered AND NOT {_APPROVED})",
    "not_offered": "NOT u.offered",
    "superseded": "u.superseded_by <> '{}'",
    "expired": "u.expired_at IS NOT NULL",
    "third_party": "u.origin = 'third_party'",
}
"""Each state of domain.updates.states as a condition on `updates u`, so lists filter and page
in the database (the integration tests check both agree on every state)."""

_SEVERITY_RANK = (
    "(CASE u.severity WHEN 'Low' THEN 1 WHEN 'Moderate' THEN 2 WHEN 'Important' THEN 3"
    " WHEN 'Critical' THEN 4 ELSE 0 END)"
)
SORT_SQL: dict[UpdateSort, tuple[str, ...]] = {
    "release_date": ("u.release_date",),
    "title": ("lower(u.title)",),
    "kb": ("coalesce(length(u.kb), 0)", "coalesce(u.kb, '')"),
    "classification": ("u.classification",),
    "severity": (_SEVERITY_RANK,),
    "approved_groups": ("approved_groups",),
}
"""The keys of each sort, lowest first; the update id breaks ties. Every key but
approved_groups (counted per list) matches an index of migration 0005, which a list reads
backwards for descending order: a page is read off the index, never the whole table sorted."""


@dataclass(frozen=True)
class ListQuery:
    """An update list: filters (`search` already cleaned), order and page."""

    states: Sequence[UpdateState]
    classification: str | None
    product_family: str | None
    search: str | None
    sort: UpdateSort
    descending: bool
    offset: int
    limit: int


def _where(states: Sequence[UpdateState]) -> str:
    """Filters ($1 classification, $2 product family, $3 search) and the states: any asked
    for, or none hidden by default."""
    wanted = (
        " OR ".join(STATE_SQL[state] for state in dict.fromkeys(states))
        if states
        else " AND ".join(f"NOT {STATE_SQL[state]}" for state in sorted(HIDDEN_BY_DEFAULT))
    )
    return (
        "($1::text IS NULL OR u.classification = $1)"
        " AND ($2::text IS NULL OR $2 = ANY (u.product_families))"
        " AND ($3::text IS NULL OR u.title ILIKE '%' || $3 || '%' OR u.kb ILIKE '%' || $3 || '%')"
        f" AND ({wanted})"
    )


async def listed(conn: Connection, query: ListQuery) -> tuple[list[ListedUpdate], int]:
    """One page of the updates matching the filters, in the order asked, with their number
    of explicitly approved groups; and how many match in all."""
    where = _where(query.states)
    direction = "DESC" if query.descending else "ASC"
    order = ", ".join(f"{key} {direction}" for key in (*SORT_SQL[query.sort], "u.update_id"))
    filters = (query.classification, query.product_family, query.search)
    rows = await conn.fetch(
        f"SELECT {U_COLUMNS}, (SELECT count(*) FROM explicit_approvals e"
        "   WHERE e.update_id = u.update_id) AS approved_groups"
        f" FROM updates u WHERE {where} ORDER BY {order} LIMIT $4 OFFSET $5",
        *filters,
        query.limit,
        query.offset,
    )
    total: int = await conn.fetchval(f"SELECT count(*) FROM updates u WHERE {where}", *filters)
    return [ListedUpdate(from_row(r), r["approved_groups"]) for r in rows], total
