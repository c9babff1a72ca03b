"""The fleet list: one keyset page of managed computers, filtered and sorted on indexed
columns (never OFFSET), and the groups of the computers of a page."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.contracts.approval import ROOT_GROUP_ID
from libs.db.pool import Connection
from services.reporting.domain.counts import behind_states
from services.reporting.domain.fleet import Position

# Per sort: the key (as text for the cursor), the row comparison that starts after a
# position (the id breaks ties), the order (each has its index in 0007_fleet.sql).
_SORTS = {
    "name": (
        "lower(c.hostname)",
        "(lower(c.hostname), c.computer_id) > ($1::text, $2::text)",
        "lower(c.hostname), c.computer_id",
    ),
    "last_contact": (
        "to_char(c.last_contact_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
        "(c.last_contact_at, c.computer_id) > (($1::text || '+00')::timestamptz, $2::text)",
        "c.last_contact_at, c.computer_id",
    ),
    "failed": (
        "(-c.failed)::text",
        "((-c.failed), c.computer_id) > ($1::text::int, $2::text)",
        "(-c.failed), c.computer_id",
    ),
}


@dataclass(frozen=True)
class FleetFilter:
    """Which computers a page lists (None / False: no filter)."""

    silent_since: datetime
    now: datetime
    not_reporting: bool = False
    failed: bool = False
    restart_pending: bool = False
    past_deadline: bool = False
    groups: Sequence[str] | None = None
    """The group and its subgroups (None: every computer)."""
    search: str | None = None


@dataclass(frozen=True)
class FleetRow:
    """One computer of a page, as stored."""

    computer_id: str
    hostname: str
    operating_system: str
    os_version: str
    architecture: str
    agent_version: str
    timezone: str
    policy: str | None
    last_contact_at: datetime
    key: str


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


Arg = Callable[[object], str]
"""Adds a query argument, returns its placeholder."""


def _past_deadline(arg: Arg, now: datetime) -> str:
    """Computer `c` is behind on an update past a deadline of one of its groups' approvals
    (All computers included), moved by its own spread offset [docs/product.md sections 1
    and 6]: it still lacks a required install (needed, failed, no status) or still holds an
    update to uninstall; silent or not."""
    return (
        "EXISTS (SELECT 1 FROM group_approvals a"
        " LEFT JOIN computer_updates cu ON cu.update_id = a.update_id"
        "   AND cu.computer_id = c.computer_id"
        f" WHERE a.deadline <= {arg(now)}::timestamptz"
        "   - make_interval(secs => c.deadline_offset_seconds)"
        f" AND (a.group_id = {arg(uuid.UUID(ROOT_GROUP_ID))} OR a.group_id IN"
        "   (SELECT m.group_id FROM memberships m WHERE m.computer_id = c.computer_id))"
        " AND ((a.action = 'required_install' AND coalesce(nullif(cu.state, 'none'),"
        f"   'no_status') = ANY ({arg(list(behind_states('required_install')))}::text[]))"
        "   OR (a.action = 'uninstall' AND cu.state = ANY"
        f"   ({arg(list(behind_states('uninstall')))}::text[]))))"
    )


async def count_past_deadline(conn: Connection, now: datetime) -> int:
    """Managed computers the page's past_deadline filter keeps, in one count (none, without
    looking at a computer, while no required install or uninstall has a deadline past)."""
    due = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM group_approvals WHERE deadline <= $1"
        " AND action IN ('required_install', 'uninstall'))",
        now,
    )
    if not due:
        return 0
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    found: int = await conn.fetchval(
        f"SELECT count(*) FROM computers c WHERE {_past_deadline(arg, now)}", *args
    )
    return found


async def page(
    conn: Connection, sort: str, after: Position | None, where: FleetFilter, limit: int
) -> list[FleetRow]:
    """Up to `limit` computers after `after` in `sort` order, matching `where`."""
    key, start, order = _SORTS[sort]
    conditions = [start if after else "($1::text IS NULL AND $2::text IS NULL)"]
    args: list[object] = [after.key if after else None, after.computer_id if after else None]

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if where.not_reporting:
        conditions.append(f"c.last_contact_at < {arg(where.silent_since)}")
    if where.failed:
        conditions.append("c.failed > 0")
    if where.restart_pending:
        conditions.append("c.pending_restart > 0")
    if where.groups is not None:
        conditions.append(
            "c.computer_id IN (SELECT m.computer_id FROM memberships m"
            f" WHERE m.group_id = ANY ({arg([uuid.UUID(g) for g in where.groups])}::uuid[]))"
        )
    if where.search:
        prefix = arg(_like_prefix(where.search.lower()))
        raw = arg(_like_prefix(where.search))
        conditions.append(f"(lower(c.hostname) LIKE {prefix} OR c.computer_id LIKE {raw})")
    if where.past_deadline:
        conditions.append(_past_deadline(arg, where.now))
    rows = await conn.fetch(
        "SELECT c.computer_id, c.hostname, c.operating_system, c.os_version, c.architecture,"
        f" c.agent_version, c.timezone, c.policy, c.last_contact_at, {key} AS key"
        f" FROM computers c WHERE {' AND '.join(conditions)}"
        f" ORDER BY {order} LIMIT {arg(limit)}",
        *args,
    )
    return [FleetRow(**dict(row)) for row in rows]


async def group_names(conn: Connection, computer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Per computer: the names of the groups it is a member of, A-Z."""
    rows = await conn.fetch(
        "SELECT m.computer_id, g.name FROM memberships m JOIN groups g USING (group_id)"
        " WHERE m.computer_id = ANY ($1::text[]) ORDER BY g.name",
        list(computer_ids),
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["computer_id"], []).append(row["name"])
    return found
