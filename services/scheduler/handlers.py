"""scheduler's handler table: every message the service reacts to."""

from __future__ import annotations

from pathlib import Path

from libs.contracts.scheduler import (
    AGENT_CHECKIN,
    COMPUTER_REGISTERED,
    AgentCheckin,
    ComputerRegistered,
)
from libs.contracts.system import PING
from libs.service import Answer, HandlerContext, On, ServiceDefinition
from libs.service.system import answer_ping
from services.scheduler import store
from services.scheduler.domain.checkin import check_sender


async def record_checkin(ctx: HandlerContext, checkin: AgentCheckin) -> None:
    """Refresh the computer; its first check-in registers it and announces it."""
    check_sender(ctx.envelope.subject, checkin.computer_id)
    if await store.record_checkin(ctx.conn, checkin, ctx.now):
        await ctx.outbox.add(
            COMPUTER_REGISTERED,
            ComputerRegistered(
                computer_id=checkin.computer_id,
                hostname=checkin.hostname,
                timezone=checkin.timezone,
                registered_at=ctx.now,
            ),
            subject=checkin.computer_id,
        )


SERVICE = ServiceDefinition(
    name="scheduler",
    migrations=Path(__file__).parent / "migrations",
    events=(On(AGENT_CHECKIN, queue="agent-checkins", handle=record_checkin),),
    commands=(Answer(PING["scheduler"], answer_ping),),
)
