"""approval's handler table: every message the service reacts to."""

from __future__ import annotations

from pathlib import Path

from libs.contracts.scheduler import COMPUTER_REGISTERED, ComputerRegistered
from libs.contracts.system import PING
from libs.service import Answer, HandlerContext, On, ServiceDefinition
from libs.service.system import answer_ping
from services.approval import store


async def learn_computer(ctx: HandlerContext, event: ComputerRegistered) -> None:
    """A newly registered computer joins "All computers"."""
    await store.add_computer(ctx.conn, event)


SERVICE = ServiceDefinition(
    name="approval",
    migrations=Path(__file__).parent / "migrations",
    events=(On(COMPUTER_REGISTERED, queue="computers", handle=learn_computer),),
    commands=(Answer(PING["approval"], answer_ping),),
)
