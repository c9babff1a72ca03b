"""python -m bench.bench_fleet_list [--computers N] [--pages P]: load, then page each case."""

from __future__ import annotations

import argparse
import time
import uuid

import asyncpg

from bench import bench_fleet_list
from bench.common.infra import bench_main, check, description, environment, in_fresh_infra
from bench.common.report import print_environment, print_table
from bench.common.stats import percentile
from libs.bus import Bus, RpcClient
from libs.contracts import reporting as r
from libs.contracts.approval import ROOT_GROUP_ID
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.reporting.handlers import SERVICE as REPORTING
from tests.support.infra import Infra

UPDATES = [str(uuid.UUID(int=i + 1)) for i in range(3)]
GROUPS = [str(uuid.UUID(int=0x100 + i)) for i in range(10)]
LIMIT = 100

CASES: list[tuple[str, dict[str, object]]] = [
    ("sort name", {}),
    ("sort last contact", {"sort": "last_contact"}),
    ("sort failed", {"sort": "failed"}),
    ("not reporting", {"not_reporting": True}),
    ("failed", {"failed": True}),
    ("restart pending", {"restart_pending": True}),
    ("past deadline", {"past_deadline": True}),
    ("in group (with subgroups)", {"group": "Bench 3"}),
    ("search by name", {"search": "host-1"}),
]


async def load(conn: asyncpg.Connection, computers: int) -> None:
    """Computers, groups and memberships, three updates approved for All computers (one past
    its deadline) and their states, written set-wise (the benchmark is about reading)."""
    await conn.execute(
        "INSERT INTO reporting.computers (computer_id, hostname, registered_at,"
        " operating_system, os_version, architecture, agent_version, timezone,"
        " last_contact_at, installed, needed, failed, pending_restart, not_applicable)"
        " SELECT 'pc-' || lpad(i::text, 7, '0'), 'host-' || (i::bigint * 7919 % $1)::text, now(),"
        " 'Windows 11', '10.0.26100', 'x64', '1.4.2', 'Europe/Paris',"
        " CASE WHEN i % 33 = 0 THEN now() - interval '30 days'"
        "   ELSE now() - (i % 2000) * interval '4 minutes' END,"
        " 3 - (i % 50 = 0)::int - (i % 97 = 0)::int - (i % 5 = 0)::int,"
        " (i % 5 = 0)::int, (i % 50 = 0)::int, (i % 97 = 0)::int, 0"
        " FROM generate_series(1, $1) AS i",
        computers,
    )
    for n, group in enumerate(GROUPS):
        parent = GROUPS[n - 1] if n % 2 else ROOT_GROUP_ID
        await conn.execute(
            "INSERT INTO reporting.groups (group_id, name, parent_id) VALUES ($1, $2, $3)",
            uuid.UUID(group),
            f"Bench {n}",
            uuid.UUID(parent),
        )
    await conn.execute(
        "INSERT INTO reporting.memberships (computer_id, group_id)"
        " SELECT 'pc-' || lpad(i::text, 7, '0'), ($2::uuid[])[1 + i % 10]"
        " FROM generate_series(1, $1) AS i",
        computers,
        [uuid.UUID(g) for g in GROUPS],
    )
    for n, update in enumerate(UPDATES):
        await conn.execute(
            "INSERT INTO reporting.updates (update_id, revision, kb, title, classification,"
            " return_codes) VALUES ($1, 1, $2, $3, 'Security Updates', '[]')",
            uuid.UUID(update),
            str(5000000 + n),
            f"Bench update {n}",
        )
        await conn.execute(
            "INSERT INTO reporting.group_approvals (group_id, update_id, action, deadline)"
            " VALUES ($1, $2, 'required_install', CASE WHEN $3 THEN now() - interval '1 day'"
            " END)",
            uuid.UUID(ROOT_GROUP_ID),
            uuid.UUID(update),
            n == 0,
        )
    # Update 0: failed on every 50th, needed on every 5th, pending restart on every 97th.
    await conn.execute(
        "INSERT INTO reporting.computer_updates (computer_id, update_id, state, reported_at)"
        " SELECT 'pc-' || lpad(i::text, 7, '0'), u,"
        " CASE WHEN u <> $2::uuid THEN 'installed' WHEN i % 50 = 0 THEN 'failed'"
        "   WHEN i % 97 = 0 THEN 'installed_pending_restart' WHEN i % 5 = 0 THEN 'needed'"
        "   ELSE 'installed' END, now()"
        " FROM generate_series(1, $1) AS i, unnest($3::uuid[]) AS u",
        computers,
        uuid.UUID(UPDATES[0]),
        [uuid.UUID(u) for u in UPDATES],
    )
    await conn.execute("ANALYZE")


