"""The message pipeline's transaction in as few round trips as its work allows.

Through asyncpg's `conn.transaction()` on a pooled connection, a delivery costs a round trip
for BEGIN, one per statement, one for COMMIT and one more for the session reset the pool
sends when it takes the connection back: seven for a handler writing one row and one event,
each waking the database and this process in turn. `Transaction` sends the pipeline's own
statements with the ones that have to be sent anyway, as simple queries of literal SQL:

    BEGIN; INSERT INTO inbox ... ON CONFLICT DO NOTHING            (the claim)
    ... the handler's statements, one round trip each as before ...
    INSERT INTO outbox ... VALUES ...; COMMIT; <the session reset>  (events, reply, commit)

so the handler's work is wrapped in two round trips instead of five. What the transaction
does and when is unchanged: the claim comes first (a duplicate never reaches its handler),
the events and a command's reply commit with the handler's writes, and the connection goes
back to the pool as reset as asyncpg leaves it (`reset` skips what was sent with COMMIT).

Values become literals only where that is exact: text between single quotes with quotes
doubled (exact while `standard_conforming_strings` is on, PostgreSQL's default, checked per
transaction), bytes as bytea hex, text only if it holds no NUL and encodes as UTF-8.
Anything else, and very large outbox batches, goes through parameters as before.

The pipeline opens the transaction by hand, so asyncpg's `conn.transaction()` would refuse to
nest in it; on the pools' connections (`LockgateConnection`, libs/db/pool.py) it gives a
savepoint instead, as asyncpg does inside its own transactions.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import asyncpg
from asyncpg.transaction import Transaction as AsyncpgTransaction

if TYPE_CHECKING:
    from libs.db.pool import Connection

    _Connection = asyncpg.Connection[asyncpg.Record]
else:
    _Connection = asyncpg.Connection


class Unquotable(ValueError):
    """A value that cannot be written as a literal exactly (it goes through parameters)."""


def quote(value: str | bytes | None) -> str:
    """`value` as an SQL literal, exact while standard_conforming_strings is on."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"'\\x{value.hex()}'::bytea"
    if "\x00" in value:
        raise Unquotable("text holding NUL")
    try:
        value.encode()
    except UnicodeEncodeError as error:
        raise Unquotable("text that is not UTF-8") from error
    return "'" + value.replace("'", "''") + "'"


def literals_exact(conn: Connection) -> bool:
    """Whether quoted literals mean what `quote` wrote on this connection now."""
    settings: Any = conn.get_settings()
    return getattr(settings, "standard_conforming_strings", None) == "on"


_savepoints = itertools.count(1)


class Savepoint(AsyncpgTransaction):
    """`conn.transaction()` inside a transaction the pipeline opened by hand."""

    __slots__ = ("_name", "_on")

    def __init__(self, connection: _Connection) -> None:
        super().__init__(connection, None, readonly=False, deferrable=False)
        self._on = connection
        self._name = ""

    async def __aenter__(self) -> None:
        await self.start()

    async def __aexit__(self, extype: object, ex: object, tb: object) -> None:
        if extype is None:
            await self.commit()
        else:
            await self.rollback()

    async def start(self) -> None:
        if self._name:
            raise asyncpg.InterfaceError("cannot start; the savepoint is already started")
        self._name = f"lockgate_savepoint_{next(_savepoints)}"
        await self._on.execute(f"SAVEPOINT {self._name}")

    async def commit(self) -> None:
        await self._on.execute(f"RELEASE SAVEPOINT {self._name}")

    async def rollback(self) -> None:
        await self._on.execute(f"ROLLBACK TO SAVEPOINT {self._name}")


class LockgateConnection(_Connection):
    """The pools' connections: they know a transaction the pipeline opened by hand (so
    `transaction()` nests as a savepoint in it) and that the pool's reset was already sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - asyncpg's own
        super().__init__(*args, **kwargs)
        self.by_hand = False
        """A transaction opened by `Transaction.begin` is open."""
        self.reset_sent = False
        """The session reset went with the last COMMIT: the pool need not send it again."""

    # Methods, not attributes, for `Transaction`: a pool's proxy passes calls through but
    # not assignments.
    def began_by_hand(self) -> None:
        self.by_hand = True
        self.reset_sent = False

    def ended_by_hand(self, *, reset_sent: bool) -> None:
        self.by_hand = False
        self.reset_sent = reset_sent

    def transaction(
        self,
        *,
        isolation: Any = None,  # noqa: ANN401 - asyncpg's isolation literal
        readonly: bool = False,
        deferrable: bool = False,
    ) -> AsyncpgTransaction:
        if self.by_hand and self.is_in_transaction():
            if isolation not in (None, "read_committed") or readonly or deferrable:
                raise asyncpg.InterfaceError(
                    "a nested transaction takes the outer transaction's settings"
                )
            return Savepoint(self)
        return super().transaction(isolation=isolation, readonly=readonly, deferrable=deferrable)


async def reset(conn: _Connection) -> None:
    """The pools' reset (create_pool(reset=...)): what asyncpg sends, unless it already went
    with the COMMIT of the transaction that just ended."""
    if isinstance(conn, LockgateConnection):
        conn.by_hand = False
        if conn.reset_sent:
            conn.reset_sent = False
            return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


class _ByHand(Protocol):
    def began_by_hand(self) -> None: ...
    def ended_by_hand(self, *, reset_sent: bool) -> None: ...


class Transaction:
    """A transaction on `conn` opened and closed by hand, riding statements on BEGIN and
    COMMIT (see the module doc). Roll it back on every other way out (`rollback`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._hand: _ByHand | None = (
            cast("_ByHand", conn) if isinstance(getattr(conn, "by_hand", None), bool) else None
        )
        """The connection as a LockgateConnection (through a pool's proxy), if it is one."""
        self._open = False

    @property
    def literal(self) -> bool:
        """Whether literal SQL may be sent on this connection now (asked each time: a handler
        may change the setting inside the transaction, and the server reports it at once)."""
        return literals_exact(self._conn)

    async def begin(self, then: str | None = None) -> str:
        """BEGIN and, in the same round trip, the literal statement `then`; its status."""
        self._open = True
        if self._hand is not None:
            self._hand.began_by_hand()
        status: str = await self._conn.execute("BEGIN" if then is None else f"BEGIN; {then}")
        return status

    async def commit(self, before: Sequence[str] = ()) -> None:
        """The literal statements `before`, COMMIT and the session reset in one round trip."""
        statements = [*before, "COMMIT"]
        reset_query = self._conn.get_reset_query() if self._hand is not None else ""
        if reset_query:
            statements.append(reset_query.strip().rstrip(";"))
        await self._conn.execute("; ".join(statements))
        self._open = False
        if self._hand is not None:
            self._hand.ended_by_hand(reset_sent=bool(reset_query))

    async def rollback(self) -> None:
        """Roll back if still open (after any failure); a broken connection is left to the
        pool, which closes it."""
        if not self._open:
            return
        self._open = False
        if self._hand is not None:
            self._hand.ended_by_hand(reset_sent=False)
        if self._conn.is_closed() or not self._conn.is_in_transaction():
            return
        with contextlib.suppress(
            OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError
        ):
            await self._conn.execute("ROLLBACK")  # else the pool's reset rolls back or closes
