"""python -m bench.summary: the benchmarks' JSON files of one run -> bench/RESULTS.md.

Reads every `bench/results/<benchmark>.json` (written by `bench.common.results.save`) and
rewrites the top of bench/RESULTS.md: one table (measure, value, baseline, ratio, goal, met)
with the run's date, the machine and the versions; every missed goal with a link to its
profile under bench/profiles/; the figures that have no goal. A goal of the issue whose
benchmark left no file in this run is listed as "not measured", never filled in.

Below that, the history of runs, newest first: a full run (`make bench`) adds its table
there; a small run (`--small`, `make bench-small`) only replaces the top, labelled as small,
and leaves the history alone. `--since` (make bench passes the time it started) leaves out
files an earlier run wrote, so a benchmark that failed this time shows as not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common.report import figure, format_table
from bench.common.results import RESULTS_DIR

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RUN_LOG = "run.txt"
"""In the results folder: `<benchmark> <seconds> <exit code>` per line, written by make bench."""
HISTORY_HEADING = "## History of runs (newest first)"
HISTORY_MARK = "<!-- bench/summary.py adds each full run's table below this line -->"
RUN_MARK = "<!-- run {run} -->"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Expected:
    """A goal of issue 19 and the benchmark that measures it."""

    benchmark: str
    measure: str
    goal: str


EXPECTED: tuple[Expected, ...] = (
    Expected("pipeline", "pipeline: consume -> inbox -> handler -> outbox -> publish", ">= 0.8x"),
    Expected("reporting_ingest", "reporting ingest, end to end", ">= 0.8x"),
    Expected("reporting_ingest", "reporting: database time per batch vs raw upsert", ">= 0.8x"),
    Expected("scheduler_timers", "timers fired -> instructions published", ">= 0.8x"),
    Expected("scheduler_timers", "timers vs raw confirmed publish alone", ">= 0.5x"),
    Expected("catalog_import", "MSRC parse vs plain iterparse", "<= 1.5x"),
    Expected("catalog_import", "MSRC import vs parse + no-op RPC", "<= 2x"),
    Expected("approval_scale", "root approval 10k groups / 1M computers: published", "< 2 s"),
    Expected("approval_scale", "root approval: every plan current", "< 60 s"),
    Expected("compliance_latency", "agent event -> compliance visible, p99", "< 250 ms"),
    Expected("memory", "RSS of every service at 1M computers", "< 1 GiB"),
    Expected("scale", "10k / 100k / 1M computers, 1-4 replicas", "(figures and plots)"),
)
"""In the order of the issue's goals table; a benchmark missing from the run keeps its rows."""


@dataclass
class BenchFile:
    """One benchmark's results file, as read."""

    name: str
    path: Path
    data: dict[str, Any]

    @property
    def started(self) -> str:
        return str(self.data.get("started_at", ""))

    @property
    def finished(self) -> str:
        return str(self.data.get("finished_at", ""))

    @property
    def measures(self) -> list[dict[str, Any]]:
        return list(self.data.get("measures", []))


@dataclass
class Run:
    """The files of one run and what was left out of it."""

    files: list[BenchFile]
    stale: list[BenchFile] = field(default_factory=list)
    """Files older than --since: an earlier run's, shown as not measured in this one."""
    small: bool = False
    ran: dict[str, tuple[int, int]] = field(default_factory=dict)
    """From make bench's run.txt: benchmark -> (seconds, exit code), in the order they ran."""

    @property
    def failed(self) -> list[str]:
        return [name for name, (_, code) in self.ran.items() if code != 0]

    @property
    def started(self) -> str:
        return min((f.started for f in self.files if f.started), default="")

    @property
    def finished(self) -> str:
        return max((f.finished for f in self.files if f.finished), default="")

    @property
    def names(self) -> set[str]:
        return {f.name for f in self.files}


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_log(path: Path) -> dict[str, tuple[int, int]]:
    ran: dict[str, tuple[int, int]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit() and parts[2].lstrip("-").isdigit():
                ran[parts[0]] = (int(parts[1]), int(parts[2]))
    return ran


def read_run(
    directory: Path, since: str | None = None, *, small: bool = False, until: str | None = None
) -> Run:
    """Every *.json of `directory`; with `since`, files started before it are set aside, and
    so is the file of a benchmark that failed in this run (make bench's run.txt): another
    run wrote it."""
    files: list[BenchFile] = []
    stale: list[BenchFile] = []
    cutoff = _parse_time(since) if since else None
    end = _parse_time(until) if until else None
    ran = read_log(directory / RUN_LOG) if since else {}
    failed = {name for name, (_, code) in ran.items() if code != 0}
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text())
        found = BenchFile(str(data.get("benchmark", path.stem)), path, data)
        older = not found.started or (cutoff is not None and _parse_time(found.started) < cutoff)
        later = end is not None and found.started != "" and _parse_time(found.started) > end
        if later or (cutoff is not None and (older or found.name in failed)):
            stale.append(found)
        else:
            files.append(found)
    return Run(files, stale, small, ran)


