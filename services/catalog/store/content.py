"""Content store: uploaded files kept by sha256, behind an interface an object store can fill."""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from libs.settings import Settings

CHUNK = 1024 * 1024


class ContentStore(Protocol):
    """Where committed upload content lives."""

    def put(self, source: Path) -> tuple[str, int]:
        """Store a file's bytes; return (sha256, size). Storing the same bytes twice is free."""
        ...

    def path(self, sha256: str) -> Path:
        """Where the content of `sha256` can be read."""
        ...

    def delete(self, sha256: str) -> None:
        """Forget content no update uses any more."""
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


class LocalContentStore:
    """Files under one directory, `<root>/<aa>/<sha256>`; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def temporary(self) -> Path:
        """A fresh path on the store's file system, for assembling a file before put()."""
        scratch = self.root / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch / uuid.uuid4().hex

    def put(self, source: Path) -> tuple[str, int]:
        sha256, size = sha256_of(source)
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            source.unlink()
        else:
            source.replace(target)
        return sha256, size

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()


def for_settings(settings: Settings) -> LocalContentStore:
    """The content store of this deployment (LOCKGATE_CONTENT_DIR)."""
    return LocalContentStore(Path(settings.content_dir))
