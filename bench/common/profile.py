"""py-spy recordings for benchmarks whose goal is missed (the one place that finds and runs py-spy).

`spy(path)` starts `py-spy record --pid <this process>` writing an SVG flame graph to
`path` (relative to the repository; raw collapsed stacks if it ends in .txt) and stops it
(SIGINT, so it writes the file) at the end of the block; the block gets the path, or None
when py-spy is missing (`spy(None)` records nothing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def py_spy() -> str | None:
    """The py-spy beside this Python (the venv's), else on PATH, else None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def spy(path: str | None, *, rate: int = 100, pid: int | None = None) -> Iterator[str | None]:
    """Record `pid` (this process by default) into `path` while the block runs."""
    binary = py_spy() if path else None
    if path is None or binary is None:
        if path:
            print("py-spy is not installed: no profile recorded", flush=True)
        yield None
        return
    target = ROOT / path
    target.parent.mkdir(parents=True, exist_ok=True)
    fmt = "raw" if target.suffix == ".txt" else "flamegraph"
    recorder = subprocess.Popen(
        [
            *(binary, "record", "--pid", str(pid or os.getpid()), "--rate", str(rate)),
            *("--nonblocking", "--format", fmt, "--output", str(target)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # attached before the work starts
    try:
        yield path
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            _, errors = recorder.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            errors = b""
        if recorder.returncode not in (0, -signal.SIGINT) or not target.exists():
            print(f"py-spy failed: {errors.decode(errors='replace')[-300:]}", flush=True)
