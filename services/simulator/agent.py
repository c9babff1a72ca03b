"""One simulated computer and the options a fleet of them runs with."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from libs.contracts import agents as ag
from libs.contracts.scheduler import AgentCheckin
from services.simulator.detection import Architecture, Inventory
from services.simulator.disk import Disk

TIMEZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/London", "UTC")
OS_BUILDS = {"Windows 11": "10.0.26100", "Windows 10": "10.0.19045"}
MEMORY_SIZES = (4, 8, 8, 16, 16, 16, 32)
"""GiB of memory, drawn per computer (8 and 16 the commonest)."""
GIB = 1024**3
CheckinReason = Literal["start", "periodic", "restart"]


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
    x86_rate: float = 0.1
    """Share of 32-bit (x86) computers; the others are x64, or arm64 (`arm64_rate`)."""
    arm64_rate: float = 0.0
    windows10_rate: float = 0.2
    """Share of computers running Windows 10; the others run Windows 11."""
    request_rate: float = 0.1
    """Chance, at each plan, that the user asks to install each available update it needs."""
    interrupt_rate: float = 0.05
    """Chance that a download's connection drops halfway (the agent resumes it with Range)."""
    download_concurrency: int = 16
    """Downloads running at once across the fleet (one process simulates every agent)."""
    silent_rate: float = 0.0
    """Share of computers that go silent for good `silent_after` after they start: no more
    check-ins, reports or answers (a computer gone from the network: not reporting)."""
    silent_after: timedelta = timedelta(days=1)
    """Simulated time a silent computer keeps working before it goes quiet."""
    mute_rate: float = 0.0
    """Share of computers that check in (and stay in contact) but never report a status:
    an agent whose update detection is broken (no status for every update approved)."""
    checkin_every: timedelta | None = None
    """Check in this often instead of at the policy's detection frequency (8-22 hours): a
    demo compresses time this way, so a silent computer stands out within minutes."""


@dataclass
class Agent:
    computer_id: str
    timezone: str
    inventory: Inventory
    disk: Disk
    user_logged_on: bool
    rng: random.Random
    online: bool = True
    plan: ag.ComputerPlan | None = None
    """The last plan it was sent (none before the first)."""
    states: dict[str, ag.DetectionState] = field(default_factory=dict)
    """What this computer holds per update: installed, needed or not_applicable."""
    requested: set[str] = field(default_factory=set)
    """Available updates its user asked for that have not been installed yet."""
    pending_restart: bool = False
    version: str = "1.0.0"
    """The agent version it runs (mandatory agent updates raise it)."""
    goes_silent: bool = False
    """It goes silent for good once `Options.silent_after` has passed (`silent` then)."""
    silent: bool = False
    """It has gone silent: no check-in, report or answer any more."""
    mute: bool = False
    """It checks in but never reports a status nor acts on its plan."""

    @property
    def architecture(self) -> Architecture:
        return self.inventory.architecture

    def checkin(self, reason: CheckinReason, now: datetime) -> AgentCheckin:
        """Its check-in, inventory included (free disk as the disk has it now)."""
        return AgentCheckin(
            computer_id=self.computer_id,
            hostname=f"{self.computer_id}.corp.example",
            os_version=OS_BUILDS.get(self.inventory.operating_system, ""),
            timezone=self.timezone,
            agent_version=self.version,
            checked_in_at=now,
            hardware_id=f"hw-{self.computer_id}",
            architecture=self.inventory.architecture,
            operating_system=self.inventory.operating_system,
            free_disk_bytes=self.disk.free_bytes,
            memory_bytes=self.inventory.memory_bytes,
            user_logged_on=self.user_logged_on,
            reason=reason,
        )


def make_agents(options: Options) -> dict[str, Agent]:
    """The fleet's computers, drawn from the options' seed (the same seed, the same fleet)."""
    rng = random.Random(options.seed)  # noqa: S311 - simulation, not security
    agents: dict[str, Agent] = {}
    for n in range(options.computers):
        computer_id = f"{options.prefix}-{n:05d}"
        roll = rng.random()
        architecture: Architecture = (
            "x86"
            if roll < options.x86_rate
            else "arm64"
            if roll < options.x86_rate + options.arm64_rate
            else "x64"
        )
        agents[computer_id] = Agent(
            computer_id=computer_id,
            timezone=rng.choice(TIMEZONES),
            inventory=Inventory(
                architecture=architecture,
                operating_system="Windows 10"
                if rng.random() < options.windows10_rate
                else "Windows 11",
                memory_bytes=rng.choice(MEMORY_SIZES) * GIB,
            ),
            disk=Disk.fresh(free_bytes=rng.randint(8, 200) * GIB),
            user_logged_on=rng.random() < 0.7,
            rng=random.Random(rng.random()),  # noqa: S311 - simulation
        )
    _choose_quiet(agents, options)
    return agents


def _choose_quiet(agents: dict[str, Agent], options: Options) -> None:
    """Which computers go silent and which are mute, from a generator of their own (a seed
    draws the same computers, inventories and behaviour whatever these rates are)."""
    rng = random.Random(f"{options.seed}/quiet")  # noqa: S311 - simulation
    for agent in agents.values():
        roll = rng.random()
        agent.goes_silent = roll < options.silent_rate
        agent.mute = not agent.goes_silent and roll < options.silent_rate + options.mute_rate