def raw_sql(case: dict[str, object], after: tuple[str, str] | None) -> tuple[str, list[object]]:
    """The same page by hand: filter, keyset, order, groups and compliance in one statement."""
    sort = str(case.get("sort", "name"))
    key, order = {
        "name": ("lower(c.hostname)", "lower(c.hostname), c.computer_id"),
        "last_contact": ("c.last_contact_at::text", "c.last_contact_at, c.computer_id"),
        "failed": ("(-c.failed)::text", "(-c.failed), c.computer_id"),
    }[sort]
    start = {
        "name": "(lower(c.hostname), c.computer_id) > ($1, $2)",
        "last_contact": "(c.last_contact_at, c.computer_id) > ($1::text::timestamptz, $2)",
        "failed": "((-c.failed), c.computer_id) > ($1::text::int, $2)",
    }[sort]
    args: list[object] = list(after) if after else []
    where = [start] if after else ["true"]
    if case.get("not_reporting"):
        where.append("c.last_contact_at < now() - interval '7 days'")
    if case.get("failed"):
        where.append("c.failed > 0")
    if case.get("restart_pending"):
        where.append("c.pending_restart > 0")
    if case.get("group"):
        where.append(
            "c.computer_id IN (SELECT computer_id FROM reporting.memberships WHERE group_id IN"
            " (WITH RECURSIVE s(g) AS (SELECT group_id FROM reporting.groups WHERE name = 'Bench 3'"
            " UNION ALL SELECT x.group_id FROM reporting.groups x JOIN s ON x.parent_id = s.g)"
            " SELECT g FROM s))"
        )
    if case.get("search"):
        where.append("(lower(c.hostname) LIKE 'host-1%' OR c.computer_id LIKE 'host-1%')")
    if case.get("past_deadline"):
        where.append(
            "EXISTS (SELECT 1 FROM reporting.group_approvals a LEFT JOIN"
            " reporting.computer_updates cu ON cu.update_id = a.update_id"
            " AND cu.computer_id = c.computer_id WHERE a.deadline <= now()"
            " AND a.group_id = '" + ROOT_GROUP_ID + "'"
            " AND coalesce(cu.state, 'no_status') IN ('needed', 'failed', 'no_status'))"
        )
    sql = (
        f"WITH p AS (SELECT c.*, {key} AS key FROM reporting.computers c"
        f" WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {LIMIT})"
        " SELECT p.*, (SELECT array_agg(g.name ORDER BY g.name) FROM reporting.memberships m"
        "   JOIN reporting.groups g USING (group_id) WHERE m.computer_id = p.computer_id) AS g,"
        " (SELECT jsonb_object_agg(s, n) FROM (SELECT coalesce(cu.state, 'no_status') AS s,"
        "   count(*) AS n FROM reporting.group_approvals a LEFT JOIN reporting.computer_updates"
        "   cu ON cu.update_id = a.update_id AND cu.computer_id = p.computer_id"
        "   WHERE a.group_id = '" + ROOT_GROUP_ID + "' GROUP BY 1) x) AS states"
        f" FROM p ORDER BY {order.replace('c.', 'p.')}"
    )
    return sql, args


async def measure(infra: Infra, computers: int, pages: int) -> None:
    print_environment(await environment(infra))
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, metrics_sample_seconds=3600
    )
    process = ServiceProcess(REPORTING, settings, http_port=0)
    await process.start()
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    conn = await asyncpg.connect(infra.database_url)
    try:
        started = time.perf_counter()
        await load(conn, computers)
        print(f"loaded {computers:,} computers in {time.perf_counter() - started:.1f} s")
        rpc = RpcClient(bus, source="bench", timeout=120)
        rows = []
        for name, case in CASES:
            lockgate: list[float] = []
            cursor = None
            seen = 0
            for _ in range(pages):
                t = time.perf_counter()
                page = await rpc.call(
                    r.LIST_COMPUTERS, r.ListComputers.model_validate({**case, "cursor": cursor})
                )
                lockgate.append(time.perf_counter() - t)
                seen += len(page.computers)
                cursor = page.next_cursor
                if cursor is None:
                    break
            raw: list[float] = []
            after: tuple[str, str] | None = None
            raw_seen = 0
            for _ in range(len(lockgate)):
                sql, args = raw_sql(case, after)
                t = time.perf_counter()
                found = await conn.fetch(sql, *args)
                raw.append(time.perf_counter() - t)
                raw_seen += len(found)
                if len(found) < LIMIT:
                    break
                after = (str(found[-1]["key"]), found[-1]["computer_id"])
            check(seen == raw_seen, f"{name}: Lockgate listed {seen}, the baseline {raw_seen}")
            p50, raw50 = percentile(lockgate, 50), percentile(raw, 50)
            rows.append(
                [
                    name,
                    str(len(lockgate)),
                    f"{p50 * 1000:.1f}",
                    f"{percentile(lockgate, 95) * 1000:.1f}",
                    f"{raw50 * 1000:.1f}",
                    f"{p50 / raw50:.2f}",
                ]
            )
            print(f"  {name}: {len(lockgate)} pages, p50 {p50 * 1000:.1f} ms", flush=True)
        print(f"\nfleet list, {computers:,} computers, pages of {LIMIT}:")
        print_table(
            ["case", "pages", "lockgate p50 ms", "lockgate p95 ms", "raw p50 ms", "ratio"], rows
        )
    finally:
        await conn.close()
        await bus.close()
        await process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=description(bench_fleet_list.__doc__))
    parser.add_argument("--computers", type=int, default=20_000, help="fleet size")
    parser.add_argument("--pages", type=int, default=20, help="keyset pages walked per case")
    args = parser.parse_args()
    bench_main(lambda: in_fresh_infra(lambda infra: measure(infra, args.computers, args.pages)))


if __name__ == "__main__":
    main()
