"""The state of each update on each computer, and the history of install attempts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from libs.contracts import reporting as r
from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection
from libs.domain.agent_reports import NO_REPORT, RESTART_COMPLETES, STICKY, Observation
from services.reporting.domain.counts import (
    ComputerMove,
    StatesByUpdate,
    behind_states,
)

# The (computer, update) pairs an approval targets: an effective approval other than do not
# install for one of the computer's groups, or for All computers (every computer is in it;
# effective approvals carry inheritance already). $1: the computers, $2: All computers.
_TARGETED_PAIRS = (
    "SELECT m.computer_id, a.update_id FROM memberships m JOIN group_approvals a"
    "   ON a.group_id = m.group_id AND a.action <> 'do_not_install'"
    " WHERE m.computer_id = ANY ($1::text[])"
    " UNION SELECT c, a.update_id FROM unnest($1::text[]) AS c, group_approvals a"
    " WHERE a.group_id = $2::uuid AND a.action <> 'do_not_install'"
)


_STICKY = sorted(f"{held}>{detected}" for held, detected in STICKY)
"""STICKY as `held>detected` text, compared in `upsert`."""

# libs/domain/agent_reports.py `moves`, the same rule over a stored row (cu) and a new
# observation (EXCLUDED); an install result is the observation carrying a return code
# (rank 1), a detection carries none (rank 0). tests/integration/test_reporting_ingest_sql.py
# checks both agree on every case.
_MOVES = (
    "cu.reported_at IS NULL OR ("
    " NOT (EXCLUDED.last_return_code IS NULL"
    "   AND cu.state || '>' || EXCLUDED.state = ANY ($6::text[]))"
    " AND (EXCLUDED.reported_at > cu.reported_at OR (EXCLUDED.reported_at = cu.reported_at"
    "   AND EXCLUDED.last_return_code IS NOT NULL AND EXCLUDED.state <> cu.state)))"
)


async def upsert(
    conn: Connection, newest: Mapping[tuple[str, str], Observation]
) -> list[tuple[Observation, str]]:
    """Write the newest observation per (computer, update) in one statement: a new row, or
    a stored row it moves (never backwards in time); returns (observation, state it
    replaced) for every row written. Rows are locked in one order (update, computer), so
    replicas never deadlock; no placeholder is written first."""
    if not newest:
        return []
    keys = sorted(newest, key=lambda k: (k[1], k[0]))
    seen = [newest[k] for k in keys]
    rows = await conn.fetch(
        "INSERT INTO computer_updates AS cu (computer_id, update_id, state, reported_at,"
        " last_return_code)"
        " SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[],"
        " $5::bigint[]) AS k (c, u, state, at, code) ORDER BY k.u, k.c"
        " ON CONFLICT (update_id, computer_id) DO UPDATE SET replaced_state = cu.state,"
        " state = EXCLUDED.state, reported_at = EXCLUDED.reported_at,"
        " last_return_code = coalesce(EXCLUDED.last_return_code, cu.last_return_code)"
        f" WHERE {_MOVES}"
        " RETURNING cu.computer_id, cu.update_id::text, cu.replaced_state",
        [o.computer_id for o in seen],
        [o.update_id for o in seen],
        [o.state for o in seen],
        [o.reported_at for o in seen],
        [o.return_code for o in seen],
        _STICKY,
    )
    return [
        (newest[row["computer_id"], row["update_id"]], row["replaced_state"] or NO_REPORT)
        for row in rows
    ]


async def complete_restart(conn: Connection, computer_id: str, at: datetime) -> list[str]:
    """A restart turns this computer's pending installs into installed ones; returns the
    updates it completed."""
    pending, done = RESTART_COMPLETES
    rows = await conn.fetch(
        "UPDATE computer_updates SET state = $4, reported_at = greatest(reported_at, $2)"
        " WHERE computer_id = $1 AND state = $3"
        " RETURNING update_id::text",
        computer_id,
        at,
        pending,
        done,
    )
    return [row["update_id"] for row in rows]


async def delete_update(conn: Connection, update_id: str) -> list[ComputerMove]:
    """Every state and attempt of an update; returns how the per-computer counters move."""
    uid = uuid.UUID(update_id)
    rows = await conn.fetch(
        "DELETE FROM computer_updates WHERE update_id = $1 AND state <> 'none'"
        " RETURNING computer_id, state",
        uid,
    )
    await conn.execute("DELETE FROM computer_updates WHERE update_id = $1", uid)
    await conn.execute("DELETE FROM install_attempts WHERE update_id = $1", uid)
    return [ComputerMove(row["computer_id"], row["state"], -1) for row in rows]


async def classify(
    conn: Connection, computer_ids: Sequence[str], silent_since: datetime
) -> StatesByUpdate:
    """Per update: how many of these computers are in each state, no_status for those an
    approval targets that never reported, not_reporting (only) for silent ones."""
    rows = await conn.fetch(
        "WITH t AS (" + _TARGETED_PAIRS + "),"
        " r AS (SELECT computer_id, update_id, state FROM computer_updates"
        "   WHERE computer_id = ANY ($1::text[]) AND state <> 'none'),"
        " x AS (SELECT coalesce(r.computer_id, t.computer_id) AS computer_id,"
        "   coalesce(r.update_id, t.update_id) AS update_id, r.state"
        "   FROM r FULL JOIN t ON r.computer_id = t.computer_id AND r.update_id = t.update_id)"
        " SELECT x.update_id::text, CASE WHEN c.last_contact_at < $3 THEN 'not_reporting'"
        "   ELSE coalesce(x.state, 'no_status') END AS state, count(*) AS n"
        " FROM x JOIN computers c USING (computer_id) GROUP BY 1, 2",
        list(computer_ids),
        ROOT_GROUP_ID,
        silent_since,
    )
    found: StatesByUpdate = {}
    for row in rows:
        found.setdefault(row["update_id"], {})[row["state"]] = row["n"]
    return found


async def approved_states(
    conn: Connection, computer_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per computer: its approved updates per state (no_status: never reported)."""
    rows = await conn.fetch(
        "WITH t AS (" + _TARGETED_PAIRS + ")"
        " SELECT t.computer_id, coalesce(nullif(cu.state, 'none'), 'no_status') AS state,"
        " count(*) AS n FROM t LEFT JOIN computer_updates cu"
        "   ON cu.computer_id = t.computer_id AND cu.update_id = t.update_id GROUP BY 1, 2",
        list(computer_ids),
        ROOT_GROUP_ID,
    )
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["computer_id"], {})[row["state"]] = row["n"]
    return found


