"""catalog's handler table: every message the service reacts to."""

from __future__ import annotations

from pathlib import Path

from libs.contracts.system import PING
from libs.service import Answer, ServiceDefinition
from libs.service.system import answer_ping

SERVICE = ServiceDefinition(
    name="catalog",
    migrations=Path(__file__).parent / "migrations",
    events=(),
    commands=(Answer(PING["catalog"], answer_ping),),
)
