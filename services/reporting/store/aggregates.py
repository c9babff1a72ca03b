"""Counters per update and state, kept with every state change so fleet-wide summaries read a
few rows; and the updates whose counts changed since they were last published."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from libs.contracts import reporting as r
from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection
from services.reporting.domain.counts import (
    COUNTED,
    CounterMove,
    Reach,
    StatesByUpdate,
    fleet_counts,
    total_reach,
)
from services.reporting.domain.gauges import StateGauge
from services.reporting.store.computers import COLUMNS


async def apply_deltas(conn: Connection, moves: Sequence[CounterMove]) -> None:
    """Move the counters (in the order given) and mark their updates changed (in update
    order), in one statement."""
    if not moves:
        return
    await conn.execute(
        "WITH moved AS (INSERT INTO update_counts (update_id, state, n)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])"
        " ON CONFLICT (update_id, state) DO UPDATE SET n = update_counts.n + EXCLUDED.n"
        " RETURNING update_id)"
        " INSERT INTO compliance_dirty (update_id) SELECT DISTINCT update_id FROM moved"
        " ORDER BY update_id ON CONFLICT DO NOTHING",
        [m.update_id for m in moves],
        [m.state for m in moves],
        [m.n for m in moves],
    )


async def mark_changed(conn: Connection, update_id: str) -> None:
    """The update's counts are to be published again."""
    await conn.execute(
        "INSERT INTO compliance_dirty (update_id) VALUES ($1) ON CONFLICT DO NOTHING",
        uuid.UUID(update_id),
    )


async def take_changed(conn: Connection, limit: int) -> list[str]:
    """Up to `limit` changed updates, no longer marked (others' taken ones are skipped)."""
    rows = await conn.fetch(
        "DELETE FROM compliance_dirty WHERE update_id IN (SELECT update_id FROM compliance_dirty"
        " LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING update_id::text",
        limit,
    )
    return [row["update_id"] for row in rows]


async def delete_update(conn: Connection, update_id: str) -> None:
    """The update's counters."""
    await conn.execute("DELETE FROM update_counts WHERE update_id = $1", uuid.UUID(update_id))


_REACH = (
    # Per update not approved for All computers: the managed computers its approvals target
    # (an effective approval other than do not install for one of their groups), how many
    # of them reported on it, are silent, or both.
    "WITH t AS (SELECT DISTINCT a.update_id, m.computer_id FROM group_approvals a"
    "   JOIN memberships m ON m.group_id = a.group_id"
    "   WHERE a.update_id = ANY ($1::uuid[]) AND a.action <> 'do_not_install')"
    " SELECT t.update_id::text, count(*) AS targeted,"
    " count(*) FILTER (WHERE cu.state <> 'none') AS reported,"
    " count(*) FILTER (WHERE c.last_contact_at < $2) AS silent,"
    " count(*) FILTER (WHERE cu.state <> 'none' AND c.last_contact_at < $2) AS both"
    " FROM t JOIN computers c USING (computer_id)"
    " LEFT JOIN computer_updates cu USING (update_id, computer_id) GROUP BY t.update_id"
)


async def _reach(
    conn: Connection,
    ids: list[uuid.UUID],
    by_update: StatesByUpdate,
    silent: StatesByUpdate,
    silent_since: datetime,
) -> dict[str, Reach]:
    """Per update: its reach. Approved for All computers it reaches every computer, read
    from counters (no scan of the fleet); otherwise from its groups' members."""
    everywhere = {
        row["update_id"]
        for row in await conn.fetch(
            "SELECT update_id::text FROM group_approvals WHERE update_id = ANY ($1::uuid[])"
            " AND group_id = $2::uuid AND action <> 'do_not_install'",
            ids,
            ROOT_GROUP_ID,
        )
    }
    found: dict[str, Reach] = {}
    if everywhere:
        fleet = await conn.fetchval("SELECT count(*) FROM computers")
        quiet = await conn.fetchval(
            "SELECT count(*) FROM computers WHERE last_contact_at < $1", silent_since
        )
        for u in everywhere:
            found[u] = Reach(
                targeted=fleet,
                targeted_reported=sum(by_update.get(u, {}).get(s, 0) for s in COUNTED),
                targeted_silent=quiet,
                targeted_both=sum(silent.get(u, {}).get(s, 0) for s in COUNTED),
            )
    rest = [i for i in ids if str(i) not in everywhere]
    if rest:
        for row in await conn.fetch(_REACH, rest, silent_since):
            found[row["update_id"]] = Reach(
                row["targeted"], row["reported"], row["silent"], row["both"]
            )
    return found


