"""What each fault test saw, gathered into docs/RELIABILITY.md by the suite itself.

A fault test counts what it sent and what took effect, then calls `record(...)` (and asserts
the zeros itself). Each result is kept as `var/reliability/<slug>.json`; at the end of the
session `write_report()` rewrites docs/RELIABILITY.md from every result found there, so a
run of the whole suite on a clean clone produces the whole table.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "var" / "reliability"
REPORT = ROOT / "docs" / "RELIABILITY.md"


@dataclass(frozen=True)
class FaultResult:
    """One fault injected into a running system, and what came of the messages sent."""

    fault: str
    """What was done, e.g. 'kill -9 scheduler mid-stream'."""
    workload: str
    """What flowed meanwhile, e.g. '10,000 agent reports, 1,000 approval changes'."""
    sent: int
    """Messages (or operations) sent that must each have exactly one effect."""
    effects: int
    """Effects found afterwards (rows, counts, events), counted once per sent message."""
    lost: int
    duplicated: int
    dead_lettered: int
    recover_seconds: float | None
    """From the fault's end (process back, node back, standby promoted) to service resumed."""
    test: str
    """The test that measured it (file::name)."""
    note: str = ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


_recorded: list[str] = []
"""Faults recorded by this process: a session that ran none leaves the report alone."""


def record(result: FaultResult) -> None:
    """Keep one result for the report (the newest per fault wins)."""
    _recorded.append(result.fault)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{_slug(result.fault)}.json").write_text(
        json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8"
    )


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _cell(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return f"{value:,}"


def write_report() -> Path | None:
    """Rewrite docs/RELIABILITY.md from the results on disk, when this session ran a fault
    test (a session without one, such as `make test`'s first run or a single test, would
    only restamp it); None when it did not or there are no results."""
    files = sorted(RESULTS.glob("*.json")) if RESULTS.exists() else []
    if not _recorded or not files:
        return None
    results = [FaultResult(**json.loads(path.read_text(encoding="utf-8"))) for path in files]
    lines = [
        "# Reliability: faults injected by the test suite, and what came of them",
        "",
        "Written by the test suite itself (`tests/support/faults.py`, at the end of `make test`);",
        "do not edit by hand. Each row is one fault test: it ran a workload against real",
        "RabbitMQ and PostgreSQL processes, injected the fault, waited for the system to",
        "recover by itself, then counted effects against what it sent. Lost, duplicated and",
        "dead-lettered must be zero, and the test fails otherwise. Time to recover runs from",
        "the end of the fault (process restarted, node back, standby promoted) to the first",
        "effect after it.",
        "",
        (
            f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{_commit()}`, "
            f"{platform.node() or 'this machine'} (Python {platform.python_version()})."
        ),
        "",
        (
            "| fault | workload | sent | effects | lost | duplicated | dead-lettered "
            "| recover (s) | test |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines.extend(
        f"| {r.fault} | {r.workload} | {_cell(r.sent)} | {_cell(r.effects)} "
        f"| {_cell(r.lost)} | {_cell(r.duplicated)} | {_cell(r.dead_lettered)} "
        f"| {_cell(r.recover_seconds)} | `{r.test}` |"
        for r in results
    )
    notes = [f"- **{r.fault}:** {r.note}" for r in results if r.note]
    if notes:
        lines += ["", "## Notes", "", *notes]
    REPORT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return REPORT
