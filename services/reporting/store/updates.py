"""The read copy of catalog updates, and the declines approval announces."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from datetime import datetime

from libs.contracts.catalog import ReturnCode, UpdateOfferChanged, UpdateSnapshot
from libs.db.pool import Connection
from libs.domain.references import as_id, kb_number
from services.reporting.domain.batches import KnownUpdate


async def put(conn: Connection, update: UpdateSnapshot) -> None:
    """Keep the newest revision seen; superseded stays superseded; the offered state moves
    only forward in (revision, settings version)."""
    await conn.execute(
        "INSERT INTO updates (update_id, revision, kb, title, classification, severity,"
        " return_codes, superseded, offered, offer_revision, offer_settings_version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $2, $10)"
        " ON CONFLICT (update_id) DO UPDATE SET revision = EXCLUDED.revision, kb = EXCLUDED.kb,"
        " title = EXCLUDED.title, classification = EXCLUDED.classification,"
        " severity = EXCLUDED.severity, return_codes = EXCLUDED.return_codes,"
        " superseded = updates.superseded OR EXCLUDED.superseded,"
        " offered = CASE WHEN updates.offer_settings_version <= EXCLUDED.offer_settings_version"
        "           THEN EXCLUDED.offered ELSE updates.offered END,"
        " offer_revision = EXCLUDED.offer_revision,"
        " offer_settings_version = greatest(updates.offer_settings_version,"
        "                                   EXCLUDED.offer_settings_version)"
        " WHERE updates.revision < EXCLUDED.revision",
        uuid.UUID(update.update_id),
        update.revision,
        update.kb,
        update.title,
        update.classification,
        update.severity,
        json.dumps([c.model_dump() for c in update.return_codes]),
        bool(update.superseded_by),
        update.offered,
        update.settings_version,
    )


async def learn_offer(conn: Connection, offer: UpdateOfferChanged) -> None:
    """Offered again or withdrawn, unless what is kept was decided on a later revision or
    later settings; an update not known yet takes its state from its snapshot."""
    await conn.execute(
        "UPDATE updates SET offered = $2, offer_revision = $3, offer_settings_version = $4"
        " WHERE update_id = $1 AND offer_revision <= $3 AND offer_settings_version <= $4",
        uuid.UUID(offer.update_id),
        offer.offered,
        offer.revision,
        offer.settings_version,
    )


async def mark_superseded(conn: Connection, update_id: str) -> None:
    await conn.execute(
        "UPDATE updates SET superseded = true WHERE update_id = $1", uuid.UUID(update_id)
    )


async def set_declined(conn: Connection, update_id: str, at: datetime | None) -> None:
    """Declined at `at`, or approved again (None)."""
    await conn.execute(
        "UPDATE updates SET declined_at = $2 WHERE update_id = $1", uuid.UUID(update_id), at
    )


async def delete(conn: Connection, update_id: str) -> None:
    """The update's row (it waits for ingest batches holding it: see known())."""
    await conn.execute("DELETE FROM updates WHERE update_id = $1", uuid.UUID(update_id))


@functools.lru_cache(maxsize=1024)
def _return_codes(text: str) -> tuple[ReturnCode, ...]:
    """An update's return-code map read from its stored JSON; most updates share one text
    (`[]`, the default map), so each text is validated once (ReturnCode is frozen)."""
    return tuple(ReturnCode.model_validate(c) for c in json.loads(text))


async def known(
    conn: Connection, update_ids: Sequence[str], computer_ids: Sequence[str]
) -> tuple[list[KnownUpdate], set[str]]:
    """Those of these updates reporting knows, held until the transaction ends, and (in the
    same round trip) those of these computers it knows.

    FOR SHARE: a decline (or a deletion) of one of these updates waits for this batch to
    commit, and this batch waits for one in progress, then reads it declined. Without it a
    batch that read "not declined" could write states after the decline deleted them.
    """
    rows = await conn.fetch(
        "WITH u AS (SELECT update_id::text AS id, return_codes::text AS codes,"
        "   declined_at IS NOT NULL AS declined FROM updates"
        "   WHERE update_id = ANY ($1::uuid[]) ORDER BY update_id FOR SHARE)"
        " SELECT id, codes, declined FROM u UNION ALL"
        " SELECT computer_id, NULL, false FROM computers WHERE computer_id = ANY ($2::text[])",
        list(update_ids),
        list(computer_ids),
    )
    updates = [
        KnownUpdate(
            update_id=row["id"],
            return_codes=list(_return_codes(row["codes"])),
            declined=row["declined"],
        )
        for row in rows
        if row["codes"] is not None
    ]
    return updates, {row["id"] for row in rows if row["codes"] is None}


async def find(conn: Connection, reference: str) -> str | None:
    """The id of an update given by id or KB number."""
    found: str | None = await conn.fetchval(
        "SELECT update_id::text FROM updates WHERE update_id = $1::uuid OR kb = $2 LIMIT 1",
        as_id(reference),
        kb_number(reference),
    )
    return found
