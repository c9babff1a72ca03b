"""The child process reading one installer's metadata: `python -m` this module.

It limits itself (RLIMIT_CPU, RLIMIT_AS, no core dump) before reading a byte, reads with the
domain's readers, and answers one JSON object on stdout: {"metadata": {...}} or
{"refused": "<file name>: <reason>"}. It imports no more than the readers, to start fast;
`installer_probe.py` starts it, waits for it within a wall-clock limit and reads the answer.
"""

from __future__ import annotations

import json
import mmap
import os
import resource
import sys
from dataclasses import asdict
from pathlib import Path

from services.catalog.domain.installers import read_installer
from services.catalog.domain.installers.common import InvalidInstaller

_MIB = 1024 * 1024


def _address_space() -> int:
    """Bytes of address space this process already uses (the interpreter, the readers)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


def _limit_self(cpu_seconds: int, address_space: int) -> None:
    """Limits this process sets on itself before reading: the kernel enforces them."""
    # the soft CPU limit sends SIGXCPU, the hard one a second later SIGKILL
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _read(path: Path, filename: str, cpu_seconds: int, memory_bytes: int) -> dict[str, object]:
    """The child's answer: the metadata, or why the file is refused."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            # the installer is mapped (not read whole): its size counts on top of the limit
            _limit_self(cpu_seconds, _address_space() + memory_bytes + size)
            if size == 0:
                return {"metadata": asdict(read_installer(b"", filename))}
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) as content:
                return {"metadata": asdict(read_installer(content, filename))}
    except InvalidInstaller as error:
        refusal = str(error)
    except MemoryError:
        refusal = (
            f"{filename}: reading its metadata needs more than {memory_bytes // _MIB} MiB "
            "of memory (LOCKGATE_INSTALLER_PROBE_MEMORY_MB)"
        )
    except OSError as error:
        refusal = f"{filename}: cannot be read: {error.strerror or error}"
    except RecursionError:
        refusal = f"{filename}: its structures nest too deeply to be read"
    except Exception as error:  # noqa: BLE001 - any failure of a reader is a refusal
        refusal = (
            f"{filename}: its metadata cannot be read ({type(error).__name__}: {str(error)[:200]})"
        )
    return {"refused": refusal}


def main(argv: list[str]) -> int:
    """`python -m services.catalog.sources.installer_child PATH NAME CPU_SECONDS MEMORY_BYTES`."""
    path, filename, cpu_seconds, memory_bytes = argv
    answer = _read(Path(path), filename, int(cpu_seconds), int(memory_bytes))
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
