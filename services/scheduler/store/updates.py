"""The read copy of the catalog's update facts (the newest revision of each)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from libs.contracts.catalog import Package, ReturnCode, UpdateOfferChanged, UpdateSnapshot
from libs.db.pool import Connection, rows_affected
from services.scheduler.domain.plans import UpdateFacts


async def put(conn: Connection, update: UpdateSnapshot) -> bool:
    """Keep the newest revision's facts; True when they changed."""
    package = update.package
    status = await conn.execute(
        "INSERT INTO updates (update_id, revision, kb, title, restart, command_line, return_codes,"
        "                     package, sha256, offered, offered_revision, settings_version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $2, $11)"
        " ON CONFLICT (update_id) DO UPDATE SET"
        " revision = EXCLUDED.revision, kb = EXCLUDED.kb, title = EXCLUDED.title,"
        " restart = EXCLUDED.restart, command_line = EXCLUDED.command_line,"
        " return_codes = EXCLUDED.return_codes, package = EXCLUDED.package,"
        " sha256 = EXCLUDED.sha256,"
        # A newer revision's offered state wins unless an event decided it under newer settings.
        " offered = CASE WHEN EXCLUDED.settings_version >= updates.settings_version"
        "   THEN EXCLUDED.offered ELSE updates.offered END,"
        " offered_revision = CASE WHEN EXCLUDED.settings_version >= updates.settings_version"
        "   THEN EXCLUDED.offered_revision ELSE updates.offered_revision END,"
        " settings_version = greatest(EXCLUDED.settings_version, updates.settings_version)"
        " WHERE updates.revision < EXCLUDED.revision",
        uuid.UUID(update.update_id),
        update.revision,
        update.kb,
        update.title,
        update.restart,
        None if package is None else package.command_line,
        json.dumps([r.model_dump() for r in update.return_codes]),
        None if package is None else package.model_dump_json(),
        update.sha256 if package is not None else None,
        update.offered,
        update.settings_version,
    )
    return rows_affected(status) == 1


async def set_offered(conn: Connection, change: UpdateOfferChanged) -> bool:
    """Keep an offered/withdrawn decision unless the state kept is newer (a higher revision
    or settings version); True when the update's offered state changed."""
    changed: bool | None = await conn.fetchval(
        "UPDATE updates u SET offered = $2, offered_revision = $3, settings_version = $4"
        " FROM updates before WHERE u.update_id = $1 AND before.update_id = $1"
        " AND u.offered_revision <= $3 AND u.settings_version <= $4"
        " RETURNING before.offered <> $2",
        uuid.UUID(change.update_id),
        change.offered,
        change.revision,
        change.settings_version,
    )
    return bool(changed)


async def delete(conn: Connection, update_id: str) -> None:
    await conn.execute("DELETE FROM updates WHERE update_id = $1", uuid.UUID(update_id))


async def facts(conn: Connection, update_ids: Sequence[str]) -> dict[str, UpdateFacts]:
    """The facts of these updates, by id (updates not known yet are left out)."""
    rows = await conn.fetch(
        "SELECT update_id::text, kb, title, restart, command_line, return_codes,"
        " package::text AS package, sha256, offered FROM updates"
        " WHERE update_id = ANY ($1::uuid[])",
        list(update_ids),
    )
    return {
        r["update_id"]: UpdateFacts(
            kb=r["kb"],
            title=r["title"],
            restart=r["restart"],
            command_line=r["command_line"],
            return_codes=[ReturnCode.model_validate(c) for c in json.loads(r["return_codes"])],
            package=None if r["package"] is None else Package.model_validate_json(r["package"]),
            sha256=r["sha256"],
            offered=r["offered"],
        )
        for r in rows
    }