async def of_computers(conn: Connection, computer_ids: Sequence[str]) -> StatesByUpdate:
    """Per update: how many of these computers are in each state."""
    rows = await conn.fetch(
        "SELECT update_id::text, state, count(*) AS n FROM computer_updates"
        " WHERE computer_id = ANY ($1::text[]) AND state <> 'none' GROUP BY update_id, state",
        list(computer_ids),
    )
    found: StatesByUpdate = {}
    for row in rows:
        found.setdefault(row["update_id"], {})[row["state"]] = row["n"]
    return found


async def of_computer(conn: Connection, computer_id: str) -> list[r.ComputerUpdate]:
    """Every update reported on one computer or approved for it (never reported: no
    status), by KB number."""
    rows = await conn.fetch(
        "WITH t AS (" + _TARGETED_PAIRS + "),"
        " r AS (SELECT update_id, state, reported_at, last_return_code FROM computer_updates"
        "   WHERE computer_id = $1[1] AND state <> 'none')"
        " SELECT u.update_id::text, u.kb, u.title, coalesce(r.state, 'no_status') AS state,"
        " r.reported_at, r.last_return_code"
        " FROM (SELECT update_id FROM r UNION SELECT update_id FROM t) k"
        " JOIN updates u USING (update_id) LEFT JOIN r USING (update_id)"
        " WHERE u.declined_at IS NULL ORDER BY u.kb, u.update_id",
        [computer_id],
        ROOT_GROUP_ID,
    )
    return [
        r.ComputerUpdate(
            update_id=row["update_id"],
            kb=row["kb"],
            title=row["title"],
            state=row["state"],
            reported_at=row["reported_at"],
            last_return_code=row["last_return_code"],
        )
        for row in rows
    ]


