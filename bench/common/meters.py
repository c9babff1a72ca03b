"""What a phase cost: CPU of this process, of the servers and of the machine; memory; metrics."""

from __future__ import annotations

import gc
import os
import resource
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from prometheus_client.metrics import MetricWrapperBase

MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

THIS_PROCESS = "bench process"
PG_THIS_DB = "pg: this db"
PG_OTHER = "pg: other"
RABBITMQ = "rabbitmq"
REST = "rest of machine"
COMPONENTS = (THIS_PROCESS, PG_THIS_DB, PG_OTHER, RABBITMQ, REST)
"""Where CPU went: this process (services and client run in it), the PostgreSQL backends of
the benchmark's database, every other PostgreSQL process (WAL writer, checkpointer, other
databases), RabbitMQ's beam.smp, and the rest (other tenants, the kernel, short-lived
processes: the machine's busy time minus the named processes)."""


def cpu_seconds() -> float:
    """User + system CPU time this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, all cores, from /proc/stat."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def busy_since(before: tuple[int, int]) -> float:
    """Share of all the machine's cores busy since `before` (a machine_ticks() reading)."""
    busy, total = machine_ticks()
    return (busy - before[0]) / max(1, total - before[1])


def _component(pid: int, me: int, database: str) -> str | None:
    if pid == me:
        return THIS_PROCESS
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        if comm == "beam.smp":
            return RABBITMQ
        if comm != "postgres":
            return None
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return PG_THIS_DB if f" {database} " in f" {title} " else PG_OTHER


def _process_ticks(database: str) -> dict[int, tuple[str, int]]:
    """Per process we name: its component and CPU ticks (user + system) so far."""
    found: dict[int, tuple[str, int]] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        component = _component(int(entry.name), me, database)
        if component is None:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (component, int(fields[11]) + int(fields[12]))  # utime, stime
    return found


@dataclass(frozen=True)
class CpuUsage:
    """CPU during a phase."""

    wall: float
    cpu: float
    """This process, user + system (getrusage)."""
    busy: float
    """Share of all cores busy, everything included (/proc/stat)."""
    parts: dict[str, float]
    """Core-seconds per COMPONENTS entry (/proc/<pid>/stat)."""

    @property
    def postgres(self) -> float:
        return self.parts[PG_THIS_DB] + self.parts[PG_OTHER]


class CpuMeter:
    """Measures CPU from its creation (or restart()) to stop()."""

    def __init__(self, database: str) -> None:
        self._database = database
        self.restart()

    def restart(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = cpu_seconds()
        self._machine = machine_ticks()
        self._processes = _process_ticks(self._database)

    def stop(self) -> CpuUsage:
        wall, cpu = time.perf_counter() - self._wall, cpu_seconds() - self._cpu
        busy_ticks, total_ticks = machine_ticks()
        busy = busy_ticks - self._machine[0]
        parts = dict.fromkeys(COMPONENTS, 0.0)
        named = 0
        for pid, (component, ticks) in _process_ticks(self._database).items():
            start = self._processes.get(pid)
            delta = ticks - (start[1] if start is not None and start[0] == component else 0)
            parts[component] += delta / CLOCK_TICKS
            named += delta
        parts[REST] = max(busy - named, 0) / CLOCK_TICKS
        return CpuUsage(wall, cpu, busy / max(1, total_ticks - self._machine[1]), parts)


class RssSampler:
    """Resident set size of this process while the block runs: at its start and its peak.

    A thread reads /proc/self/statm every `interval` seconds: ru_maxrss only ever grows over
    the process, and tracemalloc slows the code it measures.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self._interval = interval
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.start = 0
        self.peak = 0

    def current(self) -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self.current())

    def __enter__(self) -> RssSampler:
        gc.collect()
        self.start = self.peak = self.current()
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
        self.peak = max(self.peak, self.current())


def counter_value(metric: MetricWrapperBase, **labels: str) -> float:
    """Sum of a counter's `_total` samples whose labels include `labels`, read from that one
    metric (a registry-wide collect also reads /proc and the gc stats, costly when polled)."""
    return sum(
        float(sample.value)
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
        and all(sample.labels.get(name) == value for name, value in labels.items())
    )


def histogram_buckets(metric: MetricWrapperBase) -> dict[float, float]:
    """A histogram's cumulative bucket counts (`le` -> count), summed over its labels."""
    found: dict[float, float] = defaultdict(float)
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                found[float(sample.labels["le"])] += sample.value
    return dict(found)
