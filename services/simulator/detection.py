"""What a simulated agent detects for a third-party update: its requirements against the
computer's inventory, then its detection rules and prerequisites against the disk.

Requirements are read as the scheduler reads them (services/scheduler/domain/applicability.py,
checked against it in tests/unit/test_simulator.py), so agent and plan agree on which
computers an update is `not_applicable` for:

- architecture: `x86` only on x86, `x64` only on x64, `both` everywhere (arm64 meets only
  `both`);
- operating systems: an empty list means any; names compared without case or outer spaces;
- free disk and memory: at least the amounts required.

Decided: prerequisites that do not hold make the update `not_applicable` until they do (as
Windows Update treats an update whose prerequisites are missing): nothing installs it, and
the next detection, after the prerequisite arrives, finds it `needed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from libs.contracts.agents import DetectionState, Installation, Requirements
from services.simulator.disk import Disk, all_hold, detects

Architecture = Literal["x86", "x64", "arm64"]

MEETS: dict[str, frozenset[Architecture]] = {
    "x86": frozenset({"x86"}),
    "x64": frozenset({"x64"}),
    "both": frozenset({"x86", "x64", "arm64"}),
}
"""Required architecture -> computer architectures that meet it."""


@dataclass(frozen=True)
class Inventory:
    """What the computer is (what its check-ins say), besides its disk's free space."""

    architecture: Architecture
    operating_system: str
    memory_bytes: int


@dataclass(frozen=True)
class Detected:
    state: DetectionState
    why: str
    """Why, in words (empty for `needed`)."""


def unmet(requirements: Requirements, inventory: Inventory, free_disk_bytes: int) -> list[str]:
    """Each requirement this computer does not meet, in words (empty: it applies)."""
    found: list[str] = []
    if inventory.architecture not in MEETS[requirements.architecture]:
        found.append(
            f"needs {requirements.architecture}, this computer is {inventory.architecture}"
        )
    wanted = {name.strip().casefold() for name in requirements.operating_systems}
    if wanted and inventory.operating_system.strip().casefold() not in wanted:
        found.append(
            f"needs {' or '.join(requirements.operating_systems)}, this computer runs "
            f"{inventory.operating_system or 'an unnamed system'}"
        )
    disk = requirements.min_free_disk_bytes
    if disk is not None and free_disk_bytes < disk:
        found.append(f"needs {disk} bytes of free disk, this computer has {free_disk_bytes}")
    memory = requirements.min_memory_bytes
    if memory is not None and inventory.memory_bytes < memory:
        found.append(f"needs {memory} bytes of memory, this computer has {inventory.memory_bytes}")
    return found


def detect(
    update_id: str,
    installation: Installation,
    inventory: Inventory,
    disk: Disk,
    held: Mapping[str, DetectionState],
) -> Detected:
    """The state to report for one third-party update (see the module for the order).

    `held` is what this agent last detected for every update, for a prerequisite package.
    """
    missing = unmet(installation.requirements, inventory, disk.free_bytes)
    if missing:
        return Detected("not_applicable", "; ".join(missing))
    if detects(disk, update_id, installation.detection_rules):
        return Detected("installed", "a detection rule holds")
    prerequisites = installation.prerequisites
    if prerequisites.package is not None and held.get(prerequisites.package) != "installed":
        return Detected("not_applicable", f"prerequisite {prerequisites.package} is not installed")
    if not all_hold(disk, prerequisites.rules):
        return Detected("not_applicable", "a prerequisite rule does not hold")
    return Detected("needed", "")
