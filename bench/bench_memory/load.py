"""Agent events at a steady rate: status reports of random computers of the fleet, published
with confirms on `lockgate.agents` exactly as agents send them (envelope from the agent,
routing key `agent.<computer>.status.v1`), which reaches reporting and the scheduler."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aio_pika

from bench.bench_approval_scale.fleet import computer_id
from libs.bus import Bus, to_amqp
from libs.contracts import agents as ag
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange

TICK = 0.05
"""Seconds between two bursts: the rate is kept per 50 ms."""
IN_FLIGHT = 40
"""Bursts (2 s at the tick) whose confirms may be outstanding before the publisher waits."""


@dataclass(frozen=True)
class Paced:
    sent: int
    seconds: float
    behind_max: float
    """The most the publisher fell behind its schedule, seconds (0: it kept the rate)."""
    unconfirmed: int = 0
    """Reports the broker did not confirm in time (not counted in `sent`)."""

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def status_message(
    computer: int, updates: list[str], rng: random.Random
) -> tuple[aio_pika.Message, str]:
    cid = computer_id(computer)
    at = datetime.now(UTC)
    report = ag.AgentStatus(
        computer_id=cid,
        reported_at=at,
        detections=[
            ag.DetectionResult(update_id=u, state=rng.choice(("needed", "installed")))
            for u in updates
        ],
        installs=(
            [
                ag.InstallResult(
                    update_id=updates[0],
                    return_code=rng.choice((0, 0, 3010, 1603)),
                    started_at=at - timedelta(minutes=3),
                    finished_at=at - timedelta(minutes=1),
                )
            ]
            if rng.random() < 0.2
            else []
        ),
    )
    envelope = Envelope.new(source=f"agent/{cid}", type=ag.AGENT_STATUS.type, subject=cid)
    return to_amqp(envelope, report.model_dump_json().encode()), ag.AGENT_STATUS.routing_key(cid)


async def paced_reports(
    bus: Bus, computers: int, updates: list[str], rate: float, seconds: float, *, seed: int = 7
) -> Paced:
    """Publish `rate` status reports per second for `seconds`, a burst per 50 ms tick, each
    burst's confirms awaited in the background (agents do not wait for each other) with at
    most IN_FLIGHT bursts unconfirmed; then every confirm is awaited."""
    rng = random.Random(seed)
    per_tick = rate * TICK
    owed = 0.0
    sent = 0
    behind = 0.0
    started = time.perf_counter()
    tick = 0
    pending: list[asyncio.Task[list[bool]]] = []
    unconfirmed = 0

    async def settle(tasks: list[asyncio.Task[list[bool]]]) -> None:
        nonlocal unconfirmed
        for confirmed in await asyncio.gather(*tasks):
            unconfirmed += confirmed.count(False)

    while time.perf_counter() - started < seconds:
        owed += per_tick
        burst = int(owed)
        owed -= burst
        items: list[tuple[aio_pika.Message, str, str]] = []
        for _ in range(burst):
            message, key = status_message(rng.randrange(computers), updates, rng)
            items.append((message, Exchange.AGENTS.value, key))
        if items:
            pending.append(asyncio.create_task(bus.publish_many(items)))
            sent += len(items)
        done = [task for task in pending if task.done()]
        pending = [task for task in pending if not task.done()]
        await settle(done)
        if len(pending) > IN_FLIGHT:  # the broker holds us back: wait for the oldest
            await settle(pending[:1])
            pending = pending[1:]
        tick += 1
        due = started + tick * TICK
        wait = due - time.perf_counter()
        behind = max(behind, -wait)
        if wait > 0:
            await asyncio.sleep(wait)
    await settle(pending)
    return Paced(sent - unconfirmed, time.perf_counter() - started, behind, unconfirmed)
