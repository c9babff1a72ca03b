"""scheduler's queries (schema `scheduler` only)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.contracts.agents import ComputerPlan
from libs.contracts.approval import ROOT_GROUP_ID, ActionName
from libs.contracts.catalog import ReturnCode, UpdateSnapshot
from libs.contracts.policies import AgentRelease, Policy, PolicySettings
from libs.contracts.scheduler import AgentCheckin
from libs.db.pool import Connection, rows_affected
from libs.domain.agent_reports import RESTART_COMPLETES, Observation
from libs.domain.resolution import Deadline
from services.scheduler.domain.plans import Progress, UpdateFacts
from services.scheduler.domain.policy import Assignment
from services.scheduler.domain.restarts import RestartState

Record = Any  # an asyncpg Record


async def record_checkin(conn: Connection, checkin: AgentCheckin, now: datetime) -> bool:
    """Create or refresh the computer and mark its plan for recomputing; True when this
    check-in registered it.

    One statement, so two replicas handling a new computer's first check-ins at once still
    register it exactly once.
    """
    inserted: bool = await conn.fetchval(
        "INSERT INTO computers (computer_id, hostname, os_version, timezone, agent_version,"
        "                       registered_at, last_checkin_at, hardware_id, architecture,"
        "                       user_logged_on, plan_dirty_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $6)"
        " ON CONFLICT (computer_id) DO UPDATE SET"
        "   hostname = EXCLUDED.hostname, os_version = EXCLUDED.os_version,"
        "   timezone = EXCLUDED.timezone, agent_version = EXCLUDED.agent_version,"
        "   last_checkin_at = EXCLUDED.last_checkin_at, hardware_id = EXCLUDED.hardware_id,"
        "   architecture = EXCLUDED.architecture, user_logged_on = EXCLUDED.user_logged_on,"
        "   checkins_total = computers.checkins_total + 1"
        " RETURNING xmax = 0",
        checkin.computer_id,
        checkin.hostname,
        checkin.os_version,
        checkin.timezone,
        checkin.agent_version,
        now,
        checkin.hardware_id,
        checkin.architecture,
        checkin.user_logged_on,
    )
    return inserted


async def known(conn: Connection, computer_id: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM computers WHERE computer_id = $1)", computer_id
    )
    return found


async def set_user_logged_on(conn: Connection, computer_id: str, value: bool) -> None:
    await conn.execute(
        "UPDATE computers SET user_logged_on = $2 WHERE computer_id = $1", computer_id, value
    )


# --- marking plans to recompute --------------------------------------------------------------


async def mark_dirty(conn: Connection, computer_ids: Sequence[str], now: datetime) -> None:
    await conn.execute(
        "UPDATE computers SET plan_dirty_at = $2 WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
        now,
    )


async def mark_group_dirty(conn: Connection, group_id: str, now: datetime) -> int:
    """Every computer of a group (All computers: every computer)."""
    if group_id == ROOT_GROUP_ID:
        status = await conn.execute("UPDATE computers SET plan_dirty_at = $1", now)
    else:
        status = await conn.execute(
            "UPDATE computers c SET plan_dirty_at = $2 FROM memberships m"
            " WHERE m.group_id = $1 AND m.computer_id = c.computer_id",
            uuid.UUID(group_id),
            now,
        )
    return rows_affected(status)


async def mark_all_dirty(conn: Connection, now: datetime) -> None:
    """Policies or the tree changed: every plan may have (rare, operator-driven)."""
    await conn.execute("UPDATE computers SET plan_dirty_at = $1", now)


async def mark_update_dirty(conn: Connection, update_id: str, now: datetime) -> None:
    """An update's facts changed: computers of the groups it is approved for."""
    groups = await conn.fetch(
        "SELECT group_id::text FROM group_approvals WHERE update_id = $1", uuid.UUID(update_id)
    )
    for row in groups:
        await mark_group_dirty(conn, row["group_id"], now)


