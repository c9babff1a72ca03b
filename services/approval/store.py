"""approval's queries (schema `approval` only)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.contracts import approval as a
from libs.contracts.catalog import UpdateSnapshot
from libs.contracts.scheduler import ComputerRegistered
from libs.db.pool import Connection, rows_affected
from services.approval.domain.deadlines import Deadline
from services.approval.domain.tree import Effective, Explicit, Tree

Record = Any  # an asyncpg Record


async def lock(conn: Connection) -> None:
    """Serialise approval writers (tree, approvals, rules) for this transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lockgate.approval'))")


def _uuid(reference: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


# --- computers and groups --------------------------------------------------------------------


async def add_computer(conn: Connection, computer: ComputerRegistered) -> bool:
    """Keep the computer (it is in All computers); a repeated registration changes nothing."""
    status = await conn.execute(
        "INSERT INTO computers (computer_id, hostname, registered_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (computer_id) DO NOTHING",
        computer.computer_id,
        computer.hostname,
        computer.registered_at,
    )
    return rows_affected(status) == 1


@dataclass(frozen=True)
class Groups:
    """The whole tree with names (a few thousand rows at most; loaded per change)."""

    tree: Tree
    names: dict[str, str]

    def group(self, group_id: str) -> a.Group:
        return a.Group(
            group_id=group_id,
            name=self.names[group_id],
            parent_id=self.tree.parents[group_id],
            path=[self.names[g] for g in self.tree.path(group_id)],
        )


async def groups(conn: Connection) -> Groups:
    rows = await conn.fetch("SELECT group_id::text, name, parent_id::text FROM groups")
    return Groups(
        tree=Tree({r["group_id"]: r["parent_id"] for r in rows}),
        names={r["group_id"]: r["name"] for r in rows},
    )


async def find_group(conn: Connection, reference: str) -> str | None:
    """A group id from an id or a name (case-insensitive)."""
    as_id = _uuid(reference)
    if as_id is not None:
        found: str | None = await conn.fetchval(
            "SELECT group_id::text FROM groups WHERE group_id = $1", as_id
        )
        if found is not None:
            return found
    by_name: str | None = await conn.fetchval(
        "SELECT group_id::text FROM groups WHERE lower(name) = lower($1)", reference
    )
    return by_name


async def name_taken(conn: Connection, name: str, but: str | None = None) -> bool:
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM groups WHERE lower(name) = lower($1)"
        " AND group_id IS DISTINCT FROM $2::uuid)",
        name,
        but,
    )
    return taken


async def create_group(conn: Connection, group_id: str, name: str, parent_id: str) -> None:
    await conn.execute(
        "INSERT INTO groups (group_id, name, parent_id) VALUES ($1, $2, $3)",
        uuid.UUID(group_id),
        name,
        uuid.UUID(parent_id),
    )


async def rename_group(conn: Connection, group_id: str, name: str) -> None:
    await conn.execute("UPDATE groups SET name = $2 WHERE group_id = $1", uuid.UUID(group_id), name)


async def move_group(conn: Connection, group_id: str, parent_id: str) -> None:
    await conn.execute(
        "UPDATE groups SET parent_id = $2 WHERE group_id = $1",
        uuid.UUID(group_id),
        uuid.UUID(parent_id),
    )


async def delete_group(conn: Connection, group_id: str) -> None:
    gid = uuid.UUID(group_id)
    await conn.execute("DELETE FROM effective_approvals WHERE group_id = $1", gid)
    await conn.execute("DELETE FROM explicit_approvals WHERE group_id = $1", gid)
    await conn.execute("DELETE FROM groups WHERE group_id = $1", gid)


async def member_count(conn: Connection, group_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM memberships WHERE group_id = $1", uuid.UUID(group_id)
    )
    return count


async def rules_targeting(conn: Connection, group_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT name FROM rules WHERE $1 = ANY (group_ids) ORDER BY name", uuid.UUID(group_id)
    )
    return [r["name"] for r in rows]


async def group_counts(conn: Connection) -> dict[str, tuple[int, int]]:
    """(direct computers, direct children) per group; All computers counts every computer."""
    rows = await conn.fetch(
        "SELECT g.group_id::text AS group_id,"
        " CASE WHEN g.parent_id IS NULL THEN (SELECT count(*) FROM computers)"
        "      ELSE (SELECT count(*) FROM memberships m WHERE m.group_id = g.group_id) END"
        "   AS computers,"
        " (SELECT count(*) FROM groups c WHERE c.parent_id = g.group_id) AS children"
        " FROM groups g"
    )
    return {r["group_id"]: (r["computers"], r["children"]) for r in rows}


# --- membership --------------------------------------------------------------------------------


