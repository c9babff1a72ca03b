"""Maintenance windows per group: set, clear, list (docs/product.md section 1)."""

from __future__ import annotations

from libs.contracts import windows as w
from libs.read_copies.groups import find_group
from libs.service import HandlerContext, NotFound
from services.scheduler import store


async def _group(ctx: HandlerContext, reference: str) -> tuple[str, str]:
    found = await find_group(ctx.conn, reference)
    if found is None:
        raise NotFound(
            f"group: {reference!r} is not a group the scheduler knows (id or name)", field="group"
        )
    return found


async def _changed(
    ctx: HandlerContext, group_id: str, name: str, windows: list[w.MaintenanceWindow]
) -> w.GroupWindows:
    """Tell who follows, and re-plan: a group's windows reach its computers and those of
    every group below it."""
    await ctx.outbox.add(
        w.WINDOWS_CHANGED,
        w.MaintenanceWindowsChanged(
            group_id=group_id, group_name=name, windows=windows, changed_at=ctx.now
        ),
        subject=group_id,
    )
    await store.plans.mark_all_dirty(ctx.conn, ctx.now)
    return w.group_windows(group_id, name, windows, ctx.now if windows else None)


async def set_windows(ctx: HandlerContext, command: w.SetMaintenanceWindows) -> w.GroupWindows:
    """Replace the group's windows (each was checked by its contract)."""
    group_id, name = await _group(ctx, command.group)
    await store.windows.set_windows(ctx.conn, group_id, command.windows, ctx.now)
    return await _changed(ctx, group_id, name, list(command.windows))


async def clear_windows(ctx: HandlerContext, command: w.ClearMaintenanceWindows) -> w.GroupWindows:
    """Remove the group's windows; a group without any is told so."""
    group_id, name = await _group(ctx, command.group)
    if not await store.windows.clear(ctx.conn, group_id):
        raise NotFound(
            f"group: {command.group!r} has no maintenance windows of its own to clear",
            field="group",
        )
    return await _changed(ctx, group_id, name, [])


async def list_windows(
    ctx: HandlerContext, query: w.ListMaintenanceWindows
) -> w.MaintenanceWindowList:
    group_id = None if query.group is None else (await _group(ctx, query.group))[0]
    return w.MaintenanceWindowList(groups=await store.windows.listed(ctx.conn, group_id))