async def _silent_states(
    conn: Connection, ids: list[uuid.UUID], silent_since: datetime
) -> StatesByUpdate:
    """Per update: silent computers per state they last reported."""
    rows = await conn.fetch(
        "SELECT cu.update_id::text, cu.state, count(*) AS n FROM computers c"
        " JOIN computer_updates cu USING (computer_id) WHERE c.last_contact_at < $2"
        " AND cu.update_id = ANY ($1::uuid[]) AND cu.state <> 'none' GROUP BY 1, 2",
        ids,
        silent_since,
    )
    found: StatesByUpdate = {}
    for row in rows:
        found.setdefault(row["update_id"], {})[row["state"]] = row["n"]
    return found


async def compliance(
    conn: Connection, update_ids: Sequence[str], silent_since: datetime
) -> list[r.UpdateCompliance]:
    """Counts of these updates, from the counters (fast at any fleet size), with no status
    and not reporting (computers silent since `silent_since`)."""
    ids = [uuid.UUID(u) for u in update_ids]
    updates = await conn.fetch(
        "SELECT u.update_id::text, u.kb, u.title, u.classification, u.superseded,"
        " EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = u.update_id) AS approved"
        " FROM updates u WHERE u.update_id = ANY ($1::uuid[])",
        ids,
    )
    counts = await conn.fetch(
        "SELECT update_id::text, state, n FROM update_counts WHERE update_id = ANY ($1::uuid[])",
        ids,
    )
    by_update: StatesByUpdate = {}
    for row in counts:
        by_update.setdefault(row["update_id"], {})[row["state"]] = row["n"]
    silent = await _silent_states(conn, ids, silent_since)
    reach = await _reach(conn, ids, by_update, silent, silent_since)
    return [
        r.UpdateCompliance(
            update_id=row["update_id"],
            kb=row["kb"],
            title=row["title"],
            classification=row["classification"],
            superseded=row["superseded"],
            approved=row["approved"],
            counts=fleet_counts(
                by_update.get(row["update_id"], {}),
                silent.get(row["update_id"], {}),
                reach.get(row["update_id"], Reach()),
            ),
        )
        for row in updates
    ]


async def fleet_totals(conn: Connection, silent_since: datetime) -> r.StateCounts:
    """The counts of every reported update added up (the overview's totals), from the
    counters: per state over the fleet, those of the silent computers (their per-computer
    counters: no scan of reports), and the reach of the approved updates (as `compliance`
    reads it: for an approval of All computers from counters, for other groups from their
    members)."""
    reported = {
        row["state"]: int(row["n"])
        for row in await conn.fetch(
            "SELECT c.state, sum(c.n) AS n FROM update_counts c JOIN updates u USING (update_id)"
            " WHERE u.declined_at IS NULL GROUP BY c.state"
        )
    }
    quiet = await conn.fetchrow(
        "SELECT "
        + ", ".join(f"coalesce(sum({column}), 0) AS {column}" for column in COLUMNS.values())
        + " FROM computers WHERE last_contact_at < $1",
        silent_since,
    )
    silent = {state: int(quiet[column]) if quiet else 0 for state, column in COLUMNS.items()}
    approved = [
        row["update_id"]
        for row in await conn.fetch(
            "SELECT DISTINCT a.update_id FROM group_approvals a JOIN updates u USING (update_id)"
            " WHERE u.declined_at IS NULL AND a.action <> 'do_not_install'"
        )
    ]
    reach: dict[str, Reach] = {}
    if approved:
        by_update: StatesByUpdate = {}
        for row in await conn.fetch(
            "SELECT update_id::text, state, n FROM update_counts"
            " WHERE update_id = ANY ($1::uuid[])",
            approved,
        ):
            by_update.setdefault(row["update_id"], {})[row["state"]] = row["n"]
        silent_states = await _silent_states(conn, approved, silent_since)
        reach = await _reach(conn, approved, by_update, silent_states, silent_since)
    return fleet_counts(reported, silent, total_reach(reach.values()))