async def of_update(
    conn: Connection,
    update_id: str,
    *,
    silent_since: datetime,
    state: str | None,
    not_reporting: bool | None,
    page: r.Page,
) -> tuple[list[r.UpdateComputer], int]:
    """(a page of, and how many are) the computers of one update: those that reported on it
    and those its approvals target (never reported: no status), in a state if asked, silent
    or in contact if asked; by host name, the id breaking ties."""
    query = (
        "WITH r AS (SELECT computer_id, state, reported_at, last_return_code"
        "   FROM computer_updates WHERE update_id = $1 AND state <> 'none'),"
        " t AS (SELECT m.computer_id FROM memberships m JOIN group_approvals a"
        "   ON a.group_id = m.group_id AND a.action <> 'do_not_install' WHERE a.update_id = $1"
        "   UNION SELECT c.computer_id FROM computers c WHERE EXISTS (SELECT 1"
        "   FROM group_approvals a WHERE a.update_id = $1 AND a.group_id = $2::uuid"
        "   AND a.action <> 'do_not_install')),"
        " x AS (SELECT c.computer_id, c.hostname, coalesce(r.state, 'no_status') AS state,"
        "   r.reported_at, r.last_return_code, c.last_contact_at < $3 AS not_reporting"
        "   FROM (SELECT computer_id FROM r UNION SELECT computer_id FROM t) k"
        "   JOIN computers c USING (computer_id) LEFT JOIN r USING (computer_id))"
        " SELECT {columns} FROM x WHERE ($4::text IS NULL OR x.state = $4)"
        " AND ($5::bool IS NULL OR x.not_reporting = $5)"
    )
    args = [uuid.UUID(update_id), ROOT_GROUP_ID, silent_since, state, not_reporting]
    rows = await conn.fetch(
        query.format(columns="x.*")
        + " ORDER BY lower(x.hostname), x.computer_id OFFSET $6 LIMIT $7",
        *args,
        page.offset,
        page.limit,
    )
    total: int = (
        len(rows) + page.offset
        if 0 < len(rows) < page.limit
        else await conn.fetchval(query.format(columns="count(*)"), *args)
    )
    return [r.UpdateComputer(**dict(row)) for row in rows], total


async def overdue(conn: Connection, update_ids: Sequence[str], now: datetime) -> dict[str, int]:
    """Per update: computers behind on it past their own deadline (the winning one moved
    by the computer's spread offset) [docs/product.md sections 1 and 6]: a required install
    they lack (needed, failed, no status) or an uninstall they still hold (installed,
    pending restart); an available install is never overdue. Per computer, required install
    beats uninstall and its deadline is the earliest among the winning groups' (approvals
    carry inheritance already; every computer is in All computers)."""
    rows = await conn.fetch(
        "WITH w AS ("
        "   SELECT a.update_id, m.computer_id, a.action, a.deadline FROM group_approvals a"
        "   JOIN memberships m ON m.group_id = a.group_id"
        "   WHERE a.update_id = ANY ($1::uuid[]) AND a.action IN ('required_install', 'uninstall')"
        "   UNION ALL SELECT a.update_id, c.computer_id, a.action, a.deadline"
        "   FROM group_approvals a CROSS JOIN computers c WHERE a.group_id = $3::uuid"
        "   AND a.update_id = ANY ($1::uuid[]) AND a.action IN ('required_install', 'uninstall')"
        " ), per AS ("
        "   SELECT update_id, computer_id, bool_or(action = 'required_install') AS required,"
        "   CASE WHEN bool_or(action = 'required_install')"
        "     THEN min(deadline) FILTER (WHERE action = 'required_install')"
        "     ELSE min(deadline) END AS deadline"
        "   FROM w GROUP BY 1, 2"
        " ) SELECT per.update_id::text, count(*) AS n FROM per"
        " JOIN computers c USING (computer_id)"
        " LEFT JOIN computer_updates cu USING (update_id, computer_id)"
        " WHERE per.deadline <= $2::timestamptz - make_interval(secs => c.deadline_offset_seconds)"
        " AND coalesce(nullif(cu.state, 'none'), 'no_status')"
        "   = ANY (CASE WHEN per.required THEN $4::text[] ELSE $5::text[] END)"
        " GROUP BY 1",
        [uuid.UUID(u) for u in update_ids],
        now,
        ROOT_GROUP_ID,
        list(behind_states("required_install")),
        list(behind_states("uninstall")),
    )
    return {row["update_id"]: row["n"] for row in rows}


async def attempts(
    conn: Connection, update_id: str, page: r.Page
) -> tuple[int, int, list[r.AttemptView]]:
    """(successes, failures, a page of the failed attempts, latest first) of an update."""
    uid = uuid.UUID(update_id)
    totals = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE outcome <> 'failure') AS ok,"
        " count(*) FILTER (WHERE outcome = 'failure') AS failed"
        " FROM install_attempts WHERE update_id = $1",
        uid,
    )
    rows = await conn.fetch(
        "SELECT computer_id, return_code, outcome, started_at, finished_at FROM install_attempts"
        " WHERE update_id = $1 AND outcome = 'failure' ORDER BY finished_at DESC, computer_id"
        " OFFSET $2 LIMIT $3",
        uid,
        page.offset,
        page.limit,
    )
    views = [r.AttemptView(**dict(row)) for row in rows]
    return (totals["ok"] if totals else 0), (totals["failed"] if totals else 0), views
