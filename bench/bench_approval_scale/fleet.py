"""The synthetic fleet: a seeded group tree, computers in one or two groups, a few updates."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.common.infra import check
from bench.common.meters import MIB
from libs.contracts import approval as a
from libs.contracts.policies import PolicySettings

TOP_LEVEL_GROUPS = 10
MAX_DEPTH = 8
CHILD_SHARE = 0.1
COPY_CHUNK = 100_000
ROOT = uuid.UUID(a.ROOT_GROUP_ID)
REGISTERED_AT = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Synthetic:
    """A seeded group tree: index 0 is All computers; parents come before their children."""

    ids: list[uuid.UUID]
    parent: list[int]
    depth: list[int]
    subtree: list[int]
    """Groups in each group's subtree, itself included."""
    computers: int
    child: int
    """The group near the root whose subtree is closest to CHILD_SHARE of the tree."""

    @property
    def groups(self) -> int:
        return len(self.ids)

    def subtree_ids(self, top: int) -> set[str]:
        inside = {top}
        for index in range(top + 1, self.groups):
            if self.parent[index] in inside:
                inside.add(index)
        return {str(self.ids[index]) for index in inside}


def build_tree(groups: int, computers: int, seed: int) -> Synthetic:
    rng = random.Random(seed)
    ids = [ROOT]
    parent = [-1]
    depth = [0]
    open_parents = [0]  # groups that may take children (depth < MAX_DEPTH)
    for index in range(1, groups):
        chosen = 0 if index <= TOP_LEVEL_GROUPS else rng.choice(open_parents)
        ids.append(uuid.UUID(int=rng.getrandbits(128)))
        parent.append(chosen)
        depth.append(depth[chosen] + 1)
        if depth[index] < MAX_DEPTH:
            open_parents.append(index)
    subtree = [1] * groups
    for index in range(groups - 1, 0, -1):
        subtree[parent[index]] += subtree[index]
    target = CHILD_SHARE * groups
    near_root = [i for i in range(1, groups) if depth[i] <= 2]
    child = min(near_root, key=lambda i: (abs(subtree[i] - target), i))
    return Synthetic(ids, parent, depth, subtree, computers, child)


def group_rows(tree: Synthetic) -> Iterator[tuple[uuid.UUID, str, uuid.UUID]]:
    for index in range(1, tree.groups):
        yield tree.ids[index], f"Group {index:05d}", tree.ids[tree.parent[index]]


def computer_id(index: int) -> str:
    return f"pc-{index:07d}"


def computer_rows(tree: Synthetic) -> Iterator[tuple[str, str, datetime]]:
    for index in range(tree.computers):
        yield computer_id(index), f"PC-{index:07d}.corp.example", REGISTERED_AT


def membership_rows(tree: Synthetic, seed: int) -> Iterator[tuple[str, uuid.UUID]]:
    """Each computer in one or two distinct non-root groups."""
    rng = random.Random(seed + 1)
    last = tree.groups - 1
    for index in range(tree.computers):
        first = rng.randint(1, last)
        yield computer_id(index), tree.ids[first]
        if last > 1 and rng.random() < 0.5:
            second = rng.randint(1, last)
            while second == first:
                second = rng.randint(1, last)
            yield computer_id(index), tree.ids[second]


@dataclass(frozen=True)
class Updates:
    warmup: str
    measured: str
    others: list[str]


def update_rows(seed: int) -> tuple[Updates, list[tuple[Any, ...]]]:
    rng = random.Random(seed + 2)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(5)]
    rows = [
        (
            update_id,
            str(5_099_001 + number),
            1,
            "microsoft",
            f"2026-01 Cumulative Update for Windows (KB{5_099_001 + number})",
            "Security Updates",
            "Critical",
            ["Windows"],
            REGISTERED_AT + timedelta(days=number),
        )
        for number, update_id in enumerate(ids)
    ]
    return Updates(str(ids[0]), str(ids[1]), [str(i) for i in ids[2:]]), rows


def chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class Loaded:
    seconds: float
    computers: int
    memberships: int
    database_mib: float
    max_depth: int
    depth_counts: dict[int, int]


