"""reporting's compliance queries (schema `reporting`): states, attempts, counters, copies."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.contracts import reporting as r
from libs.contracts.approval import ROOT_GROUP_ID
from libs.contracts.catalog import ReturnCode, UpdateSnapshot
from libs.db.pool import Connection
from libs.domain.agent_reports import NO_REPORT, RESTART_COMPLETES, Observation

Record = Any  # an asyncpg Record
COUNTED = ("installed", "needed", "failed", "installed_pending_restart", "not_applicable")


# --- read copies -----------------------------------------------------------------------------


async def put_computer(conn: Connection, computer_id: str, hostname: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO computers (computer_id, hostname, registered_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (computer_id) DO NOTHING",
        computer_id,
        hostname,
        at,
    )


async def put_update(conn: Connection, update: UpdateSnapshot) -> None:
    await conn.execute(
        "INSERT INTO updates (update_id, revision, kb, title, classification, severity,"
        " return_codes, superseded) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)"
        " ON CONFLICT (update_id) DO UPDATE SET revision = EXCLUDED.revision, kb = EXCLUDED.kb,"
        " title = EXCLUDED.title, classification = EXCLUDED.classification,"
        " severity = EXCLUDED.severity, return_codes = EXCLUDED.return_codes,"
        " superseded = updates.superseded OR EXCLUDED.superseded"
        " WHERE updates.revision < EXCLUDED.revision",
        uuid.UUID(update.update_id),
        update.revision,
        update.kb,
        update.title,
        update.classification,
        update.severity,
        json.dumps([c.model_dump() for c in update.return_codes]),
        bool(update.superseded_by),
    )


async def mark_superseded(conn: Connection, update_id: str) -> None:
    await conn.execute(
        "UPDATE updates SET superseded = true WHERE update_id = $1", uuid.UUID(update_id)
    )


async def forget_update(conn: Connection, update_id: str) -> None:
    uid = uuid.UUID(update_id)
    # The update row first: it waits for ingest batches holding it (see known()).
    await conn.execute("DELETE FROM updates WHERE update_id = $1", uid)
    await delete_reports(conn, update_id)
    await conn.execute("DELETE FROM group_approvals WHERE update_id = $1", uid)


async def delete_reports(conn: Connection, update_id: str) -> None:
    """Every report of an update goes (a decline deletes its report data)."""
    uid = uuid.UUID(update_id)
    for table in ("computer_updates", "install_attempts", "update_counts"):
        await conn.execute(f"DELETE FROM {table} WHERE update_id = $1", uid)
    await conn.execute(
        "INSERT INTO compliance_dirty (update_id) VALUES ($1) ON CONFLICT DO NOTHING", uid
    )


async def set_declined(conn: Connection, update_id: str, at: datetime | None) -> None:
    await conn.execute(
        "UPDATE updates SET declined_at = $2 WHERE update_id = $1", uuid.UUID(update_id), at
    )


async def delete_group(conn: Connection, group_id: str) -> None:
    await conn.execute("DELETE FROM group_approvals WHERE group_id = $1", uuid.UUID(group_id))


async def set_group_approval(
    conn: Connection,
    group_id: str,
    update_id: str,
    action: str | None,
    deadline: datetime | None = None,
) -> None:
    gid, uid = uuid.UUID(group_id), uuid.UUID(update_id)
    if action is None:
        await conn.execute(
            "DELETE FROM group_approvals WHERE group_id = $1 AND update_id = $2", gid, uid
        )
    else:
        await conn.execute(
            "INSERT INTO group_approvals (group_id, update_id, action, deadline)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (update_id, group_id)"
            " DO UPDATE SET action = EXCLUDED.action, deadline = EXCLUDED.deadline",
            gid,
            uid,
            action,
            deadline,
        )
    await conn.execute(
        "INSERT INTO compliance_dirty (update_id) VALUES ($1) ON CONFLICT DO NOTHING", uid
    )


# --- ingest -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """What a batch of reports may refer to."""

    computers: set[str]
    return_codes: dict[str, list[ReturnCode]]
    declined: set[str]


async def known(conn: Connection, computer_ids: Sequence[str], update_ids: Sequence[str]) -> Known:
    computers = await conn.fetch(
        "SELECT computer_id FROM computers WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    # FOR SHARE: a decline (or a deletion) of one of these updates waits for this batch to
    # commit, and this batch waits for one in progress, then reads it declined. Without it a
    # batch that read "not declined" could write states after the decline deleted them.
    updates = await conn.fetch(
        "SELECT update_id::text, return_codes::text, declined_at IS NOT NULL AS declined"
        " FROM updates WHERE update_id = ANY ($1::uuid[]) ORDER BY update_id FOR SHARE",
        list(update_ids),
    )
    return Known(
        computers={row["computer_id"] for row in computers},
        return_codes={
            row["update_id"]: [
                ReturnCode.model_validate(c) for c in json.loads(row["return_codes"])
            ]
            for row in updates
        },
        declined={row["update_id"] for row in updates if row["declined"]},
    )


async def lock_rows(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, datetime | None]]:
    """Create missing rows as placeholders, then lock every row in one order (no deadlock
    between replicas); returns (state, reported_at) per key."""
    ordered = sorted(keys, key=lambda k: (k[1], k[0]))
    computers = [c for c, _ in ordered]
    updates = [u for _, u in ordered]
    await conn.execute(
        "INSERT INTO computer_updates (computer_id, update_id, state)"
        " SELECT c, u, 'none' FROM unnest($1::text[], $2::uuid[]) AS k (c, u)"
        " ORDER BY u, c ON CONFLICT DO NOTHING",
        computers,
        updates,
    )
    rows = await conn.fetch(
        "SELECT cu.computer_id, cu.update_id::text, cu.state, cu.reported_at"
        " FROM computer_updates cu JOIN unnest($1::text[], $2::uuid[]) AS k (c, u)"
        " ON cu.computer_id = k.c AND cu.update_id = k.u"
        " ORDER BY cu.update_id, cu.computer_id FOR UPDATE OF cu",
        computers,
        updates,
    )
    return {
        (row["computer_id"], row["update_id"]): (row["state"], row["reported_at"]) for row in rows
    }


async def save_states(conn: Connection, changes: Sequence[tuple[Observation, str]]) -> None:
    """Write new states (observation, previous state) and move the counters with them."""
    if not changes:
        return
    await conn.execute(
        "UPDATE computer_updates cu SET state = k.state, reported_at = k.at,"
        " last_return_code = coalesce(k.code, cu.last_return_code)"
        " FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[], $5::bigint[])"
        "   AS k (c, u, state, at, code)"
        " WHERE cu.computer_id = k.c AND cu.update_id = k.u",
        [o.computer_id for o, _ in changes],
        [o.update_id for o, _ in changes],
        [o.state for o, _ in changes],
        [o.reported_at for o, _ in changes],
        [o.return_code for o, _ in changes],
    )
    deltas: Counter[tuple[str, str]] = Counter()
    for seen, before in changes:
        if before != NO_REPORT:
            deltas[seen.update_id, before] -= 1
        deltas[seen.update_id, seen.state] += 1
    await apply_deltas(conn, deltas)


async def apply_deltas(conn: Connection, deltas: Counter[tuple[str, str]]) -> None:
    moved = sorted((k, n) for k, n in deltas.items() if n)
    if not moved:
        return
    await conn.execute(
        "INSERT INTO update_counts (update_id, state, n)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])"
        " ON CONFLICT (update_id, state) DO UPDATE SET n = update_counts.n + EXCLUDED.n",
        [u for (u, _), _ in moved],
        [s for (_, s), _ in moved],
        [n for _, n in moved],
    )
    await conn.execute(
        "INSERT INTO compliance_dirty (update_id) SELECT DISTINCT unnest($1::uuid[])"
        " ON CONFLICT DO NOTHING",
        [u for (u, _), _ in moved],
    )


async def save_attempts(
    conn: Connection, attempts: Sequence[tuple[str, str, datetime, datetime, int, str, str]]
) -> None:
    """(computer, update, started, finished, code, outcome, operation); repeats are ignored."""
    if not attempts:
        return
    await conn.execute(
        "INSERT INTO install_attempts (computer_id, update_id, started_at, finished_at,"
        " return_code, outcome, operation)"
        " SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::timestamptz[],"
        " $5::bigint[], $6::text[], $7::text[]) ON CONFLICT DO NOTHING",
        *[list(column) for column in zip(*attempts, strict=True)],
    )


async def complete_restart(conn: Connection, computer_id: str, at: datetime) -> None:
    """A restart turns this computer's pending installs into installed ones."""
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
    deltas: Counter[tuple[str, str]] = Counter()
    for row in rows:
        deltas[row["update_id"], pending] -= 1
        deltas[row["update_id"], done] += 1
    await apply_deltas(conn, deltas)


