"""Whether a third-party update applies to a computer: its requirements against the inventory
the computer's last check-in gave (docs/product.md section 4, step 3).

An update whose requirements a computer does not meet is `not_applicable` for it: the plan
says so, with nothing to install, and no install is ever sent. Decided:

- architecture: `x86` (32-bit) applies to x86 computers only, `x64` (64-bit) to x64 computers
  only, `both` to every computer. An arm64 computer meets only `both`: a package declared for
  one Intel architecture is built for it (drivers, agents, 32- or 64-bit-only software), and
  Windows on Arm running it under emulation is not what its publisher declared;
- operating systems: an empty list means any; a computer that did not say which operating
  system it runs (an older agent) meets the requirement, since refusing would stop every
  third-party install on it; names are compared without regard to case or outer spaces;
- free disk space and memory: checked only when both the requirement and the computer's
  figure are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from libs.contracts.agents import Requirements

Architecture = Literal["x86", "x64", "arm64"]

MEETS: dict[str, frozenset[str]] = {
    "x86": frozenset({"x86"}),
    "x64": frozenset({"x64"}),
    "both": frozenset({"x86", "x64", "arm64"}),
}
"""Required architecture -> computer architectures that meet it."""


@dataclass(frozen=True)
class Inventory:
    """What a computer said of itself at its last check-in (None / empty: not said)."""

    architecture: Architecture = "x64"
    operating_system: str = ""
    free_disk_bytes: int | None = None
    memory_bytes: int | None = None


def unmet(requirements: Requirements, inventory: Inventory) -> list[str]:
    """Each requirement the computer does not meet, in words (empty: the update applies)."""
    found: list[str] = []
    if inventory.architecture not in MEETS[requirements.architecture]:
        found.append(
            f"architecture {requirements.architecture} required, the computer is "
            f"{inventory.architecture}"
        )
    wanted = {name.strip().casefold() for name in requirements.operating_systems}
    running = inventory.operating_system.strip()
    if wanted and running and running.casefold() not in wanted:
        found.append(
            f"operating system one of {', '.join(requirements.operating_systems)} required, "
            f"the computer runs {running}"
        )
    needed, free = requirements.min_free_disk_bytes, inventory.free_disk_bytes
    if needed is not None and free is not None and free < needed:
        found.append(f"{needed} bytes of free disk required, the computer has {free}")
    needed, memory = requirements.min_memory_bytes, inventory.memory_bytes
    if needed is not None and memory is not None and memory < needed:
        found.append(f"{needed} bytes of memory required, the computer has {memory}")
    return found


def applies(requirements: Requirements | None, inventory: Inventory) -> bool:
    """An update without requirements (a Microsoft update) applies as far as we can tell:
    Windows Update itself reports what is not applicable."""
    return requirements is None or not unmet(requirements, inventory)
