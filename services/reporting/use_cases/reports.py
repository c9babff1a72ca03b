"""Compliance out: counts per update over the fleet, a group or a computer (docs/product.md
section 6)."""

from __future__ import annotations

from libs.contracts import reporting as r
from libs.read_copies import groups as group_copy
from libs.service import HandlerContext, NotFound
from services.reporting import store
from services.reporting.domain.counts import counts_of, most_behind, sum_counts, tally
from services.reporting.domain.fleet import silent_since
from services.reporting.domain.pages import page_of


async def summary(ctx: HandlerContext, query: r.Summary) -> r.SummaryReport:
    """Per-update counts over the whole fleet, most needed first (failed ones only, or those
    a search finds, if asked); the headline counts (the whole fleet's, whatever the page and
    filters) and the overview's notification."""
    since = silent_since(ctx.now, ctx.settings.not_reporting_days)
    ids, total = await store.aggregates.reported_updates(
        ctx.conn, query.page, silent_since=since, failed=query.failed, search=query.search
    )
    found = {c.update_id: c for c in await store.aggregates.compliance(ctx.conn, ids, since)}
    updates = [found[i] for i in ids if i in found]
    computers = await store.computers.count(ctx.conn)
    return r.SummaryReport(
        new_updates_to_approve=await store.aggregates.new_updates_to_approve(ctx.conn),
        computers=computers,
        enrolment=r.NOT_ENROLLED if computers == 0 else None,
        computers_not_reporting=await store.computers.count_silent(ctx.conn, since),
        computers_past_deadline=await store.fleet.count_past_deadline(ctx.conn, ctx.now),
        totals=await store.aggregates.fleet_totals(ctx.conn, since),
        updates=updates,
        total=total,
    )


async def update_report(ctx: HandlerContext, query: r.UpdateReportQuery) -> r.UpdateReport:
    """One update's counts and its install attempts (a page of the failed ones)."""
    update_id = await store.updates.find(ctx.conn, query.update)
    if update_id is None:
        raise NotFound(f"update: {query.update!r} is unknown to reporting", field="update")
    since = silent_since(ctx.now, ctx.settings.not_reporting_days)
    (found,) = await store.aggregates.compliance(ctx.conn, [update_id], since)
    ok, failed, views = await store.states.attempts(ctx.conn, update_id, query.page)
    return r.UpdateReport(update=found, successes=ok, failures=failed, failed_attempts=views)


async def update_computers(ctx: HandlerContext, query: r.UpdateComputers) -> r.UpdateComputerList:
    """One update's computers (reported on it or targeted by its approvals), a page by host
    name: the computer report seen from the update's side."""
    update_id = await store.updates.find(ctx.conn, query.update)
    if update_id is None:
        raise NotFound(f"update: {query.update!r} is unknown to reporting", field="update")
    computers, total = await store.states.of_update(
        ctx.conn,
        update_id,
        silent_since=silent_since(ctx.now, ctx.settings.not_reporting_days),
        state=query.state,
        not_reporting=query.not_reporting,
        page=query.page,
    )
    return r.UpdateComputerList(update_id=update_id, computers=computers, total=total)


async def group_report(ctx: HandlerContext, query: r.GroupReportQuery) -> r.GroupReport:
    """Counts among the group's computers and its subgroups', per update (no status and not
    reporting included)."""
    group = await group_copy.find_group(ctx.conn, query.group)
    if group is None:
        raise NotFound(f"group: {query.group!r} is unknown to reporting", field="group")
    since = silent_since(ctx.now, ctx.settings.not_reporting_days)
    computers = await store.groups.members(ctx.conn, group[0])
    per_update = await store.states.classify(ctx.conn, computers, since)
    ids = most_behind(per_update)
    page = page_of(ids, query.page)
    described = {c.update_id: c for c in await store.aggregates.compliance(ctx.conn, page, since)}
    updates = [
        described[u].model_copy(update={"counts": counts_of(per_update[u])})
        for u in page
        if u in described
    ]
    return r.GroupReport(
        group_id=group[0],
        name=group[1],
        computers=len(computers),
        totals=sum_counts([counts_of(per_update[u]) for u in ids]),
        updates=updates,
    )


async def computer_report(ctx: HandlerContext, query: r.ComputerReportQuery) -> r.ComputerReport:
    """One computer's updates (reported or approved for it) and their states."""
    contact = await store.computers.last_contact(ctx.conn, query.computer)
    if contact is None:
        raise NotFound(f"computer: {query.computer!r} is unknown to reporting", field="computer")
    silent = contact < silent_since(ctx.now, ctx.settings.not_reporting_days)
    items = await store.states.of_computer(ctx.conn, query.computer)
    return r.ComputerReport(
        computer_id=query.computer,
        last_contact_at=contact,
        not_reporting=silent,
        totals=tally((str(i.state) for i in items), silent=silent),
        updates=page_of(items, query.page),
    )


async def groups_counts(ctx: HandlerContext, query: r.GroupsCounts) -> r.GroupsCountsReport:
    """One update's counts over the computers of these groups and their subgroups, each
    computer once: what a rollout's gate measures over the rings started so far (approval
    asks over RabbitMQ; it never reads this schema)."""
    update_id = await store.updates.find(ctx.conn, query.update)
    if update_id is None:
        raise NotFound(f"update: {query.update!r} is unknown to reporting", field="update")
    group_ids: list[str] = []
    computers: set[str] = set()
    for i, reference in enumerate(query.groups):
        group = await group_copy.find_group(ctx.conn, reference)
        if group is None:
            raise NotFound(
                f"groups[{i}]: group {reference!r} is unknown to reporting", field=f"groups[{i}]"
            )
        group_ids.append(group[0])
        computers.update(await store.groups.members(ctx.conn, group[0]))
    since = silent_since(ctx.now, ctx.settings.not_reporting_days)
    per_update = await store.states.classify(ctx.conn, sorted(computers), since)
    return r.GroupsCountsReport(
        update_id=update_id,
        group_ids=group_ids,
        computers=len(computers),
        counts=counts_of(per_update.get(update_id, {})),
    )