# --- aggregates ---------------------------------------------------------------------------------


def counts_of(by_state: dict[str, int], targeted: int) -> r.StateCounts:
    reported = sum(by_state.get(s, 0) for s in COUNTED)
    applies = sum(
        by_state.get(s, 0) for s in ("installed", "needed", "failed", "installed_pending_restart")
    )
    return r.StateCounts(
        applies_to=applies,
        installed=by_state.get("installed", 0),
        needed=by_state.get("needed", 0),
        failed=by_state.get("failed", 0),
        installed_pending_restart=by_state.get("installed_pending_restart", 0),
        not_applicable=by_state.get("not_applicable", 0),
        no_status=max(targeted - reported, 0),
    )


_TARGETED = (
    # Computers targeted per update: every computer when All computers is approved,
    # else the members of the approved groups and of their subgroups.
    "WITH RECURSIVE sub (top, group_id) AS ("
    "   SELECT g.group_id, g.group_id FROM groups g"
    "   UNION ALL SELECT s.top, c.group_id FROM sub s JOIN groups c ON c.parent_id = s.group_id"
    " ), approved AS ("
    "   SELECT update_id, group_id FROM group_approvals WHERE update_id = ANY ($1::uuid[])"
    " ), everywhere AS ("
    "   SELECT DISTINCT update_id FROM approved WHERE group_id = $2::uuid"
    " ) SELECT a.update_id::text, count(DISTINCT m.computer_id) AS n"
    " FROM approved a JOIN sub s ON s.top = a.group_id"
    " JOIN memberships m ON m.group_id = s.group_id"
    " WHERE a.update_id NOT IN (SELECT update_id FROM everywhere) GROUP BY a.update_id"
    " UNION ALL SELECT update_id::text, (SELECT count(*) FROM computers) FROM everywhere"
)


