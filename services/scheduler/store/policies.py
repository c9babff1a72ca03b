"""Policies and their assignment to groups (one policy per group at most)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from libs.contracts.policies import Policy, PolicySettings
from libs.db.pool import Connection, rows_affected
from services.scheduler.domain.policy import Assignment, PolicyContext
from services.scheduler.store.groups import parents


def _policy(r: asyncpg.Record) -> Policy:
    return Policy(
        policy_id=str(r["policy_id"]),
        name=r["name"],
        settings=PolicySettings.model_validate_json(r["settings"]),
        groups=list(r["groups"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


async def read_all(conn: Connection) -> list[Policy]:
    """Every policy with its groups (in assignment order), by name."""
    rows = await conn.fetch(
        "SELECT p.policy_id, p.name, p.settings::text AS settings, p.created_at, p.updated_at,"
        " coalesce(array_agg(a.group_id::text ORDER BY a.assigned_at)"
        "   FILTER (WHERE a.group_id IS NOT NULL), '{}') AS groups"
        " FROM policies p LEFT JOIN policy_assignments a USING (policy_id)"
        " GROUP BY p.policy_id ORDER BY lower(p.name)"
    )
    return [_policy(r) for r in rows]


async def find(conn: Connection, reference: str) -> Policy | None:
    """A policy given by id or name (case-insensitive)."""
    for policy in await read_all(conn):
        if reference in (policy.policy_id, policy.name) or policy.name.lower() == reference.lower():
            return policy
    return None


async def name_taken(conn: Connection, name: str, but: str | None = None) -> bool:
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM policies WHERE lower(name) = lower($1)"
        " AND policy_id IS DISTINCT FROM $2::uuid)",
        name,
        but,
    )
    return taken


async def save(
    conn: Connection, policy_id: str, name: str, settings: PolicySettings, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO policies (policy_id, name, settings, created_at, updated_at)"
        " VALUES ($1, $2, $3::jsonb, $4, $4) ON CONFLICT (policy_id) DO UPDATE SET"
        " name = EXCLUDED.name, settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at",
        uuid.UUID(policy_id),
        name,
        settings.model_dump_json(),
        now,
    )


async def delete(conn: Connection, policy_id: str) -> None:
    await conn.execute("DELETE FROM policies WHERE policy_id = $1", uuid.UUID(policy_id))


async def assign(conn: Connection, group_id: str, policy_id: str, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO policy_assignments (group_id, policy_id, assigned_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (group_id) DO UPDATE SET policy_id = EXCLUDED.policy_id,"
        " assigned_at = EXCLUDED.assigned_at",
        uuid.UUID(group_id),
        uuid.UUID(policy_id),
        now,
    )


async def unassign(conn: Connection, group_id: str) -> bool:
    """Remove the group's policy; False when it had none."""
    status = await conn.execute(
        "DELETE FROM policy_assignments WHERE group_id = $1", uuid.UUID(group_id)
    )
    return rows_affected(status) == 1


async def context(conn: Connection) -> PolicyContext:
    """The tree, every assignment and every policy's settings, to choose computers' policies."""
    rows = await conn.fetch(
        "SELECT a.group_id::text, a.policy_id::text, a.assigned_at FROM policy_assignments a"
    )
    found = await conn.fetch("SELECT policy_id::text, name, settings::text FROM policies")
    return PolicyContext(
        parents=await parents(conn),
        assignments={
            r["group_id"]: Assignment(r["policy_id"], r["group_id"], r["assigned_at"]) for r in rows
        },
        settings={
            r["policy_id"]: (r["name"], PolicySettings.model_validate_json(r["settings"]))
            for r in found
        },
    )
