"""Content store: uploaded files kept by sha256, behind an interface an object store can fill.

Crash safety (issue 17): a file is written under `tmp/`, hashed and *staged* there under a
name that carries its sha256 (`tmp/<sha256>.<token>.staged`); the rows naming it commit; only
then is it *settled* into its final place `<aa>/<sha256>`. Final names are content-addressed,
so settling is idempotent: a file already in place means the staged copy is dropped. A crash
between commit and settle leaves a staged file whose sha256 a row names, which the sweeper
(services/catalog/use_cases/content.py) settles; a crash before commit leaves a staged file
no row names, which the sweeper removes after the grace period.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from libs.db.pool import Connection
from libs.settings import Settings
from services.catalog.domain.content import FileAge, is_content_folder, staged_name

CHUNK = 1024 * 1024
TMP = "tmp"


@dataclass(frozen=True)
class Staged:
    """A file hashed and waiting under `tmp/` for the commit of the rows that name it."""

    sha256: str
    size: int
    path: Path


class ContentStore(Protocol):
    """Where committed upload content lives."""

    def stage(self, source: Path) -> Staged:
        """Hash a file written under temporary(); keep it staged, not yet in place."""
        ...

    def hold(self, staged: Sequence[Staged]) -> None:
        """Keep staged files from the sweeper until their commit (raises if one is gone)."""
        ...

    def settle(self, staged: Path, sha256: str) -> bool:
        """Put a staged file in its final place (after commit); True if it was moved there."""
        ...

    def path(self, sha256: str) -> Path:
        """Where the content of `sha256` can be read."""
        ...

    def delete(self, sha256: str) -> None:
        """Forget content no update uses any more (after commit, and once no row names it)."""
        ...


def sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """A file's bytes, mapped rather than read: an installer may be larger than memory allows."""
    with path.open("rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            yield b""  # an empty file cannot be mapped, and has nothing to map
            return
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) as content:
            yield content


def _durable(path: Path) -> None:
    """The file's bytes on disk before a row that names them commits."""
    with path.open("rb") as file:
        os.fsync(file.fileno())


def _ages(directory: Path, now: float) -> list[FileAge]:
    """The plain files of a folder and how old each is (seconds since last written)."""
    found: list[FileAge] = []
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another sweep
                if entry.is_file(follow_symlinks=False):
                    age = now - entry.stat(follow_symlinks=False).st_mtime
                    found.append(FileAge(entry.name, age))
    return found


class LocalContentStore:
    """Files under one directory: `<root>/<aa>/<sha256>` in place, `<root>/tmp/` on the way."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def scratch(self) -> Path:
        return self.root / TMP

    def temporary(self) -> Path:
        """A fresh path on the store's file system, for assembling a file before stage()."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch / uuid.uuid4().hex

    def stage(self, source: Path) -> Staged:
        sha256, size = sha256_of(source)
        _durable(source)
        self.scratch.mkdir(parents=True, exist_ok=True)
        staged = self.scratch / staged_name(sha256, uuid.uuid4().hex)
        source.replace(staged)
        return Staged(sha256=sha256, size=size, path=staged)

    def hold(self, staged: Sequence[Staged]) -> None:
        """Mark staged files as just written, right before the rows naming them are added:
        the sweeper leaves files this young alone, so the commit still finds them in tmp/.
        Raises FileNotFoundError if one is gone already (the commit must not happen)."""
        for file in staged:
            os.utime(file.path)

    def settle(self, staged: Path, sha256: str) -> bool:
        target = self.path(sha256)
        if target.exists():
            staged.unlink(missing_ok=True)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            staged.replace(target)
        except FileNotFoundError:  # settled meanwhile by the sweeper (or another replica)
            if not target.exists():
                raise
            return False
        return True

    def put(self, source: Path) -> tuple[str, int]:
        """Stage and settle at once, with no rows to wait for (tools and tests)."""
        staged = self.stage(source)
        self.settle(staged.path, staged.sha256)
        return staged.sha256, staged.size

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()

    def remove_temporary(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.scratch / name).unlink()

    def temporary_files(self) -> list[FileAge]:
        """Every file under `tmp/` (assembling, staged or left by a crash), with its age."""
        return _ages(self.scratch, time.time())

    def content_files(self) -> list[FileAge]:
        """Every file in place (`<aa>/<sha256>`), with its age."""
        now = time.time()
        found: list[FileAge] = []
        folders: list[str] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root) as entries:
            folders = [e.name for e in entries if e.is_dir() and is_content_folder(e.name)]
        for folder in folders:
            found.extend(f for f in _ages(self.root / folder, now) if f.name[:2] == folder)
        return found


_LOCK = "pg_advisory_xact_lock(hashtext('lockgate.catalog.content'), key)"


async def lock(conn: Connection, sha256s: Iterable[str]) -> None:
    """Hold each sha256 for this transaction: whoever adds rows naming it, deletes them or
    removes its file takes these, in one order (no deadlock), so a file is removed only while
    no committed row names it."""
    await conn.execute(
        f"SELECT {_LOCK} FROM (SELECT DISTINCT hashtext(s) AS key"
        " FROM unnest($1::text[]) AS s ORDER BY 1) AS keys",
        sorted(set(sha256s)),
    )


async def lock_update(conn: Connection, update_id: str) -> None:
    """Hold every sha256 an update's files use (before deleting it)."""
    await conn.execute(
        f"SELECT {_LOCK} FROM (SELECT DISTINCT hashtext(sha256) AS key"
        " FROM package_files WHERE update_id = $1::uuid ORDER BY 1) AS keys",
        update_id,
    )


async def named(conn: Connection) -> set[str]:
    """Every sha256 a content row names (what the store must hold)."""
    return {row["sha256"] for row in await conn.fetch("SELECT sha256 FROM contents")}


async def is_named(conn: Connection, sha256: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM contents WHERE sha256 = $1)", sha256
    )
    return found


async def users(conn: Connection, sha256s: Sequence[str]) -> dict[str, list[str]]:
    """The updates whose files use each sha256 (to say what a missing file breaks)."""
    rows = await conn.fetch(
        "SELECT sha256, array_agg(DISTINCT update_id::text ORDER BY update_id::text) AS ids"
        " FROM package_files WHERE sha256 = ANY($1::text[]) GROUP BY sha256",
        list(sha256s),
    )
    return {row["sha256"]: list(row["ids"]) for row in rows}


async def try_sweep_lock(conn: Connection) -> bool:
    """One sweeper at a time across replicas (held by the session until sweep_unlock)."""
    got: bool = await conn.fetchval(
        "SELECT pg_try_advisory_lock(hashtext('lockgate.catalog.sweep'))"
    )
    return got


async def sweep_unlock(conn: Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtext('lockgate.catalog.sweep'))")


def for_settings(settings: Settings) -> LocalContentStore:
    """The content store of this deployment (LOCKGATE_CONTENT_DIR)."""
    return LocalContentStore(Path(settings.content_dir))