def _ratio(measure: dict[str, Any]) -> str:
    ratio = measure.get("ratio")
    return "" if ratio is None else f"{ratio:.2f}x"


def _baseline(measure: dict[str, Any]) -> str:
    value = measure.get("baseline_value")
    if value is None:
        return ""
    text = figure(float(value), str(measure.get("unit", "")))
    what = measure.get("baseline")
    return f"{text} ({what})" if what else text


def _goal(measure: dict[str, Any]) -> str:
    goal = measure.get("goal")
    if not goal:
        return ""
    if goal.get("text"):
        return str(goal["text"])
    sign = ">=" if goal.get("bound") == "at_least" else "<="
    limit = float(goal.get("limit", 0))
    return f"{sign} {limit:g}x" if goal.get("on") == "ratio" else f"{sign} {limit:g}"


def _profile_link(measure: dict[str, Any], relative_to: Path) -> str:
    """Markdown links to the measure's profiles (one path, or several separated by commas),
    relative to RESULTS.md's folder."""
    profile = measure.get("profile")
    if not profile:
        return "no profile saved"
    links = []
    for path in str(profile).split(","):
        target = (ROOT / path.strip()).resolve()
        try:
            shown = target.relative_to(relative_to)
        except ValueError:
            shown = target
        exists = "" if target.exists() else " (file missing)"
        links.append(f"[{shown}]({shown}){exists}")
    return ", ".join(links)


def _met(measure: dict[str, Any]) -> str:
    met = measure.get("met")
    return "-" if met is None else ("yes" if met else "**NO**")


def _measure_row(measure: dict[str, Any]) -> list[str]:
    return [
        str(measure.get("measure", "?")),
        figure(float(measure.get("value", 0.0)), str(measure.get("unit", ""))),
        _baseline(measure),
        _ratio(measure),
        _goal(measure),
        _met(measure),
    ]


HEADERS = ("measure", "value", "baseline (same run)", "ratio", "goal", "met")


def goal_rows(run: Run) -> list[list[str]]:
    """The top table: every measure with a goal, in the issue's order, and a "not measured"
    row for each expected goal whose benchmark left no file in this run."""
    rows: list[list[str]] = []
    by_name = {f.name: f for f in run.files}
    order = [e.benchmark for e in EXPECTED]
    order += sorted(name for name in by_name if name not in order)
    seen: set[str] = set()
    for name in order:
        if name in seen:
            continue
        seen.add(name)
        found = by_name.get(name)
        if found is None:
            why = f"{NOT_MEASURED} (failed)" if name in run.failed else NOT_MEASURED
            rows += [[e.measure, why, "", "", e.goal, "-"] for e in EXPECTED if e.benchmark == name]
            continue
        with_goal = [m for m in found.measures if m.get("goal")]
        if not with_goal:
            rows.append([f"{name}: (figures below, no goal)", "", "", "", "", "-"])
        rows += [_measure_row(m) for m in with_goal]
    return rows


def other_rows(run: Run) -> list[list[str]]:
    """Figures without a goal, per benchmark."""
    rows: list[list[str]] = []
    for found in sorted(run.files, key=lambda f: f.name):
        for measure in found.measures:
            if not measure.get("goal"):
                row = _measure_row(measure)
                rows.append([row[0], row[1], row[2], row[3]])
    return rows


def misses(run: Run) -> list[str]:
    """One line per missed goal: the figure against the goal, its profile, its note."""
    lines = []
    for found in run.files:
        for measure in found.measures:
            if measure.get("met") is False:
                note = f" {measure['note']}" if measure.get("note") else ""
                lines.append(
                    f"- **{measure.get('measure')}**: "
                    f"{figure(float(measure.get('value', 0.0)), str(measure.get('unit', '')))}"
                    f"{' (' + _ratio(measure) + ')' if _ratio(measure) else ''}, goal "
                    f"{_goal(measure)}. Profile: {_profile_link(measure, BENCH_DIR)}.{note}"
                )
    return lines