async def claim_dirty(conn: Connection, limit: int) -> list[tuple[str, datetime]]:
    """Computers whose plan must be recomputed, locked for this transaction only."""
    rows = await conn.fetch(
        "SELECT computer_id, plan_dirty_at FROM computers WHERE plan_dirty_at IS NOT NULL"
        " ORDER BY plan_dirty_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [(r["computer_id"], r["plan_dirty_at"]) for r in rows]


# --- read copies: groups, membership, approvals, updates ------------------------------------


async def delete_group(conn: Connection, group_id: str) -> None:
    gid = uuid.UUID(group_id)
    await conn.execute("DELETE FROM group_approvals WHERE group_id = $1", gid)
    await conn.execute("DELETE FROM policy_assignments WHERE group_id = $1", gid)


async def parents(conn: Connection) -> dict[str, str | None]:
    rows = await conn.fetch("SELECT group_id::text, parent_id::text FROM groups")
    return {r["group_id"]: r["parent_id"] for r in rows}


async def put_group_approval(
    conn: Connection, group_id: str, update_id: str, action: str, deadline: Deadline
) -> None:
    await conn.execute(
        "INSERT INTO group_approvals (group_id, update_id, action, deadline_kind, deadline_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, update_id) DO UPDATE SET"
        " action = EXCLUDED.action, deadline_kind = EXCLUDED.deadline_kind,"
        " deadline_at = EXCLUDED.deadline_at",
        uuid.UUID(group_id),
        uuid.UUID(update_id),
        action,
        deadline.kind,
        deadline.at,
    )


async def delete_group_approval(conn: Connection, group_id: str, update_id: str) -> None:
    await conn.execute(
        "DELETE FROM group_approvals WHERE group_id = $1 AND update_id = $2",
        uuid.UUID(group_id),
        uuid.UUID(update_id),
    )


async def put_update(conn: Connection, update: UpdateSnapshot) -> bool:
    """Keep the newest revision's facts; True when they changed."""
    status = await conn.execute(
        "INSERT INTO updates (update_id, revision, kb, title, restart, command_line, return_codes)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT (update_id) DO UPDATE SET"
        " revision = EXCLUDED.revision, kb = EXCLUDED.kb, title = EXCLUDED.title,"
        " restart = EXCLUDED.restart, command_line = EXCLUDED.command_line,"
        " return_codes = EXCLUDED.return_codes WHERE updates.revision < EXCLUDED.revision",
        uuid.UUID(update.update_id),
        update.revision,
        update.kb,
        update.title,
        update.restart,
        None if update.package is None else update.package.command_line,
        json.dumps([r.model_dump() for r in update.return_codes]),
    )
    return rows_affected(status) == 1


async def delete_update(conn: Connection, update_id: str) -> None:
    uid = uuid.UUID(update_id)
    await conn.execute("DELETE FROM group_approvals WHERE update_id = $1", uid)
    await conn.execute("DELETE FROM computer_updates WHERE update_id = $1", uid)
    await conn.execute("DELETE FROM updates WHERE update_id = $1", uid)


async def facts(conn: Connection, update_ids: Sequence[str]) -> dict[str, UpdateFacts]:
    rows = await conn.fetch(
        "SELECT update_id::text, kb, title, restart, command_line, return_codes FROM updates"
        " WHERE update_id = ANY ($1::uuid[])",
        list(update_ids),
    )
    return {
        r["update_id"]: UpdateFacts(
            kb=r["kb"],
            title=r["title"],
            restart=r["restart"],
            command_line=r["command_line"],
            return_codes=[ReturnCode.model_validate(c) for c in json.loads(r["return_codes"])],
        )
        for r in rows
    }


# --- planning inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class ComputerRow:
    computer_id: str
    timezone: str
    user_logged_on: bool
    last_checkin_at: datetime
    last_window_at: datetime | None
    deadline_fired_through: datetime | None
    plan_hash: str | None
    restart: RestartState
    agent_version: str


def _computer(r: Record) -> ComputerRow:
    return ComputerRow(
        computer_id=r["computer_id"],
        timezone=r["timezone"],
        user_logged_on=r["user_logged_on"],
        last_checkin_at=r["last_checkin_at"],
        last_window_at=r["last_window_at"],
        deadline_fired_through=r["deadline_fired_through"],
        plan_hash=r["plan_hash"],
        restart=RestartState(r["restart_phase"], r["restart_due_at"], r["restart_prompts"]),
        agent_version=r["agent_version"],
    )


async def computers(conn: Connection, computer_ids: Sequence[str]) -> dict[str, ComputerRow]:
    rows = await conn.fetch(
        "SELECT computer_id, timezone, user_logged_on, last_checkin_at, last_window_at,"
        " deadline_fired_through, plan_hash, restart_phase, restart_due_at, restart_prompts,"
        " agent_version FROM computers WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    return {r["computer_id"]: _computer(r) for r in rows}


async def memberships(conn: Connection, computer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every group of each computer, All computers first."""
    rows = await conn.fetch(
        "SELECT computer_id, group_id::text FROM memberships WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    found: dict[str, list[str]] = {c: [ROOT_GROUP_ID] for c in computer_ids}
    for r in rows:
        found[r["computer_id"]].append(r["group_id"])
    return found


async def approvals_of_groups(
    conn: Connection, group_ids: Sequence[str]
) -> dict[str, list[tuple[str, ActionName, Deadline]]]:
    """Per group: (update, action, deadline) of its effective approvals."""
    rows = await conn.fetch(
        "SELECT group_id::text, update_id::text, action, deadline_kind, deadline_at"
        " FROM group_approvals WHERE group_id = ANY ($1::uuid[])",
        list(group_ids),
    )
    found: dict[str, list[tuple[str, ActionName, Deadline]]] = {}
    for r in rows:
        found.setdefault(r["group_id"], []).append(
            (r["update_id"], r["action"], Deadline(r["deadline_kind"], r["deadline_at"]))
        )
    return found


async def progress(conn: Connection, computer_ids: Sequence[str]) -> dict[str, dict[str, Progress]]:
    rows = await conn.fetch(
        "SELECT computer_id, update_id::text, state, planned_at, immediate_sent_at"
        " FROM computer_updates WHERE computer_id = ANY ($1::text[])",
        list(computer_ids),
    )
    found: dict[str, dict[str, Progress]] = {c: {} for c in computer_ids}
    for r in rows:
        found[r["computer_id"]][r["update_id"]] = Progress(
            r["state"], r["planned_at"], r["immediate_sent_at"]
        )
    return found


async def mark_planned(
    conn: Connection, computer_id: str, update_ids: Sequence[str], now: datetime
) -> None:
    """Remember when each update first entered the computer's plan."""
    await conn.execute(
        "INSERT INTO computer_updates (computer_id, update_id, planned_at)"
        " SELECT $1, unnest($2::uuid[]), $3 ON CONFLICT (computer_id, update_id)"
        " DO UPDATE SET planned_at = coalesce(computer_updates.planned_at, EXCLUDED.planned_at)",
        computer_id,
        list(update_ids),
        now,
    )


async def held_states(
    conn: Connection, computer_id: str, update_ids: Sequence[str]
) -> dict[tuple[str, str], tuple[str, datetime | None]]:
    """Lock this computer's rows for these updates, creating missing ones (state `unknown`),
    in update order so two replicas handling reports of one computer never deadlock;
    returns (state, reported_at of the report that set it) per (computer, update)."""
    ordered = sorted(set(update_ids))
    await conn.execute(
        "INSERT INTO computer_updates (computer_id, update_id)"
        " SELECT $1, u FROM unnest($2::uuid[]) AS u ORDER BY u ON CONFLICT DO NOTHING",
        computer_id,
        ordered,
    )
    rows = await conn.fetch(
        "SELECT update_id::text, state, state_at FROM computer_updates"
        " WHERE computer_id = $1 AND update_id = ANY ($2::uuid[])"
        " ORDER BY update_id FOR UPDATE",
        computer_id,
        ordered,
    )
    return {(computer_id, r["update_id"]): (r["state"], r["state_at"]) for r in rows}


async def record_states(conn: Connection, computer_id: str, changes: Sequence[Observation]) -> None:
    """Store states the agent's reports moved, stamped with the agent's `reported_at`."""
    await conn.execute(
        "UPDATE computer_updates cu SET state = u.state, state_at = u.at"
        " FROM unnest($2::uuid[], $3::text[], $4::timestamptz[]) AS u (update_id, state, at)"
        " WHERE cu.computer_id = $1 AND cu.update_id = u.update_id",
        computer_id,
        [o.update_id for o in changes],
        [o.state for o in changes],
        [o.reported_at for o in changes],
    )


async def complete_restart(conn: Connection, computer_id: str, at: datetime) -> None:
    """A restart turns this computer's pending installs into installed ones."""
    pending, done = RESTART_COMPLETES
    await conn.execute(
        "UPDATE computer_updates SET state = $4, state_at = greatest(state_at, $2)"
        " WHERE computer_id = $1 AND state = $3",
        computer_id,
        at,
        pending,
        done,
    )


async def save_plan(
    conn: Connection, computer_id: str, plan_json: str, digest: str, dirty_seen: datetime | None
) -> None:
    """Store the plan; the dirty mark clears only if nobody marked it again meanwhile."""
    await conn.execute(
        "UPDATE computers SET plan = $2::jsonb, plan_hash = $3,"
        " plan_dirty_at = CASE WHEN plan_dirty_at IS NOT DISTINCT FROM $4 THEN NULL"
        "                      ELSE plan_dirty_at END"
        " WHERE computer_id = $1",
        computer_id,
        plan_json,
        digest,
        dirty_seen,
    )


async def plans(
    conn: Connection, computer_ids: Sequence[str]
) -> dict[str, tuple[ComputerPlan, ComputerRow]]:
    """Stored plans with their computers (computers never planned are left out)."""
    rows = await conn.fetch(
        "SELECT computer_id, timezone, user_logged_on, last_checkin_at, last_window_at,"
        " deadline_fired_through, plan_hash, restart_phase, restart_due_at, restart_prompts,"
        " agent_version, plan::text AS plan FROM computers"
        " WHERE computer_id = ANY ($1::text[]) AND plan IS NOT NULL",
        list(computer_ids),
    )
    return {
        r["computer_id"]: (ComputerPlan.model_validate_json(r["plan"]), _computer(r)) for r in rows
    }


async def set_timers(conn: Connection, timers: Sequence[tuple[str, str, datetime | None]]) -> None:
    """Set or drop many timers at once: (computer, kind, due or None)."""
    dropped = [(c, k) for c, k, due in timers if due is None]
    kept = [(c, k, due) for c, k, due in timers if due is not None]
    if dropped:
        await conn.execute(
            "DELETE FROM timers t USING unnest($1::text[], $2::text[]) AS d (computer_id, kind)"
            " WHERE t.computer_id = d.computer_id AND t.kind = d.kind",
            [c for c, _ in dropped],
            [k for _, k in dropped],
        )
    if kept:
        await conn.execute(
            "INSERT INTO timers (computer_id, kind, due_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])"
            " ON CONFLICT (computer_id, kind) DO UPDATE SET due_at = EXCLUDED.due_at",
            [c for c, _, _ in kept],
            [k for _, k, _ in kept],
            [d for _, _, d in kept],
        )


async def set_marks(
    conn: Connection, *, last_window: Sequence[str], deadline_fired: Sequence[str], at: datetime
) -> None:
    """Remember that windows and deadlines fired at `at` for these computers."""
    if last_window:
        await conn.execute(
            "UPDATE computers SET last_window_at = $2 WHERE computer_id = ANY ($1::text[])",
            list(last_window),
            at,
        )
    if deadline_fired:
        await conn.execute(
            "UPDATE computers SET deadline_fired_through = $2 WHERE computer_id = ANY ($1::text[])",
            list(deadline_fired),
            at,
        )


async def mark_immediate_sent_many(
    conn: Connection, sent: Sequence[tuple[str, str]], at: datetime
) -> None:
    await conn.execute(
        "UPDATE computer_updates c SET immediate_sent_at = $3"
        " FROM unnest($1::text[], $2::uuid[]) AS s (computer_id, update_id)"
        " WHERE c.computer_id = s.computer_id AND c.update_id = s.update_id",
        [c for c, _ in sent],
        [u for _, u in sent],
        at,
    )


async def stored_plan(conn: Connection, computer_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT plan::text FROM computers WHERE computer_id = $1", computer_id
    )
    return found


async def set_restart(conn: Connection, computer_id: str, state: RestartState) -> None:
    await conn.execute(
        "UPDATE computers SET restart_phase = $2, restart_due_at = $3, restart_prompts = $4"
        " WHERE computer_id = $1",
        computer_id,
        state.phase,
        state.due_at,
        state.prompts,
    )


# --- policies -----------------------------------------------------------------------------------


def _policy(r: Record, groups: list[str]) -> Policy:
    return Policy(
        policy_id=str(r["policy_id"]),
        name=r["name"],
        settings=PolicySettings.model_validate_json(r["settings"]),
        groups=groups,
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


async def policies(conn: Connection) -> list[Policy]:
    rows = await conn.fetch(
        "SELECT p.policy_id, p.name, p.settings::text AS settings, p.created_at, p.updated_at,"
        " coalesce(array_agg(a.group_id::text ORDER BY a.assigned_at)"
        "   FILTER (WHERE a.group_id IS NOT NULL), '{}') AS groups"
        " FROM policies p LEFT JOIN policy_assignments a USING (policy_id)"
        " GROUP BY p.policy_id ORDER BY lower(p.name)"
    )
    return [_policy(r, list(r["groups"])) for r in rows]


async def find_policy(conn: Connection, reference: str) -> Policy | None:
    for policy in await policies(conn):
        if reference in (policy.policy_id, policy.name) or policy.name.lower() == reference.lower():
            return policy
    return None


async def policy_name_taken(conn: Connection, name: str, but: str | None = None) -> bool:
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM policies WHERE lower(name) = lower($1)"
        " AND policy_id IS DISTINCT FROM $2::uuid)",
        name,
        but,
    )
    return taken


async def save_policy(
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


async def delete_policy(conn: Connection, policy_id: str) -> None:
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
    status = await conn.execute(
        "DELETE FROM policy_assignments WHERE group_id = $1", uuid.UUID(group_id)
    )
    return rows_affected(status) == 1


@dataclass(frozen=True)
class PolicyContext:
    """Everything to choose each computer's policy: tree, assignments, settings by policy."""

    parents: dict[str, str | None]
    assignments: dict[str, Assignment]
    settings: dict[str, tuple[str, PolicySettings]]


async def policy_context(conn: Connection) -> PolicyContext:
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


# --- timers ---------------------------------------------------------------------------------------


async def set_timer(conn: Connection, computer_id: str, kind: str, due: datetime | None) -> None:
    """Keep one timer of a kind per computer at `due` (None: no such timer)."""
    if due is None:
        await conn.execute(
            "DELETE FROM timers WHERE computer_id = $1 AND kind = $2", computer_id, kind
        )
        return
    await conn.execute(
        "INSERT INTO timers (computer_id, kind, due_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (computer_id, kind) DO UPDATE SET due_at = EXCLUDED.due_at",
        computer_id,
        kind,
        due,
    )


async def claim_due_timers(
    conn: Connection, now: datetime, limit: int
) -> list[tuple[str, str, datetime]]:
    """Due timers, locked for this transaction: another replica skips them."""
    rows = await conn.fetch(
        "SELECT computer_id, kind, due_at FROM timers WHERE due_at <= $1"
        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [(r["computer_id"], r["kind"], r["due_at"]) for r in rows]


async def timers_of(conn: Connection, computer_id: str) -> dict[str, datetime]:
    rows = await conn.fetch("SELECT kind, due_at FROM timers WHERE computer_id = $1", computer_id)
    return {r["kind"]: r["due_at"] for r in rows}


async def timer_counts(conn: Connection, now: datetime) -> list[Record]:
    """Per kind: timers stored and timers due now (for the Prometheus gauges)."""
    rows: list[Record] = await conn.fetch(
        "SELECT kind, count(*) AS scheduled, count(*) FILTER (WHERE due_at <= $1) AS due"
        " FROM timers GROUP BY kind",
        now,
    )
    return rows


async def restarts_pending(conn: Connection) -> int:
    found: int = await conn.fetchval("SELECT count(*) FROM computers WHERE restart_phase <> 'idle'")
    return found


# --- agent releases ---------------------------------------------------------------------------


async def save_release(conn: Connection, release: AgentRelease, key: tuple[int, int, int]) -> None:
    await conn.execute(
        "INSERT INTO agent_releases (version, major, minor, patch, mandatory, notes, published_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        release.version,
        *key,
        release.mandatory,
        release.notes,
        release.published_at,
    )


async def releases(conn: Connection) -> list[AgentRelease]:
    rows = await conn.fetch(
        "SELECT version, mandatory, notes, published_at FROM agent_releases"
        " ORDER BY major DESC, minor DESC, patch DESC"
    )
    return [AgentRelease(**dict(r)) for r in rows]


async def latest_mandatory(conn: Connection) -> tuple[str, datetime] | None:
    """The newest mandatory agent version and when it was published."""
    row = await conn.fetchrow(
        "SELECT version, published_at FROM agent_releases WHERE mandatory"
        " ORDER BY major DESC, minor DESC, patch DESC LIMIT 1"
    )
    return None if row is None else (row["version"], row["published_at"])
