"""Groups and updates named in a command, found or refused with the field that named them."""

from __future__ import annotations

from libs.service import HandlerContext, NotFound
from services.approval import store
from services.approval.domain.updates import Update


async def find_group(ctx: HandlerContext, reference: str, field: str) -> str:
    found = await store.groups.find(ctx.conn, reference)
    if found is None:
        raise NotFound(
            f"{field}: group {reference!r} does not exist (give a group id or name)", field=field
        )
    return found


async def find_update(ctx: HandlerContext, reference: str, field: str) -> Update:
    found = await store.updates.find(ctx.conn, reference)
    if found is None:
        raise NotFound(
            f"{field}: update {reference!r} is unknown to approval (give an update id or a KB "
            "number the catalog has published)",
            field=field,
        )
    return found