def machine_line(run: Run, servers: dict[str, str], commit: str) -> str:
    """Machine and versions, from the files (every distinct value) and the servers."""
    seen: dict[str, list[str]] = {}
    for found in run.files:
        for key, value in dict(found.data.get("machine", {})).items():
            values = seen.setdefault(str(key), [])
            if str(value) not in values:
                values.append(str(value))
    parts = [
        " / ".join(values) if key == "machine" else f"{key} {' / '.join(values)}"
        for key, values in seen.items()
    ]
    parts += [f"{key} {value}" for key, value in servers.items()]
    parts.append(f"code {commit}")
    return "; ".join(parts)


def _span(run: Run) -> str:
    if not run.started:
        return "none in bench/results/ yet (run `make bench`)"
    start, end = _parse_time(run.started), _parse_time(run.finished or run.started)
    minutes = (end - start).total_seconds() / 60
    return f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC ({minutes:.0f} min)"


def run_times(run: Run) -> str:
    """How long each benchmark took: make bench's log, else its file's start and finish."""
    if run.ran:
        total = sum(seconds for seconds, _ in run.ran.values())
        return (
            ", ".join(
                f"{name} {seconds / 60:.1f} min" + ("" if code == 0 else f" (FAILED, exit {code})")
                for name, (seconds, code) in run.ran.items()
            )
            + f"; {total / 60:.0f} min in all"
        )
    parts = []
    for found in sorted(run.files, key=lambda f: f.started):
        if found.started and found.finished:
            seconds = (_parse_time(found.finished) - _parse_time(found.started)).total_seconds()
            parts.append(f"{found.name} {seconds / 60:.1f} min")
    return ", ".join(parts) or "-"


def run_table(run: Run) -> list[str]:
    return format_table(HEADERS, goal_rows(run))


def top_section(run: Run, servers: dict[str, str], commit: str) -> list[str]:
    kind = (
        "**SMALL RUN** (`make bench-small`: every benchmark with `--small`, to check the "
        "harness; these are NOT the issue's figures, see the history for the last full run)"
        if run.small
        else "full run (`make bench`)"
    )
    lines = [
        "# Benchmark results",
        "",
        "<!-- The part above the history is written by `python -m bench.summary` (run last by",
        "     `make bench`) from bench/results/*.json; edit bench/summary.py, not this text. -->",
        "",
        f"- **Run:** {_span(run)}, {kind}",
        f"- **Machine:** {machine_line(run, servers, commit)}",
        f"- **Run times:** {run_times(run)}",
        (
            "- **Raw figures:** [results/](results/), one JSON file per benchmark (every measure,"
            " its baseline, goal, parameters and machine)"
        ),
        "",
        *run_table(run),
        "",
    ]
    if run.stale:
        lines.append(
            "Left out, written by another run (older than this one, or the benchmark failed in"
            " this one): " + ", ".join(f"`{f.path.name}` ({f.started})" for f in run.stale) + "."
        )
        lines.append("")
    missed = misses(run)
    lines += ["## Missed goals and their profiles", ""]
    lines += missed or ["None: every goal measured in this run was met."]
    if missed and (BENCH_DIR / WHY).exists():
        lines += [
            "",
            (
                "Where each missed goal's time goes, read from these profiles, and what would"
                f" close it: [{WHY}]({WHY}) (written by hand; it names the run it was read from)."
            ),
        ]
    lines.append("")
    others = other_rows(run)
    if others:
        lines += ["## Other figures of this run (no goal)", ""]
        lines += format_table(("measure", "value", "baseline (same run)", "ratio"), others)
        lines.append("")
    lines += RUNNING
    return lines


WHY = "WHY.md"
"""The hand-written reading of the missed goals' profiles, beside RESULTS.md."""

