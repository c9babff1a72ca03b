"""What keeps the content store and the rows naming its files consistent (issue 17).

Files go `tmp/<name>` (being written) -> `tmp/<sha256>.<token>.staged` (hashed, its rows not
yet committed) -> `<aa>/<sha256>` (in place, after commit). The sweeper compares what is on
disk with the sha256s the `contents` rows name, and `plan_sweep` decides what it does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from dataclasses import dataclass

STAGED_SUFFIX = ".staged"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FOLDER = re.compile(r"[0-9a-f]{2}")


@dataclass(frozen=True)
class FileAge:
    """A file of the store (its name in its folder) and seconds since it was last written."""

    name: str
    age_seconds: float


def staged_name(sha256: str, token: str) -> str:
    """The name under `tmp/` of a hashed file waiting for its commit; it carries the sha256,
    so after a crash the sweeper knows where it belongs."""
    return f"{sha256}.{token}{STAGED_SUFFIX}"


def staged_sha256(name: str) -> str | None:
    """The sha256 a staged file's name carries (None: not a staged file)."""
    if not name.endswith(STAGED_SUFFIX):
        return None
    sha256 = name.partition(".")[0]
    return sha256 if _SHA256.fullmatch(sha256) else None


def is_content_folder(name: str) -> bool:
    """`<aa>/`: the folder of content whose sha256 starts with `aa`."""
    return _FOLDER.fullmatch(name) is not None


@dataclass(frozen=True)
class SweepPlan:
    """What one sweep does."""

    settle: tuple[tuple[str, str], ...]
    """(staged file name, sha256) a committed row names: move it into place (a crash came
    between commit and the move)."""
    remove_temporary: tuple[str, ...]
    """Files under `tmp/` no row names, older than the grace period (a crash or a rollback
    before commit, or an abandoned assembly)."""
    remove_orphans: tuple[str, ...]
    """Content in place no row names, older than the grace period (a crash between a
    deletion's commit and the file's removal)."""
    missing: tuple[str, ...]
    """sha256 a row names with no file in place and none staged: reported, never invented."""


def plan_sweep(
    temporary: Iterable[FileAge],
    in_place: Iterable[FileAge],
    referenced: Set[str],
    grace_seconds: float,
) -> SweepPlan:
    """Compare the files on disk with the sha256s rows name.

    Young files no row names are left alone: they may belong to a transaction that has not
    committed yet (its rows are invisible here) and will be named, or settled, in a moment.
    """
    settle: list[tuple[str, str]] = []
    remove_temporary: list[str] = []
    for item in sorted(temporary, key=lambda f: f.name):
        sha256 = staged_sha256(item.name)
        if sha256 is not None and sha256 in referenced:
            settle.append((item.name, sha256))
        elif item.age_seconds > grace_seconds:
            remove_temporary.append(item.name)
    placed = {f.name for f in in_place}
    orphans = sorted(
        f.name for f in in_place if f.name not in referenced and f.age_seconds > grace_seconds
    )
    settling = {sha256 for _, sha256 in settle}
    missing = sorted(referenced - placed - settling)
    return SweepPlan(
        settle=tuple(settle),
        remove_temporary=tuple(remove_temporary),
        remove_orphans=tuple(orphans),
        missing=tuple(missing),
    )
