"""Downloading an update's content by its signed URL, as an agent must before installing.

The body is streamed and hashed as it arrives, never kept: a simulated install needs only
to know that the bytes were the right ones. An interrupted download resumes with `Range`
from the last byte received, the hash continuing where it stopped. A refusal (the console's
problem-details body names why: `expired`, `not_for_this_computer`, `unknown`), a transport
that keeps failing, or a size or sha256 that differs from the plan's is an install failure
with its own exit code, as Windows Installer reports a package it cannot open or trust.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import httpx

from libs.contracts.agents import ContentFile

PACKAGE_OPEN_FAILED = 1619
"""ERROR_INSTALL_PACKAGE_OPEN_FAILED: the content could not be fetched (refused, unreachable)."""
PACKAGE_INVALID = 1620
"""ERROR_INSTALL_PACKAGE_INVALID: the content fetched is not what the plan said (size, sha256)."""
ATTEMPTS = 4
"""Requests per file: the first, then resumptions after an interrupted transfer."""
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class Digest:
    """The size and sha256 of a body fed chunk by chunk (a resumed download continues it)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def mismatch(self, file: ContentFile) -> str | None:
        """What differs from the file the plan names, or None when size and sha256 match."""
        if self.size != file.size:
            return f"{file.path}: {self.size} bytes received, the plan says {file.size}"
        got = self._hash.hexdigest()
        if got != file.sha256:
            return f"{file.path}: sha256 {got}, the plan says {file.sha256}"
        return None


@dataclass(frozen=True)
class Fetched:
    """How one file's download ended."""

    path: str
    received: int
    """Bytes received over every request (a resumption counts only what it added)."""
    resumed: int
    """Requests that resumed with `Range` after an interruption."""
    return_code: int | None = None
    """None: the file is here and verified; else the install's exit code."""
    reason: str = ""
    refusal: str | None = None
    """The server's word for a refusal (the problem's `title`: `expired`, ...), if it gave one."""


def refusal_of(response: httpx.Response) -> tuple[str | None, str]:
    """Why the server refused: the problem-details `title` when it sent one, and in words."""
    try:
        problem = json.loads(response.content)
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        title, detail = problem.get("title"), problem.get("detail")
        if isinstance(title, str):
            return title, f"HTTP {response.status_code} {title}" + (
                f": {detail}" if isinstance(detail, str) else ""
            )
    return None, f"HTTP {response.status_code}"


def resumes_at(response: httpx.Response) -> int | None:
    """The first byte a 206 answer carries (None: no usable Content-Range)."""
    found = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    return int(found.group(1)) if found else None


async def fetch(
    client: httpx.AsyncClient, file: ContentFile, *, cut_after: int | None = None
) -> Fetched:
    """Download one file and verify it; `cut_after` drops the connection once that many
    bytes arrived on the first request (a simulated network failure, then a resumption)."""
    digest = Digest()
    resumed = 0
    last_error = ""
    for attempt in range(ATTEMPTS):
        headers = {"Range": f"bytes={digest.size}-"} if digest.size else {}
        resumed += bool(digest.size)
        try:
            async with client.stream("GET", file.url, headers=headers) as response:
                if response.status_code == 200 and digest.size:
                    digest = Digest()  # the server ignored the range: start over
                elif response.status_code == 206:
                    if resumes_at(response) != digest.size:
                        return _failed(file, digest, resumed, "a range that was not asked for")
                elif response.status_code != 200:
                    await response.aread()
                    title, words = refusal_of(response)
                    return Fetched(
                        file.path, digest.size, resumed, PACKAGE_OPEN_FAILED, words, title
                    )
                limit = cut_after if attempt == 0 else None
                async for received in response.aiter_bytes():
                    digest.feed(received if limit is None else received[: limit - digest.size])
                    if limit is not None and digest.size >= limit:
                        raise httpx.ReadError("connection dropped (simulated)")
                    if digest.size > file.size:
                        break  # more than the plan says: no use reading on
            break
        except httpx.TransportError as error:
            last_error = f"{type(error).__name__}: {error}"
    else:
        return Fetched(
            file.path,
            digest.size,
            resumed,
            PACKAGE_OPEN_FAILED,
            f"{file.path}: interrupted {ATTEMPTS} times ({last_error})",
        )
    mismatch = digest.mismatch(file)
    if mismatch is not None:
        return Fetched(file.path, digest.size, resumed, PACKAGE_INVALID, mismatch)
    return Fetched(file.path, digest.size, resumed)


def _failed(file: ContentFile, digest: Digest, resumed: int, what: str) -> Fetched:
    return Fetched(
        file.path, digest.size, resumed, PACKAGE_OPEN_FAILED, f"{file.path}: the server sent {what}"
    )
