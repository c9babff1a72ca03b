"""Auto-approval rules as kept."""

from __future__ import annotations

import uuid

import asyncpg

from libs.contracts import approval as a
from libs.contracts.rings import RingGate
from libs.db.pool import Connection
from libs.domain.references import as_id

_RULE_COLUMNS = (
    "rule_id::text, name, description, products, classifications, severities, title_contains,"
    " group_ids::text[], deadline, rollout, created_at, updated_at"
)


def _rule(r: asyncpg.Record) -> a.Rule:
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
        rollout=None if r["rollout"] is None else RingGate.model_validate_json(r["rollout"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


async def every(conn: Connection) -> list[a.Rule]:
    rows = await conn.fetch(f"SELECT {_RULE_COLUMNS} FROM rules ORDER BY lower(name)")
    return [_rule(r) for r in rows]


async def find(conn: Connection, reference: str) -> a.Rule | None:
    """A rule by id or name (case-insensitive)."""
    row = await conn.fetchrow(
        f"SELECT {_RULE_COLUMNS} FROM rules WHERE rule_id = $1::uuid OR lower(name) = lower($2)",
        as_id(reference),
        reference,
    )
    return None if row is None else _rule(row)


async def name_taken(conn: Connection, name: str, but: str | None = None) -> bool:
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM rules WHERE lower(name) = lower($1)"
        " AND rule_id IS DISTINCT FROM $2::uuid)",
        name,
        but,
    )
    return taken


async def targeting(conn: Connection, group_id: str) -> list[str]:
    """Names of the rules that approve on a group."""
    rows = await conn.fetch(
        "SELECT name FROM rules WHERE $1 = ANY (group_ids) ORDER BY name", uuid.UUID(group_id)
    )
    return [r["name"] for r in rows]


async def save(conn: Connection, rule: a.Rule) -> None:
    await conn.execute(
        "INSERT INTO rules (rule_id, name, description, products, classifications, severities,"
        " title_contains, group_ids, deadline, created_at, updated_at, rollout)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::uuid[], $9, $10, $11, $12::jsonb)"
        " ON CONFLICT (rule_id) DO UPDATE SET name = EXCLUDED.name,"
        " description = EXCLUDED.description, products = EXCLUDED.products,"
        " classifications = EXCLUDED.classifications, severities = EXCLUDED.severities,"
        " title_contains = EXCLUDED.title_contains, group_ids = EXCLUDED.group_ids,"
        " deadline = EXCLUDED.deadline, updated_at = EXCLUDED.updated_at,"
        " rollout = EXCLUDED.rollout",
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
        None if rule.rollout is None else rule.rollout.model_dump_json(),
    )


async def delete(conn: Connection, rule_id: str) -> None:
    await conn.execute("DELETE FROM rules WHERE rule_id = $1", uuid.UUID(rule_id))
