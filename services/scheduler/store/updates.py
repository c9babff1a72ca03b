"""The read copy of the catalog's update facts (the newest revision of each)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from libs.contracts.catalog import Package, ReturnCode, UpdateSnapshot
from libs.db.pool import Connection, rows_affected
from services.scheduler.domain.plans import UpdateFacts


async def put(conn: Connection, update: UpdateSnapshot) -> bool:
    """Keep the newest revision's facts; True when they changed."""
    package = update.package
    status = await conn.execute(
        "INSERT INTO updates (update_id, revision, kb, title, restart, command_line, return_codes,"
        "                     package, sha256)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9)"
        " ON CONFLICT (update_id) DO UPDATE SET"
        " revision = EXCLUDED.revision, kb = EXCLUDED.kb, title = EXCLUDED.title,"
        " restart = EXCLUDED.restart, command_line = EXCLUDED.command_line,"
        " return_codes = EXCLUDED.return_codes, package = EXCLUDED.package,"
        " sha256 = EXCLUDED.sha256 WHERE updates.revision < EXCLUDED.revision",
        uuid.UUID(update.update_id),
        update.revision,
        update.kb,
        update.title,
        update.restart,
        None if package is None else package.command_line,
        json.dumps([r.model_dump() for r in update.return_codes]),
        None if package is None else package.model_dump_json(),
        update.sha256 if package is not None else None,
    )
    return rows_affected(status) == 1


async def delete(conn: Connection, update_id: str) -> None:
    await conn.execute("DELETE FROM updates WHERE update_id = $1", uuid.UUID(update_id))


async def facts(conn: Connection, update_ids: Sequence[str]) -> dict[str, UpdateFacts]:
    """The facts of these updates, by id (updates not known yet are left out)."""
    rows = await conn.fetch(
        "SELECT update_id::text, kb, title, restart, command_line, return_codes,"
        " package::text AS package, sha256 FROM updates WHERE update_id = ANY ($1::uuid[])",
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
        )
        for r in rows
    }
