"""Simulated Windows agents: they speak only the agent protocol on `lockgate.agents`, and
fetch content only by the signed URLs their plans carry.

Each agent checks in with its inventory at start, at its policy's detection frequency and
after a restart; detects every update of its plan (a third-party one against its simulated
disk: services/simulator/detection.py; a Microsoft one drawn once at random); installs what
it is told, a third-party update only once its content is downloaded and verified
(services/simulator/download.py), reporting each result with the detection that follows;
answers restart prompts; asks now and then for an available update; counts the refusals it
is told about; goes offline now and then. A share of the fleet goes silent for good after a
while (not reporting), another checks in but never reports a status (no status).
Thousands run in one asyncio process; time can run faster (a clock shared with the services
through LOCKGATE_CLOCK_SPEED/EPOCH).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta
from typing import Literal, TypeVar

import aio_pika
import httpx
import structlog
from aio_pika.abc import AbstractIncomingMessage

from libs.bus import Bus, to_amqp
from libs.contracts import agents as ag
from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange
from libs.contracts.scheduler import AGENT_CHECKIN
from libs.contracts.spec import AgentEventSpec, Contract, InstructionSpec
from libs.service.clock import Clock
from services.simulator.agent import Agent, CheckinReason, Options, make_agents
from services.simulator.detection import detect
from services.simulator.disk import install, uninstall
from services.simulator.download import PACKAGE_OPEN_FAILED, Fetched, fetch

__all__ = ["FAILURE_CODE", "Agent", "Fleet", "Options"]

log = structlog.get_logger(__name__)

FAILURE_CODE = 1603  # ERROR_INSTALL_FAILURE
DETECTION_HOURS_BEFORE_PLAN = 8
"""How often an agent that has no plan yet checks in (the recommended detection frequency)."""

C = TypeVar("C", bound=Contract)


class Fleet:
    """N agents on one broker connection; instructions come through one queue."""

    def __init__(
        self, bus: Bus, clock: Clock, options: Options, http: httpx.AsyncClient | None = None
    ) -> None:
        self.bus, self.clock, self.options = bus, clock, options
        self.agents = make_agents(options)
        self.stats: Counter[str] = Counter()
        self.failures: set[tuple[str, str]] = set()
        """(computer, update) pairs whose installs always fail (scripted failures)."""
        self.detected: dict[tuple[str, str], str] = {}
        """What each computer first detected for each update (before any install)."""
        self.installs: dict[tuple[str, str], int] = {}
        """Last exit code each computer reported for each update (what the fleet did)."""
        self.downloads: dict[tuple[str, str], list[Fetched]] = {}
        """The last download of each (computer, update)'s content, file by file."""
        self.combined: set[tuple[str, str]] = set()
        """(computer, update): an install result went out in one report with a detection."""
        self.requests: set[tuple[str, str]] = set()
        """(computer, update): the user asked to install an available update."""
        self.rejections: list[ag.Rejected] = []
        """What the system told the agents it refused, as it arrived."""
        self._http, self._own_http = http, http is None
        self._downloading = asyncio.Semaphore(options.download_concurrency)
        self._tasks: list[asyncio.Task[None]] = []
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        """Bind every agent's instructions, then let each agent start (check in)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=60)
        self._channel = await self.bus.connection.channel()
        queue = await self._channel.declare_queue(
            f"simulator.{self.options.prefix}", exclusive=True, auto_delete=True
        )
        for computer_id in self.agents:
            await queue.bind(Exchange.AGENTS.value, routing_key=f"computer.{computer_id}.#")
        await queue.consume(self._on_instruction)
        for agent in self.agents.values():
            self._tasks.append(asyncio.create_task(self.live(agent)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._channel is not None:
            await self._channel.close()
        if self._http is not None and self._own_http:
            await self._http.aclose()

    def summary(self) -> dict[str, int]:
        return {
            "computers": len(self.agents),
            "online": sum(a.online for a in self.agents.values()),
            "silent": sum(a.silent for a in self.agents.values()),
            "mute": sum(a.mute for a in self.agents.values()),
            "rejected": self.stats["rejected"],
            **dict(sorted(self.stats.items())),
        }

    def silent(self) -> list[str]:
        """Computers that have gone silent (not reporting once the threshold passes)."""
        return sorted(a.computer_id for a in self.agents.values() if a.silent)

    def mute(self) -> list[str]:
        """Computers that check in but never report a status (no status)."""
        return sorted(a.computer_id for a in self.agents.values() if a.mute)

    async def live(self, agent: Agent) -> None:
        """Check in at start, then at the detection frequency; sometimes be offline; a
        computer chosen to go silent stops for good once `silent_after` has passed."""
        await asyncio.sleep(agent.rng.random() * 2)  # do not all start in the same instant
        await self._checkin(agent, "start")
        quiet_at = self.clock.now() + self.options.silent_after if agent.goes_silent else None
        while True:
            hours = (
                agent.plan.settings.detection_frequency_hours
                if agent.plan is not None
                else DETECTION_HOURS_BEFORE_PLAN
            )
            span = self.options.checkin_every or timedelta(hours=hours)
            if quiet_at is not None and quiet_at - self.clock.now() <= span:
                await self._sleep_simulated(quiet_at - self.clock.now())
                self.go_silent(agent)
                return
            await self._sleep_simulated(span)
            if agent.silent:  # told to go silent from outside (a test, a demo)
                return
            if agent.online and agent.rng.random() < self.options.offline_rate:
                agent.online = False
                self.stats["went_offline"] += 1
                continue
            reason: CheckinReason = "periodic" if agent.online else "start"
            agent.online = True
            await self._checkin(agent, reason)

    def go_silent(self, agent: Agent) -> None:
        """From now on the computer neither checks in, reports nor answers."""
        if not agent.silent:
            agent.online, agent.silent = False, True
            self.stats["went_silent"] += 1

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

    async def _checkin(self, agent: Agent, reason: CheckinReason) -> None:
        await self._send(agent, AGENT_CHECKIN, agent.checkin(reason, self.clock.now()))
        self.stats["checkins"] += 1

    async def _on_instruction(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            kind = str((message.headers or {}).get("ce-type", ""))
            await self.deliver(message.routing_key or "", kind, message.body)

    async def deliver(self, routing_key: str, kind: str, body: bytes) -> None:
        """What an agent does with a message on its queue (`computer.<id>.<kind>`, `ce-type`
        `kind`); an offline agent misses it."""
        parts = routing_key.split(".")
        agent = self.agents.get(parts[1]) if len(parts) > 2 else None
        if agent is None or not agent.online:
            self.stats["instructions_missed"] += agent is not None
            return
        if agent.mute:  # in contact, yet nothing ever comes back about its updates
            self.stats["instructions_ignored"] += 1
            return
        if kind == ag.PLAN.type:
            await self._on_plan(agent, _decode(ag.PLAN, body))
        elif kind == ag.INSTALL.type:
            await self._on_install(agent, _decode(ag.INSTALL, body))
        elif kind == ag.RESTART_PROMPT.type:
            await self._on_prompt(agent, _decode(ag.RESTART_PROMPT, body))
        elif kind == ag.RESTART.type:
            _decode(ag.RESTART, body)  # checked like the others; reason unused
            await self._restarted(agent)
        elif kind == ag.AGENT_UPDATE.type:
            update = _decode(ag.AGENT_UPDATE, body)
            agent.version = update.version  # the new agent starts and checks in
            self.stats["agent_updates"] += 1
            await self._checkin(agent, "start")
        elif kind == ag.REJECTED.type:
            self._on_rejected(_decode(ag.REJECTED, body))

    def _on_rejected(self, rejected: ag.Rejected) -> None:
        self.rejections.append(rejected)
        self.stats["rejected"] += 1
        log.warning(
            "message refused",
            computer=rejected.computer_id,
            message_type=rejected.message_type,
            field=rejected.field,
            reason=rejected.reason,
        )

    def _detect(
        self, agent: Agent, update_id: str, installation: ag.Installation | None
    ) -> ag.DetectionState:
        """Detect one update now: a third-party one against the disk, a Microsoft one drawn at
        random once (Windows Update's own detection is not simulated)."""
        state = agent.states.get(update_id)
        if installation is not None:
            state = detect(update_id, installation, agent.inventory, agent.disk, agent.states).state
        elif state is None:
            roll = agent.rng.random()
            state = "installed" if roll < 0.2 else "not_applicable" if roll > 0.9 else "needed"
            if (agent.computer_id, update_id) in self.failures:
                state = "needed"  # a scripted failure needs the update to apply
        agent.states[update_id] = state
        self.detected.setdefault((agent.computer_id, update_id), state)
        return state

    async def _on_plan(self, agent: Agent, plan: ag.ComputerPlan) -> None:
        """Detect: report the state of every approved update; ask for some available ones."""
        agent.plan = plan
        found = [
            ag.DetectionResult(
                update_id=item.update_id,
                state=self._detect(agent, item.update_id, item.installation),
            )
            for item in plan.items
        ]
        if found:
            await self._report(agent, detections=found)
        for item in plan.items:
            if (
                item.optional
                and agent.states[item.update_id] == "needed"
                and item.update_id not in agent.requested
                and agent.rng.random() < self.options.request_rate
            ):
                agent.requested.add(item.update_id)
                self.requests.add((agent.computer_id, item.update_id))
                self.stats["install_requests"] += 1
                await self._send(
                    agent,
                    ag.INSTALL_REQUEST,
                    ag.InstallRequest(
                        computer_id=agent.computer_id,
                        update_id=item.update_id,
                        requested_at=self.clock.now(),
                    ),
                )

    async def _on_install(self, agent: Agent, instruction: ag.InstallInstruction) -> None:
        """Install (or remove) what is asked; then report each result with what it detects
        afterwards, in one report (an install result and a detection for each update)."""
        planned = {i.update_id: i for i in agent.plan.items} if agent.plan is not None else {}
        results: list[ag.InstallResult] = []
        detections: list[ag.DetectionResult] = []
        for item in instruction.updates:
            update_id = item.update_id
            plan_item = planned.get(update_id)
            installation = item.installation or (plan_item.installation if plan_item else None)
            removing = item.action == "uninstall"
            before = self._detect(agent, update_id, installation)
            if before == "not_applicable" or (before == "installed" and not removing):
                # Nothing to do: no attempt, only what detection says.
                self.stats[f"install_skipped_{before}"] += 1
                detections.append(ag.DetectionResult(update_id=update_id, state=before))
                continue
            started = self.clock.now()
            code = await self._run(agent, item, installation, removing)
            agent.requested.discard(update_id)
            if code in (0, 3010) and installation is None:
                agent.states[update_id] = "needed" if removing else "installed"
            agent.pending_restart |= code == 3010
            self.installs[agent.computer_id, update_id] = code
            self.stats["installs_ok" if code in (0, 3010) else "installs_failed"] += 1
            results.append(
                ag.InstallResult(
                    update_id=update_id,
                    operation="uninstall" if removing else "install",
                    return_code=code,
                    started_at=started,
                    finished_at=max(self.clock.now(), started),
                )
            )
            detections.append(
                ag.DetectionResult(
                    update_id=update_id, state=self._detect(agent, update_id, installation)
                )
            )
        if results or detections:
            await self._report(agent, installs=results, detections=detections)

    async def _run(
        self,
        agent: Agent,
        item: ag.InstallItem,
        installation: ag.Installation | None,
        removing: bool,
    ) -> int:
        """One install or uninstall: the content first (third-party installs), then the
        installer's exit code (a scripted or random failure, 3010 when it restarts)."""
        if installation is not None and not removing:
            failed = await self._download(agent, item.update_id, installation)
            if failed is not None:
                return failed
        scripted = (agent.computer_id, item.update_id) in self.failures
        if scripted or agent.rng.random() < self.options.failure_rate:
            return FAILURE_CODE
        code = (
            3010
            if item.restart == "always"
            or (item.restart == "may_request" and agent.rng.random() < 0.5)
            else 0
        )
        if installation is not None:
            (uninstall if removing else install)(agent.disk, item.update_id, installation)
        return code

    async def _download(
        self, agent: Agent, update_id: str, installation: ag.Installation
    ) -> int | None:
        """Fetch and verify every file; the exit code of the first that fails, else None."""
        if self._http is None:
            raise RuntimeError("the fleet is not started: no HTTP client to download with")
        if not installation.files:
            log.warning("nothing to download", computer=agent.computer_id, update=update_id)
            self.stats["downloads_failed"] += 1
            return PACKAGE_OPEN_FAILED
        fetched: list[Fetched] = []
        self.downloads[agent.computer_id, update_id] = fetched
        for file in installation.files:
            cut = file.size // 2 if agent.rng.random() < self.options.interrupt_rate else None
            async with self._downloading:
                done = await fetch(self._http, file, cut_after=cut)
            fetched.append(done)
            self.stats["download_bytes"] += done.received
            self.stats["downloads_resumed"] += done.resumed
            if done.return_code is not None:
                self.stats["downloads_failed"] += 1
                log.warning(
                    "download failed",
                    computer=agent.computer_id,
                    update=update_id,
                    file=file.path,
                    return_code=done.return_code,
                    reason=done.reason,
                )
                if done.refusal == "expired":
                    # The plan is older than its URLs: check in for a fresh one.
                    self.stats["urls_expired"] += 1
                    await self._checkin(agent, "periodic")
                return done.return_code
            self.stats["downloads_ok"] += 1
        return None

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

    async def _restart_event(
        self, agent: Agent, event: Literal["prompted", "postponed", "restarted"]
    ) -> None:
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
        both = {i.update_id for i in installs or []} & {d.update_id for d in detections or []}
        self.stats["combined_reports"] += bool(both)
        self.combined.update((agent.computer_id, update_id) for update_id in both)


def _decode(spec: InstructionSpec[C], body: bytes) -> C:
    """An instruction's body as its contract model (what the scheduler published)."""
    return spec.model.model_validate_json(body)
