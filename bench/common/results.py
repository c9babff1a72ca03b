"""What every benchmark hands to bench/RESULTS.md: its measures as JSON, one file per benchmark.

A benchmark builds `Measure`s (a figure, the raw baseline it is compared with, measured in
the same run, and the goal of the issue it answers) and calls `save(name, measures, ...)`,
which writes `bench/results/<name>.json`. `python -m bench.summary` (run last by `make
bench`) reads every file of one run and writes the table at the top of bench/RESULTS.md.

A goal is one of:
- `at_least` / `at_most` on `ratio` (value / baseline_value), e.g. pipeline >= 0.8x raw;
- `at_least` / `at_most` on `value` itself when there is no baseline (e.g. p99 < 250 ms:
  `Goal("value", "at_most", 0.25)`; "<" and "<=" are not told apart at this precision).
A measure that misses its goal names a profile (a file under bench/profiles/, SVG or text)
saying where the time went.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Literal

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"


@dataclass(frozen=True)
class Goal:
    """What the issue asks of a measure."""

    on: Literal["ratio", "value"]
    """Whether the bound applies to value / baseline_value, or to the value itself."""
    bound: Literal["at_least", "at_most"]
    limit: float
    text: str = ""
    """How the goal reads in the table, e.g. `>= 0.8x` or `< 2 s`; made from the rest if empty."""

    def describe(self) -> str:
        if self.text:
            return self.text
        sign = ">=" if self.bound == "at_least" else "<="
        return f"{sign} {self.limit:g}x" if self.on == "ratio" else f"{sign} {self.limit:g}"

    def met(self, value: float, baseline_value: float | None) -> bool:
        if self.on == "ratio":
            if not baseline_value:
                return False
            figure = value / baseline_value
        else:
            figure = value
        return figure >= self.limit if self.bound == "at_least" else figure <= self.limit


@dataclass(frozen=True)
class Measure:
    """One figure of a benchmark, beside its baseline and goal."""

    measure: str
    """What is measured, e.g. `pipeline: messages/s end to end`."""
    value: float
    unit: str
    """`msg/s`, `s`, `ms`, `MiB`, `x` ..."""
    goal: Goal | None = None
    baseline: str | None = None
    """What the baseline is, in a few words (e.g. `raw aio-pika consume + 1 row + publish`)."""
    baseline_value: float | None = None
    higher_is_better: bool = True
    profile: str | None = None
    """Path (relative to the repository) of the profile kept for a missed goal."""
    note: str = ""
    """One line: how it was measured, or why a goal is missed."""

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        assert self.baseline_value is not None
        return self.value / self.baseline_value

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.value, self.baseline_value)

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data


@dataclass
class Run:
    """One benchmark's results file."""

    benchmark: str
    measures: list[Measure]
    parameters: dict[str, object] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""


def machine() -> dict[str, str]:
    """The machine and versions the figures were measured on."""
    cpus = os.cpu_count() or 0
    found = {
        "machine": f"{platform.machine()}, {cpus} cores",
        "python": sys.version.split()[0],
    }
    for package in ("aio-pika", "asyncpg", "pydantic"):
        try:
            found[package] = version(package)
        except Exception:  # noqa: BLE001 - a missing package is only not reported
            found[package] = "?"
    return found


def save(
    benchmark: str,
    measures: list[Measure],
    *,
    parameters: dict[str, object] | None = None,
    started_at: datetime | None = None,
) -> Path:
    """Write bench/results/<benchmark>.json (replacing the previous run's) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    data = {
        "benchmark": benchmark,
        "started_at": (started_at or now).isoformat(timespec="seconds"),
        "finished_at": now.isoformat(timespec="seconds"),
        "parameters": parameters or {},
        "machine": machine(),
        "measures": [m.as_json() for m in measures],
    }
    path = RESULTS_DIR / f"{benchmark}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    for m in measures:
        ratio = f" ({m.ratio:.2f}x {m.baseline})" if m.ratio is not None else ""
        verdict = "" if m.met is None else (" met" if m.met else " NOT met")
        goal = f" goal {m.goal.describe()}{verdict}" if m.goal else ""
        print(f"{benchmark}: {m.measure}: {m.value:.4g} {m.unit}{ratio}{goal}")
    return path