async def compliance(conn: Connection, update_ids: Sequence[str]) -> list[r.UpdateCompliance]:
    """Counts of these updates, from the counters (fast at any fleet size)."""
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
    targeted = {
        row["update_id"]: row["n"] for row in await conn.fetch(_TARGETED, ids, ROOT_GROUP_ID)
    }
    by_update: dict[str, dict[str, int]] = {}
    for row in counts:
        by_update.setdefault(row["update_id"], {})[row["state"]] = row["n"]
    return [
        r.UpdateCompliance(
            update_id=row["update_id"],
            kb=row["kb"],
            title=row["title"],
            classification=row["classification"],
            superseded=row["superseded"],
            approved=row["approved"],
            counts=counts_of(
                by_update.get(row["update_id"], {}), targeted.get(row["update_id"], 0)
            ),
        )
        for row in updates
    ]


async def reported_updates(conn: Connection, page: r.Page) -> tuple[list[str], int]:
    """Updates with reports or approvals, most needed first (declined ones left out)."""
    rows = await conn.fetch(
        "SELECT u.update_id::text, count(*) OVER () AS total FROM updates u"
        " WHERE u.declined_at IS NULL AND (EXISTS (SELECT 1 FROM update_counts c"
        "   WHERE c.update_id = u.update_id AND c.n > 0)"
        "   OR EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = u.update_id))"
        " ORDER BY (SELECT coalesce(sum(n), 0) FROM update_counts c WHERE c.update_id ="
        " u.update_id AND c.state IN ('needed', 'failed')) DESC, u.kb"
        " OFFSET $1 LIMIT $2",
        page.offset,
        page.limit,
    )
    return [row["update_id"] for row in rows], (rows[0]["total"] if rows else 0)


async def new_updates_to_approve(conn: Connection) -> bool:
    """A managed computer needs an update that is neither approved nor declined."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM update_counts c JOIN updates u USING (update_id)"
        " WHERE c.state = 'needed' AND c.n > 0 AND u.declined_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = c.update_id))"
    )
    return found


async def computer_count(conn: Connection) -> int:
    found: int = await conn.fetchval("SELECT count(*) FROM computers")
    return found


async def find_update(conn: Connection, reference: str) -> str | None:
    try:
        as_id: uuid.UUID | None = uuid.UUID(reference)
    except ValueError:
        as_id = None
    found: str | None = await conn.fetchval(
        "SELECT update_id::text FROM updates WHERE update_id = $1::uuid OR kb = $2 LIMIT 1",
        as_id,
        reference.strip().upper().removeprefix("KB"),
    )
    return found


async def attempts(
    conn: Connection, update_id: str, page: r.Page
) -> tuple[int, int, list[r.AttemptView]]:
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


async def group_computers(conn: Connection, group_id: str) -> list[str]:
    """Computers of a group and of its subgroups (All computers: every computer)."""
    if group_id == ROOT_GROUP_ID:
        rows = await conn.fetch("SELECT computer_id FROM computers")
    else:
        rows = await conn.fetch(
            "WITH RECURSIVE sub (group_id) AS (SELECT $1::uuid UNION ALL"
            " SELECT g.group_id FROM groups g JOIN sub s ON g.parent_id = s.group_id)"
            " SELECT DISTINCT m.computer_id FROM memberships m JOIN sub USING (group_id)",
            uuid.UUID(group_id),
        )
    return [row["computer_id"] for row in rows]


async def states_of(conn: Connection, computer_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per update: how many of these computers are in each state."""
    rows = await conn.fetch(
        "SELECT update_id::text, state, count(*) AS n FROM computer_updates"
        " WHERE computer_id = ANY ($1::text[]) AND state <> 'none' GROUP BY update_id, state",
        list(computer_ids),
    )
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["update_id"], {})[row["state"]] = row["n"]
    return found


