"""A fleet known to the whole system, written straight into every service's schema.

Every service's migrations are applied first (as `lockgate migrate` does). The approval
service's tree, computers, memberships and updates are loaded by COPY exactly as
bench.bench_approval_scale loads them (bench.bench_approval_scale.fleet: a seeded tree of
computers / 100 groups, each computer in one or two groups, five updates); then the read
copies the other services would have built from approval's and the catalog's events are
filled set-wise from those tables (one database holds every schema): the scheduler's and
reporting's groups, memberships, computers and updates. Nothing here is timed as Lockgate's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from bench.bench_approval_scale.fleet import Updates, build_tree, load
from bench.common.infra import check
from bench.common.meters import MIB
from libs.db.migrations import migrate
from services.cli.service_registry import definition
from services.console.app import MIGRATIONS as CONSOLE_MIGRATIONS
from services.scheduler.domain.plans import NO_POLICY

COMPUTERS_PER_GROUP = 100
SEED = 19
ZONES = "ARRAY['Europe/Paris','America/New_York','Asia/Tokyo','Australia/Sydney']"

READ_COPIES = (
    # the shared group read copy (libs/read_copies/groups_sql), as approval's events fill it
    (
        "INSERT INTO {schema}.groups (group_id, name, parent_id)"
        " SELECT group_id, name, parent_id FROM approval.groups ON CONFLICT (group_id) DO NOTHING"
    ),
    (
        "INSERT INTO {schema}.memberships (computer_id, group_id)"
        " SELECT computer_id, group_id FROM approval.memberships"
    ),
)
SCHEDULER = (
    (
        # as after each computer's first check-in and plan: "no policy" already announced
        # (services/scheduler/domain/policy.py), so re-planning announces only changes
        "INSERT INTO scheduler.computers (computer_id, hostname, timezone, registered_at,"
        " last_checkin_at, operating_system, os_version, agent_version, published_policy)"
        f" SELECT computer_id, hostname, ({ZONES})[1 + abs(hashtext(computer_id)) % 4],"
        " registered_at, now() - interval '1 hour', 'Windows 11', '10.0.26100', '1.4.2',"
        f" '{NO_POLICY}' FROM approval.computers"
    ),
    (
        "INSERT INTO scheduler.updates (update_id, revision, kb, title, restart, command_line,"
        " return_codes) SELECT update_id, revision, kb, title, 'always', NULL, '[]'::jsonb"
        " FROM approval.updates"
    ),
)
REPORTING = (
    (
        "INSERT INTO reporting.computers (computer_id, hostname, registered_at, operating_system,"
        " os_version, architecture, agent_version, timezone, last_contact_at, policy)"
        " SELECT computer_id, hostname, registered_at, 'Windows 11', '10.0.26100', 'x64', '1.4.2',"
        f" ({ZONES})[1 + abs(hashtext(computer_id)) % 4], now() - interval '1 hour',"
        f" '{NO_POLICY}' FROM approval.computers"
    ),
    (
        "INSERT INTO reporting.updates (update_id, revision, kb, title, classification,"
        " return_codes) SELECT update_id, revision, kb, title, classification, '[]'::jsonb"
        " FROM approval.updates"
    ),
)


@dataclass(frozen=True)
class Fleet:
    computers: int
    groups: int
    memberships: int
    updates: Updates
    seconds: float
    database_mib: float


async def migrate_all(url: str) -> None:
    """Every service's schema, as `lockgate migrate` and the services' start apply them."""
    for service in ("catalog", "approval", "scheduler", "reporting"):
        found = definition(service)
        await migrate(url, service, found.migrations, found.mounted_migrations)
    await migrate(url, "console", CONSOLE_MIGRATIONS)


async def seed(url: str, computers: int) -> Fleet:
    """`computers` computers in computers / 100 groups, known to approval, scheduler and
    reporting; returns what was loaded."""
    started = time.perf_counter()
    await migrate_all(url)
    groups = max(2, computers // COMPUTERS_PER_GROUP)
    loaded, updates = await load(url, build_tree(groups, computers, SEED), SEED)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        for schema in ("scheduler", "reporting"):
            for statement in READ_COPIES:
                await conn.execute(statement.format(schema=schema))
        for statement in (*SCHEDULER, *REPORTING):
            await conn.execute(statement)
        await conn.execute("RESET session_replication_role")
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM scheduler.computers) AS scheduler,"
            " (SELECT count(*) FROM reporting.computers) AS reporting,"
            " (SELECT count(*) FROM reporting.memberships) AS memberships,"
            " pg_database_size(current_database()) AS size"
        )
    finally:
        await conn.close()
    assert counts is not None
    check(counts["scheduler"] == computers, f"{counts['scheduler']} scheduler computers")
    check(counts["reporting"] == computers, f"{counts['reporting']} reporting computers")
    check(counts["memberships"] == loaded.memberships, "reporting memberships differ")
    return Fleet(
        computers=computers,
        groups=groups,
        memberships=loaded.memberships,
        updates=updates,
        seconds=time.perf_counter() - started,
        database_mib=counts["size"] / MIB,
    )
