"""Lockgate services as the operator runs them: one `python -m services.<name>` process each
(Procfile), started against a benchmark's vhost and database, and their memory sampled.

`ServiceSet` starts any number of replicas of each service with a port of their own, waits
until each answers /readyz, and stops them with SIGTERM (SIGKILL after a grace period).
`RssWatch` reads the resident set size of every process (its children included, should a
service start any) from /proc every `interval` seconds in a thread, and keeps per phase the
peak of each service.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common.meters import MIB
from tests.support.infra import Infra

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("catalog", "approval", "scheduler", "reporting", "console")
READY_TIMEOUT = 180.0
STOP_GRACE = 30.0
PAGE = os.sysconf("SC_PAGE_SIZE")
BENCH_TOKEN = "lg_" + secrets.token_urlsafe(32)
"""The console's bootstrap admin token in a benchmark's own database (dropped afterwards)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_setting(service: str) -> str:
    return (
        "LOCKGATE_CONSOLE_PORT" if service == "console" else f"LOCKGATE_{service.upper()}_HTTP_PORT"
    )


@dataclass
class Running:
    """One service process."""

    service: str
    replica: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def name(self) -> str:
        return self.service if self.replica == 0 else f"{self.service}#{self.replica + 1}"

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class ServiceSet:
    """Service processes of one benchmark, against its infrastructure."""

    infra: Infra
    logs: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    running: list[Running] = field(default_factory=list)

    def start(self, service: str, replicas: int = 1, **env: str) -> list[Running]:
        started = []
        for _ in range(replicas):
            replica = sum(1 for r in self.running if r.service == service)
            port = free_port()
            log = self.logs / f"{service}-{replica + 1}.log"
            environment = self.infra.env(
                LOCKGATE_LOG_LEVEL="warning",
                LOCKGATE_BOOTSTRAP_TOKEN=BENCH_TOKEN,
                **{port_setting(service): str(port)},
                **self.extra_env,
                **env,
            )
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", f"services.{service}"],
                    cwd=ROOT,
                    env=environment,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            running = Running(service, replica, port, process, log)
            self.running.append(running)
            started.append(running)
        return started

    def wait_ready(self, which: Sequence[Running] | None = None) -> float:
        """Seconds until every process (or `which`) answers /readyz with 200."""
        began = time.perf_counter()
        waiting = list(self.running if which is None else which)
        with httpx.Client(timeout=2.0) as client:
            while waiting:
                for running in list(waiting):
                    if running.process.poll() is not None:
                        tail = running.log.read_text(errors="replace")[-3000:]
                        raise RuntimeError(f"{running.name} exited while starting:\n{tail}")
                    try:
                        answer = client.get(f"http://127.0.0.1:{running.port}/readyz")
                    except httpx.HTTPError:
                        continue
                    if answer.status_code == 200:
                        waiting.remove(running)
                if time.perf_counter() - began > READY_TIMEOUT:
                    names = ", ".join(r.name for r in waiting)
                    raise TimeoutError(f"{names} not ready after {READY_TIMEOUT:g} s")
                if waiting:
                    time.sleep(0.25)
        return time.perf_counter() - began

    def stop(self, which: Sequence[Running] | None = None) -> None:
        stopping = list(self.running if which is None else which)
        for running in stopping:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for running in stopping:
            try:
                running.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
            self.running.remove(running)

    def of(self, service: str) -> list[Running]:
        return [r for r in self.running if r.service == service]


@contextmanager
def service_set(infra: Infra, logs: Path, **extra_env: str) -> Iterator[ServiceSet]:
    logs.mkdir(parents=True, exist_ok=True)
    services = ServiceSet(infra, logs, dict(extra_env))
    try:
        yield services
    finally:
        services.stop()


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(child) for child in text]
    except OSError:
        return []
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants (0 once it is gone)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        pending += _children(current)
    return total


class RssWatch:
    """Per service (every replica's process tree): the peak RSS of each phase, and a timeline."""

    def __init__(self, services: ServiceSet, interval: float = 0.2) -> None:
        self._services = services
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)
        self.phase = "start"
        self.peaks: dict[str, dict[str, int]] = {}
        """phase -> process name -> peak bytes."""
        self.timeline: list[tuple[float, str, dict[str, int]]] = []
        self._began = time.perf_counter()
        self._last_kept = 0.0

    def sample(self) -> dict[str, int]:
        return {r.name: tree_rss(r.pid) for r in list(self._services.running)}

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            now = self.sample()
            elapsed = time.perf_counter() - self._began
            with self._lock:
                peaks = self.peaks.setdefault(self.phase, {})
                for name, rss in now.items():
                    peaks[name] = max(peaks.get(name, 0), rss)
                if elapsed - self._last_kept >= 5.0:
                    self.timeline.append((elapsed, self.phase, now))
                    self._last_kept = elapsed

    def enter(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, name: str) -> int:
        """The highest RSS of one process over every phase."""
        return max((peaks.get(name, 0) for peaks in self.peaks.values()), default=0)

    def service_peak(self, service: str) -> int:
        """The highest RSS of any replica of `service` (each replica is its own process)."""
        names = {name for peaks in self.peaks.values() for name in peaks}
        mine = [n for n in names if n == service or n.startswith(f"{service}#")]
        return max((self.peak(n) for n in mine), default=0)

    def timeline_text(self, service: str) -> str:
        lines = [f"RSS of {service} (MiB) every 5 s, by phase"]
        for elapsed, phase, values in self.timeline:
            mine = {k: v for k, v in values.items() if k == service or k.startswith(f"{service}#")}
            shown = ", ".join(f"{k} {v / MIB:.1f}" for k, v in sorted(mine.items()))
            lines.append(f"{elapsed:8.1f} s  {phase:<28} {shown}")
        return "\n".join(lines) + "\n"