async def computer_updates(conn: Connection, computer_id: str) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        "SELECT cu.update_id::text, u.kb, u.title, cu.state, cu.reported_at, cu.last_return_code"
        " FROM computer_updates cu JOIN updates u USING (update_id)"
        " WHERE cu.computer_id = $1 AND cu.state <> 'none' ORDER BY u.kb",
        computer_id,
    )
    return rows


async def take_dirty(conn: Connection, limit: int) -> list[str]:
    rows = await conn.fetch(
        "DELETE FROM compliance_dirty WHERE update_id IN (SELECT update_id FROM compliance_dirty"
        " LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING update_id::text",
        limit,
    )
    return [row["update_id"] for row in rows]


async def gauge_rows(conn: Connection) -> list[Record]:
    """Computers per (classification, severity, state) over updates not declined."""
    rows: list[Record] = await conn.fetch(
        "SELECT u.classification, coalesce(u.severity, 'none') AS severity, c.state,"
        " sum(c.n) AS n FROM update_counts c JOIN updates u USING (update_id)"
        " WHERE u.declined_at IS NULL GROUP BY 1, 2, 3"
    )
    return rows


async def groups_to_depth(conn: Connection, depth: int) -> list[tuple[str, str]]:
    """(id, name) of the groups at most `depth` levels below All computers."""
    rows = await conn.fetch(
        "WITH RECURSIVE tree (group_id, name, depth) AS ("
        "   SELECT group_id, name, 0 FROM groups WHERE parent_id IS NULL"
        "   UNION ALL SELECT g.group_id, g.name, t.depth + 1 FROM groups g"
        "   JOIN tree t ON g.parent_id = t.group_id WHERE t.depth < $1"
        " ) SELECT group_id::text, name FROM tree ORDER BY depth, name",
        depth,
    )
    return [(row["group_id"], row["name"]) for row in rows]


async def gauged_updates(conn: Connection, limit: int) -> list[Record]:
    """Approved, not declined updates (at most `limit`, most computers behind first): name,
    classification, severity and earliest approval deadline."""
    rows: list[Record] = await conn.fetch(
        "SELECT u.update_id::text, coalesce('KB' || u.kb, u.title) AS name, u.classification,"
        " coalesce(u.severity, 'none') AS severity, min(a.deadline) AS deadline,"
        " (SELECT coalesce(sum(n), 0) FROM update_counts c WHERE c.update_id = u.update_id"
        "   AND c.state IN ('needed', 'failed')) AS behind"
        " FROM updates u JOIN group_approvals a USING (update_id)"
        " WHERE u.declined_at IS NULL GROUP BY u.update_id ORDER BY behind DESC, name LIMIT $1",
        limit,
    )
    return rows


async def overdue(conn: Connection, update_ids: Sequence[str], now: datetime) -> dict[str, int]:
    """Per update: computers that still need it (needed or failed) past their own deadline,
    the earliest over the effective approvals of the groups they are in (approvals carry
    inheritance already; every computer is in All computers)."""
    rows = await conn.fetch(
        "SELECT cu.update_id::text, count(*) AS n FROM computer_updates cu"
        " WHERE cu.update_id = ANY ($1::uuid[]) AND cu.state IN ('needed', 'failed')"
        " AND EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = cu.update_id"
        "   AND a.deadline <= $2 AND (a.group_id = $3::uuid OR a.group_id IN"
        "     (SELECT m.group_id FROM memberships m WHERE m.computer_id = cu.computer_id)))"
        " GROUP BY cu.update_id",
        [uuid.UUID(u) for u in update_ids],
        now,
        ROOT_GROUP_ID,
    )
    return {row["update_id"]: row["n"] for row in rows}


async def awaiting_approval(conn: Connection) -> list[Record]:
    """Per (classification, severity): updates needed somewhere, neither approved nor declined."""
    rows: list[Record] = await conn.fetch(
        "SELECT u.classification, coalesce(u.severity, 'none') AS severity, count(*) AS n"
        " FROM updates u WHERE u.declined_at IS NULL"
        " AND EXISTS (SELECT 1 FROM update_counts c WHERE c.update_id = u.update_id"
        "   AND c.state = 'needed' AND c.n > 0)"
        " AND NOT EXISTS (SELECT 1 FROM group_approvals a WHERE a.update_id = u.update_id)"
        " GROUP BY 1, 2"
    )
    return rows
