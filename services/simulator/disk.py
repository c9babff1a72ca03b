"""A simulated computer's disk: the files, MSI product codes and registry keys detection
rules look for, and what "installing" an update leaves on it.

Windows compares paths, registry keys and product codes without regard to case, so the disk
does too: `C:\\Program Files\\X` and `c:/program files/x/` are one file, `HKEY_LOCAL_MACHINE\\`
and `HKLM\\` one hive, `{guid}` and `GUID` one product code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from libs.contracts.agents import Installation
from libs.contracts.catalog import DetectionRule

INSTALLED_ONCE_KEY = "HKLM\\SOFTWARE\\Lockgate\\Installed"
"""Where the agent records an update installed by the default rule (no detection rules:
install exactly once per computer, docs/product.md section 4 step 4)."""

BASE_FILES = (
    "C:\\Windows\\System32\\kernel32.dll",
    "C:\\Windows\\System32\\msiexec.exe",
    "C:\\Program Files\\Common Files\\System\\ado\\msado15.dll",
)
BASE_KEYS = ("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion",)
_HIVES = {
    "HKEY_LOCAL_MACHINE": "HKLM",
    "HKEY_CURRENT_USER": "HKCU",
    "HKEY_CLASSES_ROOT": "HKCR",
    "HKEY_USERS": "HKU",
}


def file_key(path: str) -> str:
    """A Windows path as the disk compares it."""
    return path.strip().replace("/", "\\").rstrip("\\").casefold()


def registry_key(path: str) -> str:
    """A registry key path as the disk compares it (long hive names shortened)."""
    cleaned = path.strip().replace("/", "\\").rstrip("\\")
    hive, _, rest = cleaned.partition("\\")
    hive = _HIVES.get(hive.upper(), hive)
    return f"{hive}\\{rest}".casefold() if rest else hive.casefold()


def product_key(code: str) -> str:
    """An MSI product code as the disk compares it: upper case, in braces."""
    return "{" + code.strip().strip("{}").upper() + "}"


def installed_once_key(update_id: str) -> str:
    return f"{INSTALLED_ONCE_KEY}\\{update_id}"


@dataclass
class Disk:
    """What is on one simulated computer (compared as Windows would, see the module)."""

    free_bytes: int
    files: set[str] = field(default_factory=set)
    product_codes: set[str] = field(default_factory=set)
    registry_keys: set[str] = field(default_factory=set)

    @classmethod
    def fresh(cls, free_bytes: int) -> Disk:
        """A newly installed Windows: a few system files and keys, no third-party software."""
        disk = cls(free_bytes=free_bytes)
        disk.add(*(DetectionRule(kind="file_exists", value=path) for path in BASE_FILES))
        disk.add(*(DetectionRule(kind="registry_key", value=key) for key in BASE_KEYS))
        return disk

    def holds(self, rule: DetectionRule) -> bool:
        """Whether one rule holds on this disk."""
        if rule.kind == "file_exists":
            return file_key(rule.value) in self.files
        if rule.kind == "msi_product_code":
            return product_key(rule.value) in self.product_codes
        key = registry_key(rule.value)
        return key in self.registry_keys or any(
            held.startswith(key + "\\") for held in self.registry_keys
        )

    def add(self, *rules: DetectionRule) -> None:
        """Put on the disk what each rule looks for (an installer's doing, or a test's)."""
        for rule in rules:
            if rule.kind == "file_exists":
                self.files.add(file_key(rule.value))
            elif rule.kind == "msi_product_code":
                self.product_codes.add(product_key(rule.value))
            else:
                self.registry_keys.add(registry_key(rule.value))

    def remove(self, *rules: DetectionRule) -> None:
        """Take off the disk what each rule looks for (an uninstall)."""
        for rule in rules:
            if rule.kind == "file_exists":
                self.files.discard(file_key(rule.value))
            elif rule.kind == "msi_product_code":
                self.product_codes.discard(product_key(rule.value))
            else:
                self.registry_keys.discard(registry_key(rule.value))


def detects(disk: Disk, update_id: str, rules: Sequence[DetectionRule]) -> bool:
    """Whether the update is installed: any of its detection rules holds, or, with none, the
    default rule (the agent installed it here before)."""
    if not rules:
        return disk.holds(_installed_once(update_id))
    return any(disk.holds(rule) for rule in rules)


def all_hold(disk: Disk, rules: Iterable[DetectionRule]) -> bool:
    """Prerequisite rules: every one must hold."""
    return all(disk.holds(rule) for rule in rules)


def install(disk: Disk, update_id: str, installation: Installation) -> None:
    """What a successful install leaves: everything its detection rules look for, the agent's
    own record of it, and less free space (the content's size: the installed files)."""
    disk.add(*installation.detection_rules, _installed_once(update_id))
    disk.free_bytes = max(disk.free_bytes - sum(f.size for f in installation.files), 0)


def uninstall(disk: Disk, update_id: str, installation: Installation) -> None:
    disk.remove(*installation.detection_rules, _installed_once(update_id))
    disk.free_bytes += sum(f.size for f in installation.files)


def _installed_once(update_id: str) -> DetectionRule:
    return DetectionRule(kind="registry_key", value=installed_once_key(update_id))
