"""The approval and scheduler services as child processes, and what each one costs.

Each service runs as `python -m services.<name>` (tests.support.processes.ServiceRunner), so
its memory and CPU are its own: a thread samples every process's resident set size
(/proc/<pid>/status VmRSS) and reads its CPU ticks (/proc/<pid>/stat) at the start and end of
a phase.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench.common.meters import CLOCK_TICKS, MIB
from tests.support.infra import Infra
from tests.support.processes import ServiceRunner

SERVICES = ("approval", "scheduler")
BENCH_ENV = {
    "LOCKGATE_LOG_LEVEL": "warning",
    "LOCKGATE_HEARTBEAT_SECONDS": "3600",  # one heartbeat at start, none in a timed phase
    "LOCKGATE_PLANNER_POLL_SECONDS": "0.1",
    "LOCKGATE_METRICS_SAMPLE_SECONDS": "3600",
    "LOCKGATE_RPC_TIMEOUT_SECONDS": "600",
    "LOCKGATE_DATABASE_COMMAND_TIMEOUT_SECONDS": "600",
}


def rss_bytes(pid: int) -> int:
    """Resident set size of a process now (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def cpu_ticks(pid: int) -> int:
    """User + system CPU ticks of a process so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


@dataclass(frozen=True)
class ProcessUse:
    """One service process during a phase."""

    rss_start_mib: float
    rss_peak_mib: float
    cpu_seconds: float


class ProcessMeter:
    """Peak RSS (sampled every `interval` s) and CPU of named processes while the block runs."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-meter", daemon=True)
        self._start = dict.fromkeys(pids, 0)
        self._peak = dict.fromkeys(pids, 0)
        self._ticks = dict.fromkeys(pids, 0)
        self.use: dict[str, ProcessUse] = {}

    def _sample(self) -> None:
        for name, pid in self._pids.items():
            self._peak[name] = max(self._peak[name], rss_bytes(pid))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> ProcessMeter:
        for name, pid in self._pids.items():
            self._start[name] = self._peak[name] = rss_bytes(pid)
            self._ticks[name] = cpu_ticks(pid)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.use = {
            name: ProcessUse(
                self._start[name] / MIB,
                self._peak[name] / MIB,
                (cpu_ticks(pid) - self._ticks[name]) / CLOCK_TICKS,
            )
            for name, pid in self._pids.items()
        }


@dataclass
class Services:
    runners: dict[str, ServiceRunner]
    log_dir: Path

    @property
    def pids(self) -> dict[str, int]:
        found = {}
        for name, runner in self.runners.items():
            assert runner.process is not None
            found[name] = runner.process.pid
        return found

    def check_alive(self) -> None:
        for name, runner in self.runners.items():
            assert runner.process is not None
            if runner.process.poll() is not None:
                raise RuntimeError(f"{name} exited: {runner.log()}")


@contextmanager
def service_processes(infra: Infra) -> Iterator[Services]:
    """Approval and scheduler started (their migrations applied), stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="bench-approval-scale-") as logs:
        log_dir = Path(logs)
        env = dict(BENCH_ENV)
        env.setdefault("LOCKGATE_LOG_LEVEL", os.environ.get("LOCKGATE_LOG_LEVEL", "warning"))
        runners = {name: ServiceRunner(name, infra, log_dir, **env) for name in SERVICES}
        try:
            for runner in runners.values():
                runner.start()
            yield Services(runners, log_dir)
        finally:
            for runner in runners.values():
                runner.stop_quietly()