def _contains(column: str, text: str) -> str:
    """A case-blind "contains" of `text` (a parameter) in `column` (no LIKE escapes needed)."""
    return f"strpos(lower({column}), lower({text})) > 0"


async def reported_updates(
    conn: Connection,
    page: r.Page,
    *,
    silent_since: datetime,
    failed: bool = False,
    search: str | None = None,
) -> tuple[list[str], int]:
    """Updates with reports or approvals, most needed first (declined ones left out); with
    `failed`, only those whose counts show a failed computer (one in contact: the counter
    less the silent computers failed on it, few and read by index); with `search`, only
    those whose title or KB number contains it, in any case."""
    conditions = [
        "u.declined_at IS NULL",
        (
            "(EXISTS (SELECT 1 FROM update_counts c WHERE c.update_id = u.update_id AND c.n > 0)"
            " OR EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = u.update_id))"
        ),
    ]
    args: list[object] = [page.offset, page.limit]

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if failed:
        conditions.append(
            "EXISTS (SELECT 1 FROM update_counts f WHERE f.update_id = u.update_id"
            " AND f.state = 'failed' AND f.n > (SELECT count(*) FROM computers k"
            "   JOIN computer_updates cu ON cu.computer_id = k.computer_id"
            "   AND cu.update_id = f.update_id"
            f"   WHERE k.last_contact_at < {arg(silent_since)} AND cu.state = 'failed'))"
        )
    if search:
        text = arg(search)
        in_title, in_kb = _contains("u.title", text), _contains("'KB' || u.kb", text)
        conditions.append(f"({in_title} OR {in_kb})")
    rows = await conn.fetch(
        "SELECT u.update_id::text, count(*) OVER () AS total FROM updates u"
        f" WHERE {' AND '.join(conditions)}"
        " ORDER BY (SELECT coalesce(sum(n), 0) FROM update_counts c WHERE c.update_id ="
        " u.update_id AND c.state IN ('needed', 'failed')) DESC, u.kb, u.update_id"
        " OFFSET $1 LIMIT $2",
        *args,
    )
    return [row["update_id"] for row in rows], (rows[0]["total"] if rows else 0)


async def new_updates_to_approve(conn: Connection) -> bool:
    """A managed computer needs an update that is offered and neither approved nor declined."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM update_counts c JOIN updates u USING (update_id)"
        " WHERE c.state = 'needed' AND c.n > 0 AND u.declined_at IS NULL AND u.offered"
        " AND NOT EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = c.update_id))"
    )
    return found


async def by_classification(conn: Connection) -> list[StateGauge]:
    """Computers per (classification, severity, state) over updates not declined (the sum is
    a numeric in PostgreSQL: read as an int)."""
    rows = await conn.fetch(
        "SELECT u.classification, coalesce(u.severity, 'none') AS severity, c.state,"
        " sum(c.n) AS n FROM update_counts c JOIN updates u USING (update_id)"
        " WHERE u.declined_at IS NULL GROUP BY 1, 2, 3"
    )
    return [
        StateGauge(row["classification"], row["severity"], row["state"], int(row["n"]))
        for row in rows
    ]
