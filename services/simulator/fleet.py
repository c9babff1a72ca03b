"""Simulated Windows agents: they speak only the agent protocol on `lockgate.agents`.

Each agent checks in (at start, at its policy's detection frequency, after a restart),
keeps the plan it is sent, reports detections for the approved updates it holds, installs
what instructions ask (return code 0, 3010 when the update restarts, or a configured
failure), answers restart prompts by postponing or accepting, and goes offline now and
then, catching up when it comes back. Thousands run in one asyncio process; time can run
faster (a clock shared with the services through LOCKGATE_CLOCK_SPEED/EPOCH).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage

from libs.bus import Bus, to_amqp
from libs.contracts import agents as ag
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from libs.contracts.scheduler import AGENT_CHECKIN, AgentCheckin
from libs.contracts.spec import AgentEventSpec, Contract, InstructionSpec
from libs.service.clock import Clock

log = structlog.get_logger(__name__)

TIMEZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/London", "UTC")
FAILURE_CODE = 1603  # ERROR_INSTALL_FAILURE
DETECTION_HOURS_BEFORE_PLAN = 8
"""How often an agent that has no plan yet checks in (the recommended detection frequency)."""

C = TypeVar("C", bound=Contract)


@dataclass(frozen=True)
class Options:
    computers: int = 100
    prefix: str = "sim"
    offline_rate: float = 0.05
    """Chance, at each check-in, that the computer goes offline until the next one."""
    failure_rate: float = 0.05
    """Chance that an install fails (exit code 1603)."""
    postpone_rate: float = 0.5
    """Chance that a user postpones a restart prompt."""
    seed: int = 1


@dataclass
class Agent:
    computer_id: str
    timezone: str
    architecture: str
    user_logged_on: bool
    rng: random.Random
    online: bool = True
    plan: ag.ComputerPlan | None = None
    """The last plan it was sent (none before the first)."""
    states: dict[str, ag.DetectionState] = field(default_factory=dict)
    """What this computer holds per update: installed, needed or not_applicable."""
    pending_restart: bool = False
    version: str = "1.0.0"
    """The agent version it runs (mandatory agent updates raise it)."""


class Fleet:
    """N agents on one broker connection; instructions come through one queue."""

    def __init__(self, bus: Bus, clock: Clock, options: Options) -> None:
        self.bus, self.clock, self.options = bus, clock, options
        rng = random.Random(options.seed)  # noqa: S311 - simulation, not security
        self.agents = {
            f"{options.prefix}-{n:05d}": Agent(
                computer_id=f"{options.prefix}-{n:05d}",
                timezone=rng.choice(TIMEZONES),
                architecture="x64" if rng.random() < 0.9 else "arm64",
                user_logged_on=rng.random() < 0.7,
                rng=random.Random(rng.random()),  # noqa: S311 - simulation
            )
            for n in range(options.computers)
        }
        self.stats: Counter[str] = Counter()
        self.failures: set[tuple[str, str]] = set()
        """(computer, update) pairs whose installs always fail (scripted failures)."""
        self.detected: dict[tuple[str, str], str] = {}
        """What each computer first detected for each update (before any install)."""
        self.installs: dict[tuple[str, str], int] = {}
        """Last exit code each computer reported for each update (what the fleet did)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        """Bind every agent's instructions, then let each agent start (check in)."""
        self._channel = await self.bus.connection.channel()
        queue = await self._channel.declare_queue(
            f"simulator.{self.options.prefix}", exclusive=True, auto_delete=True
        )
        for computer_id in self.agents:
            await queue.bind(Exchange.AGENTS.value, routing_key=f"computer.{computer_id}.#")
        await queue.consume(self._on_instruction)
        for agent in self.agents.values():
            self._tasks.append(asyncio.create_task(self._live(agent)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._channel is not None:
            await self._channel.close()

    def summary(self) -> dict[str, int]:
        return {
            "computers": len(self.agents),
            "online": sum(a.online for a in self.agents.values()),
            **dict(sorted(self.stats.items())),
        }

    async def _live(self, agent: Agent) -> None:
        """Check in at start, then at the detection frequency; sometimes be offline."""
        await asyncio.sleep(agent.rng.random() * 2)  # do not all start in the same instant
        await self._checkin(agent, "start")
        while True:
            hours = (
                agent.plan.settings.detection_frequency_hours
                if agent.plan is not None
                else DETECTION_HOURS_BEFORE_PLAN
            )
            await self._sleep_simulated(timedelta(hours=hours))
            if agent.online and agent.rng.random() < self.options.offline_rate:
                agent.online = False
                self.stats["went_offline"] += 1
                continue
            reason = "periodic" if agent.online else "start"
            agent.online = True
            await self._checkin(agent, reason)

    async def _sleep_simulated(self, span: timedelta) -> None:
        speed = getattr(self.clock, "speed", 1.0)
        await asyncio.sleep(max(span.total_seconds() / speed, 0.05))

    async def _send(self, agent: Agent, spec: AgentEventSpec[C], body: C) -> None:
        envelope = Envelope.new(
            source=f"agent/{agent.computer_id}",
            type=spec.type,
            subject=agent.computer_id,
            now=self.clock.now(),
        )
        await self.bus.publish(
            to_amqp(envelope, body.model_dump_json().encode()),
            exchange=Exchange.AGENTS.value,
            routing_key=spec.routing_key(agent.computer_id),
        )

    async def _checkin(self, agent: Agent, reason: str) -> None:
        await self._send(
            agent,
            AGENT_CHECKIN,
            AgentCheckin(
                computer_id=agent.computer_id,
                hostname=f"{agent.computer_id}.corp.example",
                os_version="10.0.26100",
                timezone=agent.timezone,
                agent_version=agent.version,
                checked_in_at=self.clock.now(),
                hardware_id=f"hw-{agent.computer_id}",
                architecture=agent.architecture,
                user_logged_on=agent.user_logged_on,
                reason=reason,
            ),
        )
        self.stats["checkins"] += 1

    async def _on_instruction(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            parts = (message.routing_key or "").split(".")
            agent = self.agents.get(parts[1]) if len(parts) > 2 else None
            if agent is None or not agent.online:
                self.stats["instructions_missed"] += agent is not None
                return
            kind = str((message.headers or {}).get("ce-type", ""))
            if kind == ag.PLAN.type:
                await self._on_plan(agent, _decode(ag.PLAN, message.body))
            elif kind == ag.INSTALL.type:
                await self._on_install(agent, _decode(ag.INSTALL, message.body))
            elif kind == ag.RESTART_PROMPT.type:
                await self._on_prompt(agent, _decode(ag.RESTART_PROMPT, message.body))
            elif kind == ag.RESTART.type:
                _decode(ag.RESTART, message.body)  # checked like the others; reason unused
                await self._restarted(agent)
            elif kind == ag.AGENT_UPDATE.type:
                update = _decode(ag.AGENT_UPDATE, message.body)
                agent.version = update.version  # the new agent starts and checks in
                self.stats["agent_updates"] += 1
                await self._checkin(agent, "start")

    async def _on_plan(self, agent: Agent, plan: ag.ComputerPlan) -> None:
        """Detect: report the state of every approved update (new ones drawn at random)."""
        agent.plan = plan
        found = []
        for item in plan.items:
            state = agent.states.get(item.update_id)
            if state is None:
                roll = agent.rng.random()
                state = "installed" if roll < 0.2 else "not_applicable" if roll > 0.9 else "needed"
                if (agent.computer_id, item.update_id) in self.failures:
                    state = "needed"  # a scripted failure needs the update to apply
                agent.states[item.update_id] = state
                self.detected[agent.computer_id, item.update_id] = state
            found.append(ag.DetectionResult(update_id=item.update_id, state=state))
        if found:
            await self._report(agent, detections=found)

    async def _on_install(self, agent: Agent, instruction: ag.InstallInstruction) -> None:
        """Install (or remove) what is asked; 3010 when the update restarts."""
        planned = agent.plan.items if agent.plan is not None else []
        restarts = {i.update_id: i.restart for i in planned}
        results = []
        now = self.clock.now()
        for item in instruction.updates:
            update_id = item.update_id
            if agent.states.get(update_id) == "not_applicable":
                continue
            scripted = (agent.computer_id, update_id) in self.failures
            if scripted or agent.rng.random() < self.options.failure_rate:
                code = FAILURE_CODE
            elif restarts.get(update_id) == "always" or (
                restarts.get(update_id) == "may_request" and agent.rng.random() < 0.5
            ):
                code = 3010
            else:
                code = 0
            if code != FAILURE_CODE:
                removing = item.action == "uninstall"
                agent.states[update_id] = "needed" if removing else "installed"
            agent.pending_restart |= code == 3010
            self.installs[agent.computer_id, update_id] = code
            self.stats["installs_failed" if code == FAILURE_CODE else "installs_ok"] += 1
            results.append(
                ag.InstallResult(
                    update_id=update_id,
                    operation="uninstall" if item.action == "uninstall" else "install",
                    return_code=code,
                    started_at=now - timedelta(minutes=2),
                    finished_at=now,
                )
            )
        if results:
            await self._report(agent, installs=results)

    async def _on_prompt(self, agent: Agent, prompt: ag.RestartPrompt) -> None:
        if prompt.may_postpone and agent.rng.random() < self.options.postpone_rate:
            self.stats["restarts_postponed"] += 1
            await self._restart_event(agent, "postponed")
            return
        await self._restart_event(agent, "prompted")
        await self._restarted(agent)

    async def _restarted(self, agent: Agent) -> None:
        agent.pending_restart = False
        self.stats["restarts"] += 1
        await self._restart_event(agent, "restarted")
        await self._checkin(agent, "restart")

    async def _restart_event(self, agent: Agent, event: str) -> None:
        await self._send(
            agent,
            ag.AGENT_RESTART,
            ag.AgentRestart(
                computer_id=agent.computer_id,
                event=event,
                at=self.clock.now(),
                user_logged_on=agent.user_logged_on,
            ),
        )

    async def _report(
        self,
        agent: Agent,
        *,
        detections: list[ag.DetectionResult] | None = None,
        installs: list[ag.InstallResult] | None = None,
    ) -> None:
        await self._send(
            agent,
            ag.AGENT_STATUS,
            ag.AgentStatus(
                computer_id=agent.computer_id,
                reported_at=self.clock.now(),
                detections=detections or [],
                installs=installs or [],
                user_logged_on=agent.user_logged_on,
            ),
        )
        self.stats["reports"] += 1


def _decode(spec: InstructionSpec[C], body: bytes) -> C:
    """An instruction's body as its contract model (what the scheduler published)."""
    return spec.model.model_validate_json(body)
