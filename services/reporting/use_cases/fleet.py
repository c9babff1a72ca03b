"""The fleet list out: every managed computer with its inventory, last contact and the
states of its approved updates, filtered and sorted, one keyset page at a time."""

from __future__ import annotations

from libs.contracts import reporting as r
from libs.contracts.approval import ROOT_GROUP_ID
from libs.read_copies import groups as group_copy
from libs.service import HandlerContext, InvalidInput, NotFound
from services.reporting import store
from services.reporting.domain import fleet
from services.reporting.store.fleet import FleetFilter


async def list_computers(ctx: HandlerContext, query: r.ListComputers) -> r.ComputerList:
    """One page; `next_cursor` names the last computer of a full page."""
    try:
        after = fleet.decode(query.cursor, query.sort) if query.cursor else None
    except fleet.BadCursor as error:
        raise InvalidInput(str(error), field="cursor") from None
    groups = None
    if query.group is not None:
        found = await group_copy.find_group(ctx.conn, query.group)
        if found is None:
            raise NotFound(f"group: {query.group!r} is unknown to reporting", field="group")
        if found[0] != ROOT_GROUP_ID:  # every computer is in All computers
            groups = await store.groups.subtree(ctx.conn, found[0])
    since = fleet.silent_since(ctx.now, ctx.settings.not_reporting_days)
    where = FleetFilter(
        silent_since=since,
        now=ctx.now,
        not_reporting=query.not_reporting,
        failed=query.failed,
        restart_pending=query.restart_pending,
        past_deadline=query.past_deadline,
        groups=groups,
        search=query.search or None,
    )
    rows = await store.fleet.page(ctx.conn, query.sort, after, where, query.limit)
    ids = [row.computer_id for row in rows]
    names = await store.fleet.group_names(ctx.conn, ids)
    states = await store.states.approved_states(ctx.conn, ids)
    computers = [
        r.FleetComputer(
            computer_id=row.computer_id,
            hostname=row.hostname,
            groups=names.get(row.computer_id, []),
            operating_system=row.operating_system,
            os_version=row.os_version,
            architecture=row.architecture,
            agent_version=row.agent_version,
            timezone=row.timezone,
            policy=row.policy,
            last_contact_at=row.last_contact_at,
            not_reporting=row.last_contact_at < since,
            compliance=_compliance(states.get(row.computer_id, {})),
        )
        for row in rows
    ]
    last = rows[-1] if len(rows) == query.limit else None
    return r.ComputerList(
        computers=computers,
        managed=await store.computers.count(ctx.conn) if after is None else None,
        next_cursor=fleet.encode(fleet.Position(query.sort, last.key, last.computer_id))
        if last
        else None,
    )


def _compliance(by_state: dict[str, int]) -> r.FleetCompliance:
    return r.FleetCompliance(
        installed=by_state.get("installed", 0),
        needed=by_state.get("needed", 0),
        failed=by_state.get("failed", 0),
        installed_pending_restart=by_state.get("installed_pending_restart", 0),
        no_status=by_state.get("no_status", 0),
    )
