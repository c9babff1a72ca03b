"""Inbox: one row per (message id, handler), written in the handler's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from libs.db.pool import Connection, Pool, rows_affected
from libs.db.unit_of_work import quote


@dataclass(frozen=True)
class StoredReply:
    """The reply a command produced the first time, resent when the same request comes again."""

    status: str
    body: bytes


async def claim(conn: Connection, message_id: str, handler: str) -> bool:
    """Record that `handler` handles `message_id`; False when it already did.

    Call inside the handler's transaction: if the transaction rolls back the claim does too,
    and a concurrent claim of the same id waits for this transaction to end.
    """
    row = await conn.fetchval(
        "INSERT INTO inbox (message_id, handler) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true",
        message_id,
        handler,
    )
    return bool(row)


def claim_sql(message_id: str, handler: str) -> str:
    """`claim` as literal SQL, to ride on BEGIN (libs/db/unit_of_work.py); its status is
    `INSERT 0 1` when claimed. Raises Unquotable when an id cannot be a literal."""
    return (
        "INSERT INTO inbox (message_id, handler)"
        f" VALUES ({quote(message_id)}, {quote(handler)}) ON CONFLICT DO NOTHING"
    )


def claimed(status: str) -> bool:
    """Whether the status of `claim_sql` says the row was claimed."""
    return rows_affected(status) == 1


def store_reply_sql(message_id: str, handler: str, status: str, body: bytes) -> str:
    """`store_reply` as literal SQL, to ride on COMMIT. Raises Unquotable like `claim_sql`."""
    return (
        f"UPDATE inbox SET reply_status = {quote(status)}, reply = {quote(body)}"
        f" WHERE message_id = {quote(message_id)} AND handler = {quote(handler)}"
    )


async def store_reply(
    conn: Connection, message_id: str, handler: str, status: str, body: bytes
) -> None:
    await conn.execute(
        "UPDATE inbox SET reply_status = $3, reply = $4 WHERE message_id = $1 AND handler = $2",
        message_id,
        handler,
        status,
        body,
    )


async def stored_reply(conn: Connection, message_id: str, handler: str) -> StoredReply | None:
    row = await conn.fetchrow(
        "SELECT reply_status, reply FROM inbox WHERE message_id = $1 AND handler = $2",
        message_id,
        handler,
    )
    if row is None or row["reply_status"] is None:
        return None
    return StoredReply(row["reply_status"], bytes(row["reply"]))


async def purge(pool: Pool, older_than: timedelta) -> int:
    """Forget handled ids older than `older_than` (longer than any redelivery can take)."""
    status: str = await pool.execute(
        "DELETE FROM inbox WHERE processed_at < now() - $1::interval", older_than
    )
    return rows_affected(status)


async def claim_many(conn: Connection, message_ids: list[str], handler: str) -> set[str]:
    """Claim many ids at once; returns those not handled before (in this transaction)."""
    rows = await conn.fetch(
        "INSERT INTO inbox (message_id, handler) SELECT unnest($1::text[]), $2"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        message_ids,
        handler,
    )
    return {r["message_id"] for r in rows}
