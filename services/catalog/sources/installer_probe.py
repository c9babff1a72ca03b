"""Reading an uploaded installer's metadata in a child process with CPU, memory and time limits.

The readers in `domain/installers/` parse bytes anyone with an upload token chose. However
careful they are, a file crafted against olefile or pefile may still loop, recurse or
allocate without end; run in the catalog itself, that holds a worker, its memory and the
upload's transaction, and a crash is retried and dead-lettered. Here the reading runs in
`python -m services.catalog.sources.installer_child`, which limits itself (RLIMIT_CPU,
RLIMIT_AS) before it reads a byte; the parent also kills it past a wall-clock timeout. Any
way it ends other than with metadata (a refusal by the reader, a limit, a timeout, a crash)
is an `InvalidInstaller` naming the file and the reason: the upload is refused, not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from services.catalog.domain.installers.common import KINDS, InstallerMetadata, InvalidInstaller

if TYPE_CHECKING:
    from libs.settings import Settings

MAX_OUTPUT_BYTES = 1024 * 1024
"""The child's answer (metadata as JSON) may be no longer than this."""

_MIB = 1024 * 1024
_CHILD = "services.catalog.sources.installer_child"
_KEYS = frozenset(InstallerMetadata.__dataclass_fields__)


@dataclass(frozen=True)
class ProbeLimits:
    """How much the child reading one installer may use before it is stopped."""

    cpu_seconds: int
    memory_bytes: int
    """Address space beyond the installer's own size (which the child maps)."""
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ProbeLimits:
        return cls(
            cpu_seconds=settings.installer_probe_cpu_seconds,
            memory_bytes=settings.installer_probe_memory_mb * _MIB,
            timeout_seconds=settings.installer_probe_timeout_seconds,
        )


async def probe_installer(path: Path, filename: str, limits: ProbeLimits) -> InstallerMetadata:
    """The metadata of the installer at `path`, uploaded as `filename`, read by a limited child.

    Raises InvalidInstaller ("<filename>: <reason>") whenever the child ends without metadata.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        _CHILD,
        str(path),
        filename,
        str(limits.cpu_seconds),
        str(limits.memory_bytes),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        output, errors = await asyncio.wait_for(_collect(process), limits.timeout_seconds)
    except TimeoutError:
        raise InvalidInstaller(
            f"{filename}: reading its metadata took longer than {limits.timeout_seconds:g} "
            "seconds (LOCKGATE_INSTALLER_PROBE_TIMEOUT_SECONDS)"
        ) from None
    finally:
        if process.returncode is None:  # timed out, or this task was cancelled: stop the child
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return _answer(process.returncode or 0, output, errors, filename, limits)


async def _collect(process: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    """The child's answer (at most MAX_OUTPUT_BYTES + 1 bytes) and its last error lines."""
    assert process.stdout is not None  # noqa: S101 - both pipes were asked for
    assert process.stderr is not None  # noqa: S101
    output, errors = await asyncio.gather(
        process.stdout.read(MAX_OUTPUT_BYTES + 1), process.stderr.read(64 * 1024)
    )
    if len(output) > MAX_OUTPUT_BYTES:
        process.kill()
    await process.wait()
    return output, errors


def _answer(
    code: int, output: bytes, errors: bytes, filename: str, limits: ProbeLimits
) -> InstallerMetadata:
    if code in (-signal.SIGXCPU, -signal.SIGKILL) and not output:
        raise InvalidInstaller(
            f"{filename}: reading its metadata used more than {limits.cpu_seconds} CPU "
            "seconds (LOCKGATE_INSTALLER_PROBE_CPU_SECONDS) or was killed for its memory"
        )
    if len(output) > MAX_OUTPUT_BYTES:
        raise InvalidInstaller(f"{filename}: its metadata is longer than {MAX_OUTPUT_BYTES} bytes")
    answer = _decoded(output)
    if answer is None:
        last = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise InvalidInstaller(
            f"{filename}: the metadata reader failed (exit status {code}): {last[0][:300]}"
        )
    if isinstance(answer, str):
        raise InvalidInstaller(answer)
    return answer


def _decoded(output: bytes) -> InstallerMetadata | str | None:
    """The child's metadata, its refusal, or None when it answered nothing readable."""
    try:
        answer = json.loads(output)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    refused, fields = answer.get("refused"), answer.get("metadata")
    if isinstance(refused, str):
        return refused
    if not isinstance(fields, dict):
        return None
    readable = (
        set(fields) == _KEYS
        and all(value is None or isinstance(value, str) for value in fields.values())
        and fields["kind"] in KINDS.values()
    )
    return InstallerMetadata(**fields) if readable else None
