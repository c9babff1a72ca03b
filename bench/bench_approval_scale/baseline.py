"""The raw floor of "every plan current": the same plans rewritten by hand with asyncpg.

Over every computer, in key order, one transaction per 5,000 computers (the planner's range):
lock and read their stored plan texts (`SELECT ... FOR UPDATE`), then write the same texts
back with one `UPDATE ... FROM unnest(...)`; no domain rule, no timer, no other table. What
the planner does beyond this floor is reading its inputs, deciding, and the timers and
`planned_at` rows.
"""

from __future__ import annotations

import time

import asyncpg

RANGE_SIZE = 5000
"""As the planner's ranges (services/scheduler/store/plans.py)."""

SELECT = (
    "SELECT computer_id, plan::text AS plan, plan_hash FROM scheduler.computers"
    " WHERE computer_id > $1 ORDER BY computer_id LIMIT $2 FOR UPDATE"
)
UPDATE = (
    "UPDATE scheduler.computers c SET plan = p.plan::jsonb, plan_hash = p.hash"
    " FROM unnest($1::text[], $2::text[], $3::text[]) AS p (computer_id, plan, hash)"
    " WHERE c.computer_id = p.computer_id"
)


async def rewrite_plans(url: str, size: int = RANGE_SIZE) -> tuple[float, int]:
    """(seconds, computers) to lock, read and rewrite every stored plan, `size` at a time."""
    conn = await asyncpg.connect(url)
    try:
        written = 0
        after = ""
        started = time.perf_counter()
        while True:
            async with conn.transaction():
                rows = await conn.fetch(SELECT, after, size)
                if not rows:
                    break
                await conn.execute(
                    UPDATE,
                    [r["computer_id"] for r in rows],
                    [r["plan"] for r in rows],
                    [r["plan_hash"] for r in rows],
                )
            written += len(rows)
            after = rows[-1]["computer_id"]
        return time.perf_counter() - started, written
    finally:
        await conn.close()