RUNNING = [
    "## Running the benchmarks",
    "",
    (
        "- `make bench`: every benchmark at the issue's sizes, then `python -m bench.summary`,"
        " which writes this file (about 40 minutes on the 2-core machine; the Makefile says the"
        " expected time). `make bench-small`: the same with `--small` (a few minutes); it"
        " replaces only the top of this file, labelled as a small run."
    ),
    (
        "- Each benchmark alone: `.venv/bin/python -m bench.bench_<name> [--small]`; each ends with"
        " `bench.common.results.save(...)` (bench/common/results.py), which writes"
        " `bench/results/<name>.json`. A missed goal names its profile under bench/profiles/."
    ),
    (
        "- What each measures: the docstring of `bench/bench_<name>/__init__.py`. What they share:"
        " bench/common/ (vhost and database per run, meters, baselines doing the same work by hand"
        " in the same run, tracing)."
    ),
    "",
]


def history_entry(run: Run) -> list[str]:
    start = _parse_time(run.started) if run.started else datetime.now(UTC)
    return [
        RUN_MARK.format(run=start.isoformat(timespec="seconds")),
        f"### {start:%Y-%m-%d %H:%M} UTC: `make bench`, {_span(run).split('(')[-1].rstrip(')')}",
        "",
        *run_table(run),
        "",
    ]


def split_history(text: str) -> list[str]:
    """The history lines of an existing RESULTS.md (after its mark), or none."""
    lines = text.splitlines()
    if HISTORY_MARK not in lines:
        return []
    return lines[lines.index(HISTORY_MARK) + 1 :]


def add_entry(history: list[str], entry: list[str]) -> list[str]:
    """The entry first; an entry of the same run already there is replaced."""
    mark = entry[0]
    if mark in history:
        start = history.index(mark)
        end = next(
            (
                i
                for i in range(start + 2, len(history))
                if history[i].startswith("<!-- run ") or history[i].startswith("### ")
            ),
            len(history),
        )
        history = history[:start] + history[end:]
    while history and not history[0].strip():
        history = history[1:]
    return [*entry, *history]


def render(run: Run, previous: str, servers: dict[str, str], commit: str) -> str:
    history = split_history(previous)
    if not run.small and run.files:
        history = add_entry(history, history_entry(run))
    lines = [*top_section(run, servers, commit), HISTORY_HEADING, "", HISTORY_MARK, *history]
    return "\n".join(lines).rstrip() + "\n"


def code_version() -> str:
    """The commit measured, and whether the tree had changes outside bench/."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "libs", "services"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"`{commit}`" + (" + uncommitted changes in libs/ or services/" if dirty else "")


async def _server_versions() -> dict[str, str]:
    import aio_pika  # noqa: PLC0415 - only when the servers are asked
    import asyncpg  # noqa: PLC0415

    from libs.settings import Settings  # noqa: PLC0415

    settings = Settings()
    found = {}
    try:
        conn = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
        try:
            found["PostgreSQL"] = str(await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()
    except Exception:  # noqa: BLE001 - a version not found is only not shown
        found["PostgreSQL"] = "?"
    try:
        connection = await aio_pika.connect(settings.amqp_url)
        try:
            transport = connection.transport
            version = (
                "?" if transport is None else transport.connection.server_properties["version"]
            )
            found["RabbitMQ"] = version.decode() if isinstance(version, bytes) else str(version)
        finally:
            await connection.close()
    except Exception:  # noqa: BLE001
        found["RabbitMQ"] = "?"
    return found


def server_versions() -> dict[str, str]:
    try:
        return asyncio.run(asyncio.wait_for(_server_versions(), timeout=10))
    except Exception:  # noqa: BLE001 - servers down: versions unknown
        return {"PostgreSQL": "?", "RabbitMQ": "?"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--since", help="leave out files started before this ISO time")
    parser.add_argument("--until", help="leave out files started after this ISO time")
    parser.add_argument("--small", action="store_true", help="label the run as a small one")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="JSON files' folder")
    parser.add_argument("--output", type=Path, default=RESULTS_MD, help="file to write")
    parser.add_argument(
        "--code",
        help="what code was measured, when not the checkout's HEAD (e.g. benchmarks run from a "
        "clean clone of another commit)",
    )
    args = parser.parse_args(argv)
    run = read_run(args.results, args.since, small=args.small, until=args.until)
    previous = args.output.read_text() if args.output.exists() else ""
    text = render(run, previous, server_versions(), args.code or code_version())
    args.output.write_text(text)
    measured = sum(len(f.measures) for f in run.files)
    print(f"{args.output}: {len(run.files)} benchmarks, {measured} measures", end="")
    print(f", {len(run.stale)} older files left out" if run.stale else "")
    print("\n".join(run_table(run)))


if __name__ == "__main__":
    main()