async def known_computers(conn: Connection, computer_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT computer_id FROM computers WHERE computer_id = ANY ($1::text[])", computer_ids
    )
    return {r["computer_id"] for r in rows}


async def change_membership(
    conn: Connection, computer_ids: Sequence[str], group_id: str, *, member: bool
) -> list[str]:
    """Add or remove; returns the computers whose membership actually changed."""
    if member:
        rows = await conn.fetch(
            "INSERT INTO memberships (computer_id, group_id)"
            " SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING RETURNING computer_id",
            computer_ids,
            uuid.UUID(group_id),
        )
    else:
        rows = await conn.fetch(
            "DELETE FROM memberships WHERE group_id = $2 AND computer_id = ANY ($1::text[])"
            " RETURNING computer_id",
            computer_ids,
            uuid.UUID(group_id),
        )
    return sorted(r["computer_id"] for r in rows)


async def computer_groups(conn: Connection, computer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every group of each computer, All computers first."""
    rows = await conn.fetch(
        "SELECT computer_id, group_id::text FROM memberships"
        " WHERE computer_id = ANY ($1::text[]) ORDER BY computer_id, group_id",
        computer_ids,
    )
    found: dict[str, list[str]] = {c: [a.ROOT_GROUP_ID] for c in computer_ids}
    for r in rows:
        found[r["computer_id"]].append(r["group_id"])
    return found


async def hostname(conn: Connection, computer_id: str) -> str | None:
    name: str | None = await conn.fetchval(
        "SELECT hostname FROM computers WHERE computer_id = $1", computer_id
    )
    return name


# --- updates (read copy of the catalog) -------------------------------------------------------


@dataclass(frozen=True)
class Update:
    update_id: str
    kb: str | None
    revision: int
    origin: str
    title: str
    classification: str
    severity: str | None
    product_families: list[str]
    release_date: datetime
    superseded_by: list[str]
    expired_at: datetime | None
    declined_at: datetime | None
    products: list[str]
    supersedes: list[str]


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
)
_UPDATE_COLUMNS = ", ".join(_COLUMNS)
_U_COLUMNS = ", ".join(f"u.{column}" for column in _COLUMNS)
"""The same columns qualified with the alias `u`, for joins."""


def _update(r: Record) -> Update:
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
    )


async def learn_update(conn: Connection, snapshot: UpdateSnapshot) -> str | None:
    """Keep the newest revision seen: `new`, `revised`, or None (older or repeated)."""
    inserted: bool | None = await conn.fetchval(
        "INSERT INTO updates (update_id, kb, revision, origin, title, classification, severity,"
        " product_families, release_date, superseded_by, expired_at, products, supersedes)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::uuid[],"
        "         CASE WHEN $11 THEN now() END, $12, $13)"
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
    )
    if inserted is None:
        return None
    return "new" if inserted else "revised"


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


async def forget_update(conn: Connection, update_id: str) -> None:
    """A deleted update goes with its approvals (cascade)."""
    await conn.execute("DELETE FROM updates WHERE update_id = $1", uuid.UUID(update_id))


async def update_by_id(conn: Connection, update_id: str) -> Update | None:
    row = await conn.fetchrow(
        f"SELECT {_UPDATE_COLUMNS} FROM updates WHERE update_id = $1",
        uuid.UUID(update_id),
    )
    return None if row is None else _update(row)


async def find_update(conn: Connection, reference: str) -> Update | None:
    """An update by id, or by KB number (with or without `KB`)."""
    as_id = _uuid(reference)
    if as_id is not None:
        return await update_by_id(conn, str(as_id))
    kb = reference.strip().upper().removeprefix("KB")
    row = await conn.fetchrow(
        f"SELECT {_UPDATE_COLUMNS} FROM updates WHERE kb = $1",
        kb,
    )
    return None if row is None else _update(row)


async def all_updates(conn: Connection) -> list[Update]:
    rows = await conn.fetch(f"SELECT {_UPDATE_COLUMNS} FROM updates ORDER BY release_date, kb")
    return [_update(r) for r in rows]


async def list_updates(
    conn: Connection, query: a.ListUpdates
) -> tuple[list[tuple[Update, int]], int]:
    """Updates with their number of explicitly approved groups, filtered by state."""
    rows = await conn.fetch(
        f"SELECT {_U_COLUMNS}, (SELECT count(*) FROM explicit_approvals e"
        "   WHERE e.update_id = u.update_id) AS approved_groups"
        " FROM updates u WHERE ($1::text IS NULL OR classification = $1)"
        " AND ($2::text IS NULL OR $2 = ANY (product_families))"
        " AND ($3::text IS NULL OR u.title ILIKE '%' || $3 || '%' OR u.kb ILIKE '%' || $3 || '%')"
        " ORDER BY release_date DESC, kb",
        query.classification,
        query.product_family,
        query.search.strip().removeprefix("KB").removeprefix("kb") if query.search else None,
    )
    wanted = set(query.states)
    found: list[tuple[Update, int]] = []
    for row in rows:
        update, approved = _update(row), row["approved_groups"]
        states = update_states(update, approved)
        if (wanted and wanted & set(states)) or (not wanted and "declined" not in states):
            found.append((update, approved))
    return found[query.offset : query.offset + query.limit], len(found)


def update_states(update: Update, approved_groups: int) -> list[a.UpdateState]:
    states: list[a.UpdateState] = []
    if update.declined_at is not None:
        states.append("declined")
    elif approved_groups:
        states.append("approved")
    else:
        states.append("new")
    if update.superseded_by:
        states.append("superseded")
    if update.expired_at is not None:
        states.append("expired")
    if update.origin == "third_party":
        states.append("third_party")
    return states


# --- approvals ---------------------------------------------------------------------------------


def _deadline(r: Record) -> Deadline:
    return Deadline(r["deadline_kind"], r["deadline_at"])


def _effective(r: Record) -> Effective:
    """An effective approval from a row with its columns."""
    return Effective(
        r["action"], _deadline(r), r["source_group_id"], r["approved_at"], r["approved_by"]
    )


async def explicit_for(conn: Connection, update_id: str) -> dict[str, Explicit]:
    rows = await conn.fetch(
        "SELECT group_id::text, action, deadline_kind, deadline_at, approved_at, approved_by"
        " FROM explicit_approvals WHERE update_id = $1",
        uuid.UUID(update_id),
    )
    return {
        r["group_id"]: Explicit(r["action"], _deadline(r), r["approved_at"], r["approved_by"])
        for r in rows
    }


async def updates_with_explicit(conn: Connection) -> list[str]:
    rows = await conn.fetch("SELECT DISTINCT update_id::text FROM explicit_approvals")
    return [r["update_id"] for r in rows]


async def put_explicit(conn: Connection, update_id: str, group_id: str, value: Explicit) -> None:
    await conn.execute(
        "INSERT INTO explicit_approvals (group_id, update_id, action, deadline_kind, deadline_at,"
        " approved_at, approved_by) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (update_id, group_id) DO UPDATE SET action = EXCLUDED.action,"
        " deadline_kind = EXCLUDED.deadline_kind, deadline_at = EXCLUDED.deadline_at,"
        " approved_at = EXCLUDED.approved_at, approved_by = EXCLUDED.approved_by",
        uuid.UUID(group_id),
        uuid.UUID(update_id),
        value.action,
        value.deadline.kind,
        value.deadline.at,
        value.approved_at,
        value.approved_by,
    )


async def drop_explicit(
    conn: Connection, update_id: str, group_ids: Collection[str] | None = None
) -> int:
    """Drop the explicit approvals of an update (on these groups, or everywhere)."""
    status = await conn.execute(
        "DELETE FROM explicit_approvals WHERE update_id = $1"
        " AND ($2::uuid[] IS NULL OR group_id = ANY ($2::uuid[]))",
        uuid.UUID(update_id),
        None if group_ids is None else list(group_ids),
    )
    return rows_affected(status)


async def effective_for(conn: Connection, update_id: str) -> dict[str, Effective]:
    rows = await conn.fetch(
        "SELECT group_id::text, action, deadline_kind, deadline_at, source_group_id::text,"
        " approved_at, approved_by FROM effective_approvals WHERE update_id = $1",
        uuid.UUID(update_id),
    )
    return {r["group_id"]: _effective(r) for r in rows}


async def save_effective(
    conn: Connection,
    update_id: str,
    upserts: Mapping[str, Effective],
    removed: Collection[str],
) -> None:
    """Write the changed effective approvals of one update in two round trips."""
    uid = uuid.UUID(update_id)
    if removed:
        await conn.execute(
            "DELETE FROM effective_approvals WHERE update_id = $1 AND group_id = ANY ($2::uuid[])",
            uid,
            list(removed),
        )
    if upserts:
        items = list(upserts.items())
        await conn.execute(
            "INSERT INTO effective_approvals (update_id, group_id, action, deadline_kind,"
            " deadline_at, source_group_id, approved_at, approved_by)"
            " SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
            " $6::uuid[], $7::timestamptz[], $8::text[])"
            " ON CONFLICT (update_id, group_id) DO UPDATE SET action = EXCLUDED.action,"
            " deadline_kind = EXCLUDED.deadline_kind, deadline_at = EXCLUDED.deadline_at,"
            " source_group_id = EXCLUDED.source_group_id, approved_at = EXCLUDED.approved_at,"
            " approved_by = EXCLUDED.approved_by",
            uid,
            [g for g, _ in items],
            [e.action for _, e in items],
            [e.deadline.kind for _, e in items],
            [e.deadline.at for _, e in items],
            [e.source_group for _, e in items],
            [e.approved_at for _, e in items],
            [e.approved_by for _, e in items],
        )


async def group_approvals(
    conn: Connection, group_id: str
) -> list[tuple[Update, Explicit | None, Effective]]:
    """Every update with an effective approval on the group, with its explicit one if any."""
    rows = await conn.fetch(
        f"SELECT {_U_COLUMNS}, f.action, f.deadline_kind, f.deadline_at,"
        " f.source_group_id::text, f.approved_at, f.approved_by,"
        " x.action AS x_action, x.deadline_kind AS x_kind, x.deadline_at AS x_at,"
        " x.approved_at AS x_approved_at, x.approved_by AS x_approved_by"
        " FROM effective_approvals f JOIN updates u USING (update_id)"
        " LEFT JOIN explicit_approvals x ON x.update_id = f.update_id AND x.group_id = f.group_id"
        " WHERE f.group_id = $1 ORDER BY u.release_date DESC, u.kb",
        uuid.UUID(group_id),
    )
    found: list[tuple[Update, Explicit | None, Effective]] = []
    for r in rows:
        explicit = (
            None
            if r["x_action"] is None
            else Explicit(
                r["x_action"],
                Deadline(r["x_kind"], r["x_at"]),
                r["x_approved_at"],
                r["x_approved_by"],
            )
        )
        effective = _effective(r)
        found.append((_update(r), explicit, effective))
    return found


async def effective_of_groups(
    conn: Connection, group_ids: Sequence[str]
) -> dict[str, list[tuple[str, Effective]]]:
    """Per update: the (group, effective approval) pairs among these groups."""
    rows = await conn.fetch(
        "SELECT update_id::text, group_id::text, action, deadline_kind, deadline_at,"
        " source_group_id::text, approved_at, approved_by FROM effective_approvals"
        " WHERE group_id = ANY ($1::uuid[])",
        list(group_ids),
    )
    found: dict[str, list[tuple[str, Effective]]] = {}
    for r in rows:
        found.setdefault(r["update_id"], []).append(
            (
                r["group_id"],
                _effective(r),
            )
        )
    return found


# --- rules ------------------------------------------------------------------------------------

_RULE_COLUMNS = (
    "rule_id::text, name, description, products, classifications, severities, title_contains,"
    " group_ids::text[], deadline, created_at, updated_at"
)


def _rule(r: Record) -> a.Rule:
    return a.Rule(
        rule_id=r["rule_id"],
        name=r["name"],
        description=r["description"],
        products=list(r["products"]),
        classifications=list(r["classifications"]),
        severities=list(r["severities"]),
        title_contains=r["title_contains"],
        group_ids=list(r["group_ids"]),
        deadline=r["deadline"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


async def rules(conn: Connection) -> list[a.Rule]:
    rows = await conn.fetch(f"SELECT {_RULE_COLUMNS} FROM rules ORDER BY lower(name)")
    return [_rule(r) for r in rows]


async def find_rule(conn: Connection, reference: str) -> a.Rule | None:
    as_id = _uuid(reference)
    row = await conn.fetchrow(
        f"SELECT {_RULE_COLUMNS} FROM rules WHERE rule_id = $1::uuid OR lower(name) = lower($2)",
        as_id,
        reference,
    )
    return None if row is None else _rule(row)


async def rule_name_taken(conn: Connection, name: str, but: str | None = None) -> bool:
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM rules WHERE lower(name) = lower($1)"
        " AND rule_id IS DISTINCT FROM $2::uuid)",
        name,
        but,
    )
    return taken


async def save_rule(conn: Connection, rule: a.Rule) -> None:
    await conn.execute(
        "INSERT INTO rules (rule_id, name, description, products, classifications, severities,"
        " title_contains, group_ids, deadline, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::uuid[], $9, $10, $11)"
        " ON CONFLICT (rule_id) DO UPDATE SET name = EXCLUDED.name,"
        " description = EXCLUDED.description, products = EXCLUDED.products,"
        " classifications = EXCLUDED.classifications, severities = EXCLUDED.severities,"
        " title_contains = EXCLUDED.title_contains, group_ids = EXCLUDED.group_ids,"
        " deadline = EXCLUDED.deadline, updated_at = EXCLUDED.updated_at",
        uuid.UUID(rule.rule_id),
        rule.name,
        rule.description,
        rule.products,
        list(rule.classifications),
        list(rule.severities),
        rule.title_contains,
        rule.group_ids,
        rule.deadline,
        rule.created_at,
        rule.updated_at,
    )


async def delete_rule(conn: Connection, rule_id: str) -> None:
    await conn.execute("DELETE FROM rules WHERE rule_id = $1", uuid.UUID(rule_id))
