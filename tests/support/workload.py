"""Workloads for whole-system fault tests: agent status reports whose effect on each service
is known in advance, operator API calls retried the way a client retries them, and the
counts a test reads after the fault (dead letters, unpublished outbox rows, queue depths)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import secrets
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity

from libs.bus import Bus, to_amqp
from libs.contracts import Envelope
from libs.contracts.agents import AGENT_STATUS, AgentStatus, DetectionResult, InstallResult
from libs.contracts.api import PREFIX
from libs.contracts.names import dead_letter_queue_name
from libs.service.handlers import ServiceDefinition
from tests.support.messages import eventually
from tests.support.system import System

ReportKind = Literal["needed", "installed", "not_applicable", "install_ok", "install_failed"]
KINDS: tuple[ReportKind, ...] = (
    "needed",
    "installed",
    "not_applicable",
    "install_ok",
    "install_failed",
)
FAILURE_CODE = 1603
"""An installer exit code outside the default return-code map: a failed install."""
STATE_AFTER: dict[ReportKind, str] = {
    "needed": "needed",
    "installed": "installed",
    "not_applicable": "not_applicable",
    "install_ok": "installed",
    "install_failed": "failed",
}
"""The state one report of each kind leaves for its (computer, update) (no restart asked)."""


@dataclass(frozen=True)
class Report:
    """One status report of one computer about one update, and what it must leave."""

    computer_id: str
    update_id: str
    kind: ReportKind
    at: datetime

    @property
    def state(self) -> str:
        return STATE_AFTER[self.kind]

    @property
    def is_install(self) -> bool:
        """An install result (else a detection)."""
        return self.kind in ("install_ok", "install_failed")

    def message(self) -> tuple[aio_pika.Message, str]:
        """The report as the agent publishes it, with its routing key."""
        detections: list[DetectionResult] = []
        installs: list[InstallResult] = []
        if self.is_install:
            installs.append(
                InstallResult(
                    update_id=self.update_id,
                    return_code=0 if self.kind == "install_ok" else FAILURE_CODE,
                    started_at=self.at - timedelta(minutes=5),
                    finished_at=self.at,
                )
            )
        else:
            detections.append(DetectionResult(update_id=self.update_id, state=self.state))
        body = AgentStatus(
            computer_id=self.computer_id,
            reported_at=self.at,
            detections=detections,
            installs=installs,
        )
        envelope = Envelope.new(
            source=f"agent/{self.computer_id}", type=AGENT_STATUS.type, subject=self.computer_id
        )
        message = to_amqp(envelope, body.model_dump_json().encode())
        return message, AGENT_STATUS.routing_key(self.computer_id)


def reports_for(computers: list[str], updates: list[str], start: datetime) -> list[Report]:
    """One report per (computer, update), every kind in turn, interleaved across computers so
    each stretch of the stream touches every computer and many updates."""
    reports: list[Report] = []
    for u, update_id in enumerate(updates):
        for c, computer_id in enumerate(computers):
            kind = KINDS[(c + u) % len(KINDS)]
            at = start + timedelta(seconds=u * len(computers) + c)
            reports.append(Report(computer_id, update_id, kind, at))
    return reports


@dataclass
class ApiTally:
    """What an API client saw: calls made, attempts that failed (and how), retries."""

    calls: int = 0
    succeeded: int = 0
    attempts: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def retried(self) -> int:
        return self.attempts - self.calls


RETRIED_STATUS = frozenset({502, 503, 504})
"""Answers a client retries: the console or the service behind it is down or timed out."""


async def retried_call(
    system: System,
    tally: ApiTally,
    method: str,
    path: str,
    *,
    json: dict[str, Any],
    give_up_after: float = 120.0,
) -> Any:
    """An API write retried as a careful client would after a crash: one Idempotency-Key for
    all its attempts (so a retry of a change that was made returns the first answer), again
    after a short pause on connection errors and 502/503/504, until it succeeds; any other
    refusal fails."""
    tally.calls += 1
    headers = {"Idempotency-Key": f"kill-test-{uuid.uuid4()}"}
    deadline = time.monotonic() + give_up_after
    while True:
        tally.attempts += 1
        try:
            response = await system.http.request(
                method, PREFIX + path, json=json, headers=headers, timeout=30
            )
        except httpx.TransportError as error:
            tally.failures[type(error).__name__] += 1
        else:
            if response.status_code < 300:
                tally.succeeded += 1
                return response.json()
            if response.status_code not in RETRIED_STATUS:
                raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
            tally.failures[f"http {response.status_code}"] += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"{method} {path} still failing after {give_up_after} s")
        await asyncio.sleep(0.2)


async def _channel(bus: Bus) -> AbstractChannel:
    """A channel on the caller's connection once it is connected: after a broker restart it
    may still be reconnecting when the system under test has already recovered."""
    await asyncio.wait_for(bus.connection.ready(), 60)
    return await bus.connection.channel()


async def dead_letter_depths(bus: Bus, services: list[ServiceDefinition]) -> dict[str, int]:
    """Messages waiting in each service queue's `.dlq`, by dead-letter queue (absent ones
    count 0)."""
    depths: dict[str, int] = {}
    for service in services:
        for queue in service.queues():
            name = dead_letter_queue_name(queue)
            channel = await _channel(bus)
            try:
                declared = await channel.declare_queue(name, passive=True)
                depths[name] = declared.declaration_result.message_count or 0
            except ChannelNotFoundEntity:
                depths[name] = 0
            finally:
                if not channel.is_closed:
                    await channel.close()
    return depths


async def dead_letter_reasons(bus: Bus, dead_letter_queue: str) -> Counter[str]:
    """Why each message in a dead-letter queue is there, taking them off: the pipeline's
    reason class (x-lockgate-reason-class), or the broker's (x-first-death-reason: `expired`,
    `rejected`, `delivery_limit`)."""
    reasons: Counter[str] = Counter()
    channel = await _channel(bus)
    try:
        queue = await channel.declare_queue(dead_letter_queue, passive=True)
        while (message := await queue.get(fail=False)) is not None:
            headers = dict(message.headers or {})
            reason = headers.get("x-lockgate-reason-class") or headers.get("x-first-death-reason")
            kind = message.type or str(headers.get("ce-type", "?"))
            reasons[f"{kind}: {reason!s}"] += 1
            await message.ack()
    finally:
        await channel.close()
    return reasons


async def queue_depths(bus: Bus, services: list[ServiceDefinition]) -> dict[str, int]:
    """Messages ready or unacknowledged in each service queue."""
    depths: dict[str, int] = {}
    channel = await _channel(bus)
    try:
        for service in services:
            for queue in service.queues():
                declared = await channel.declare_queue(queue, passive=True)
                depths[queue] = declared.declaration_result.message_count or 0
    finally:
        await channel.close()
    return depths


async def unpublished(db: asyncpg.Connection, schemas: list[str]) -> dict[str, int]:
    """Outbox rows not yet published, per schema."""
    found: dict[str, int] = {}
    for schema in schemas:
        count = await db.fetchval(
            f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"
        )
        found[schema] = int(count)
    return found


async def inbox_rows(db: asyncpg.Connection, schema: str) -> int:
    """Messages a service has handled so far (its inbox): any new row is a new effect."""
    return int(await db.fetchval(f"SELECT count(*) FROM {schema}.inbox"))


def port_outside_ephemeral_range() -> int:
    """A free TCP port below the kernel's ephemeral range (ip_local_port_range), which it
    never hands to a `bind(0)`: a process killed -9 and restarted on it finds it free, where
    an ephemeral one may meanwhile have gone to any other test's process."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = secrets.randbelow(low - 20000) + 20000
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between 20000 and {low}")