async def load(url: str, tree: Synthetic, seed: int) -> tuple[Loaded, Updates]:
    started = time.perf_counter()
    conn = await asyncpg.connect(url, server_settings={"search_path": "approval"})
    try:
        await conn.execute("SET session_replication_role = replica")  # no FK triggers
        await conn.copy_records_to_table(
            "groups",
            records=list(group_rows(tree)),
            columns=["group_id", "name", "parent_id"],
            schema_name="approval",
        )
        for chunk in chunks(computer_rows(tree), COPY_CHUNK):
            await conn.copy_records_to_table(
                "computers",
                records=chunk,
                columns=["computer_id", "hostname", "registered_at"],
                schema_name="approval",
            )
        memberships = 0
        for chunk in chunks(membership_rows(tree, seed), COPY_CHUNK):
            memberships += len(chunk)
            await conn.copy_records_to_table(
                "memberships",
                records=chunk,
                columns=["computer_id", "group_id"],
                schema_name="approval",
            )
        updates, rows = update_rows(seed)
        await conn.copy_records_to_table(
            "updates",
            records=rows,
            columns=[
                "update_id",
                "kb",
                "revision",
                "origin",
                "title",
                "classification",
                "severity",
                "product_families",
                "release_date",
            ],
            schema_name="approval",
        )
        await conn.execute("RESET session_replication_role")
        await conn.execute("ANALYZE")
        await conn.execute("CHECKPOINT")
        counted = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM groups) AS groups,"
            " (SELECT count(*) FROM computers) AS computers,"
            " (SELECT count(*) FROM memberships) AS memberships,"
            " pg_database_size(current_database()) AS size"
        )
    finally:
        await conn.close()
    assert counted is not None
    check(counted["groups"] == tree.groups, f"{counted['groups']} groups loaded")
    check(counted["computers"] == tree.computers, f"{counted['computers']} computers loaded")
    check(counted["memberships"] == memberships, f"{counted['memberships']} memberships loaded")
    loaded = Loaded(
        seconds=time.perf_counter() - started,
        computers=tree.computers,
        memberships=memberships,
        database_mib=counted["size"] / MIB,
        max_depth=max(tree.depth),
        depth_counts=dict(sorted(Counter(tree.depth).items())),
    )
    return loaded, updates


ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC")
"""Computers' time zones, in turn (install windows are local)."""
POLICIES = (
    ("Workstations", PolicySettings(use_maintenance_window=False, scheduled_time="03:00")),
    ("Servers", PolicySettings(install_mode="prompt_user", scheduled_day="sunday")),
)
"""Policies assigned to the first top-level groups (the rest has none: recommended values)."""


ANNOUNCED = """
WITH RECURSIVE walk (group_id, top_id, depth) AS (
    SELECT group_id, group_id, 1 FROM groups
    WHERE parent_id = '00000000-0000-0000-0000-000000000001'
    UNION ALL
    SELECT g.group_id, w.top_id, w.depth + 1 FROM groups g JOIN walk w ON g.parent_id = w.group_id
),
chosen AS (
    SELECT DISTINCT ON (m.computer_id) m.computer_id, a.policy_id
    FROM memberships m JOIN walk w USING (group_id)
    JOIN policy_assignments a ON a.group_id = w.top_id
    ORDER BY m.computer_id, w.depth, a.policy_id::text
)
UPDATE computers c SET published_policy_id = chosen.policy_id,
    published_policy = coalesce(p.name, 'no policy')
FROM computers k LEFT JOIN chosen USING (computer_id) LEFT JOIN policies p USING (policy_id)
WHERE c.computer_id = k.computer_id
"""
"""Each computer's policy in force as already announced, so the first plans announce nothing
(policies sit on top-level groups only: the nearest is the top-level ancestor of the
computer's shallowest group under one, the lower policy id on a tie, as
services/scheduler/domain/policy.py decides it); the benchmark times plans, not a million
first announcements."""


@dataclass(frozen=True)
class SchedulerLoaded:
    seconds: float
    database_mib: float


async def load_scheduler(url: str, tree: Synthetic) -> SchedulerLoaded:
    """The scheduler's copies of the same fleet, copied inside the database from approval's
    rows (the events that would carry them are not what is measured): the group tree and
    memberships, every computer as after its first check-in (x64, Windows 11, a time zone in
    turn, no plan yet, its policy in force as already announced: ANNOUNCED), the updates
    (Microsoft, restart always, so no immediate install and no timer is due during the run)
    and two policies on two top-level groups."""
    started = time.perf_counter()
    conn = await asyncpg.connect(url, server_settings={"search_path": "scheduler"})
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "INSERT INTO groups (group_id, name, parent_id)"
            " SELECT group_id, name, parent_id FROM approval.groups ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO memberships (computer_id, group_id)"
            " SELECT computer_id, group_id FROM approval.memberships"
        )
        await conn.execute(
            "INSERT INTO computers (computer_id, hostname, os_version, timezone, agent_version,"
            " registered_at, last_checkin_at, operating_system, free_disk_bytes, memory_bytes)"
            " SELECT computer_id, hostname, '10.0.26100',"
            " ($1::text[])[1 + (substr(computer_id, 4)::int % cardinality($1::text[]))],"
            " '1.0.0', registered_at, registered_at, 'Windows 11', 64 * 1024::bigint ^ 3,"
            " 16 * 1024::bigint ^ 3 FROM approval.computers",
            list(ZONES),
        )
        await conn.execute(
            "INSERT INTO updates (update_id, revision, kb, title, restart, command_line,"
            " return_codes) SELECT update_id, revision, kb, title, 'always', NULL, '[]'"
            " FROM approval.updates"
        )
        for index, (name, settings) in enumerate(POLICIES):
            policy_id = uuid.UUID(int=index + 1)
            await conn.execute(
                "INSERT INTO policies (policy_id, name, settings, created_at, updated_at)"
                " VALUES ($1, $2, $3::jsonb, $4, $4)",
                policy_id,
                name,
                settings.model_dump_json(),
                REGISTERED_AT,
            )
            await conn.execute(
                "INSERT INTO policy_assignments (group_id, policy_id, assigned_at)"
                " VALUES ($1, $2, $3)",
                tree.ids[index + 1],
                policy_id,
                REGISTERED_AT,
            )
        await conn.execute(ANNOUNCED)
        await conn.execute("RESET session_replication_role")
        await conn.execute("ANALYZE")
        await conn.execute("CHECKPOINT")
        counted = await conn.fetchval("SELECT count(*) FROM computers")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    check(counted == tree.computers, f"{counted} scheduler computers loaded")
    return SchedulerLoaded(time.perf_counter() - started, size / MIB)