def utc(text: str) -> datetime:
    """An ISO instant read back from JSON, in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


class Reads(Protocol):
    """Whatever reads the system's database: a connection, or one that reconnects."""

    async def fetchval(self, query: str, *args: Any) -> Any: ...


def gzipped_b64(path: Path) -> str:
    """A CVRF document as the import route takes it."""
    return base64.b64encode(gzip.compress(path.read_bytes())).decode()


async def import_and_group(
    system: System, documents: list[Path], groups: list[str], *, at_least: int
) -> list[str]:
    """Import the MSRC documents, make the groups, and wait until approval offers at least
    `at_least` new updates; their ids, sorted."""
    for document in documents:
        await system.ok(
            "POST", "/catalog/imports", json={"content_gzip_b64": gzipped_b64(document)}
        )
    for name in groups:
        await system.ok("POST", "/groups", json={"name": name})

    async def offered() -> list[str]:
        found = await system.ok("GET", "/updates", params={"limit": 1000, "states": ["new"]})
        return sorted(u["update_id"] for u in found["updates"])

    async def enough() -> bool:
        return len(await offered()) >= at_least

    await eventually(enough, timeout=60, what="approval learning the imported updates")
    return await offered()


async def wait_for_copies(db: Reads, updates: list[str]) -> None:
    """Until reporting and the scheduler both know every one of `updates`."""

    async def copies() -> bool:
        known = [
            await db.fetchval(
                f"SELECT count(*) FROM {schema}.updates WHERE update_id = ANY ($1::uuid[])",
                updates,
            )
            for schema in ("reporting", "scheduler")
        ]
        return known == [len(updates), len(updates)]

    await eventually(copies, timeout=60, what="reporting and scheduler learning the updates")


async def wait_for_registration(db: Reads, prefix: str, count: int) -> None:
    """Until reporting and the scheduler both know `count` computers named `prefix...`."""

    async def registered() -> bool:
        counts = [
            await db.fetchval(
                f"SELECT count(*) FROM {schema}.computers WHERE computer_id LIKE $1 || '%'",
                prefix,
            )
            for schema in ("reporting", "scheduler")
        ]
        return counts == [count, count]

    await eventually(registered, timeout=90, what="every computer checked in with both")
