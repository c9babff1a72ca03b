"""bench/summary.py: the results table from the benchmarks' JSON files, and its history."""

from __future__ import annotations

import json
from pathlib import Path

from bench import summary
from bench.common.report import figure
from bench.common.results import Goal, Measure


def write(directory: Path, name: str, measures: list[Measure], started: str) -> None:
    data = {
        "benchmark": name,
        "started_at": started,
        "finished_at": started.replace(":00+", ":30+"),
        "parameters": {},
        "machine": {"machine": "x86_64, 2 cores", "python": "3.11.7"},
        "measures": [m.as_json() for m in measures],
    }
    (directory / f"{name}.json").write_text(json.dumps(data))


PIPELINE = Measure(
    "pipeline: msg/s",
    1500.0,
    "msg/s",
    Goal("ratio", "at_least", 0.8, ">= 0.8x"),
    "raw consume + write + publish",
    2000.0,
    profile="bench/profiles/pipeline.svg",
)


def test_a_benchmark_without_a_file_is_not_measured(tmp_path: Path) -> None:
    write(tmp_path, "pipeline", [PIPELINE], "2026-12-06T11:00:00+00:00")
    rows = summary.goal_rows(summary.read_run(tmp_path))
    assert rows[0][:6] == [
        "pipeline: msg/s",
        "1,500 msg/s",
        "2,000 msg/s (raw consume + write + publish)",
        "0.75x",
        ">= 0.8x",
        "**NO**",
    ]
    memory = [row for row in rows if "1 GiB" in row[4]]
    assert memory == [
        ["RSS of every service at 1M computers", "not measured", "", "", "< 1 GiB", "-"]
    ]


def test_files_older_than_the_run_are_left_out(tmp_path: Path) -> None:
    write(tmp_path, "pipeline", [PIPELINE], "2026-12-06T09:00:00+00:00")
    run = summary.read_run(tmp_path, "2026-12-06T10:00:00Z")
    assert run.files == []
    assert [f.name for f in run.stale] == ["pipeline"]
    assert summary.goal_rows(run)[0][1] == "not measured"


def test_a_miss_links_its_profile_relative_to_results_md(tmp_path: Path) -> None:
    write(tmp_path, "pipeline", [PIPELINE], "2026-12-06T11:00:00+00:00")
    (line,) = summary.misses(summary.read_run(tmp_path))
    assert "[profiles/pipeline.svg](profiles/pipeline.svg)" in line


def test_a_full_run_is_added_to_the_history_once_and_a_small_one_never(tmp_path: Path) -> None:
    old = f"top\n{summary.HISTORY_HEADING}\n\n{summary.HISTORY_MARK}\n<!-- run old -->\n### old\n"
    write(tmp_path, "pipeline", [PIPELINE], "2026-12-06T11:00:00+00:00")
    full = summary.read_run(tmp_path)
    once = summary.render(full, old, {}, "abc")
    twice = summary.render(full, once, {}, "abc")
    assert once == twice
    history = summary.split_history(twice)
    assert history[0] == "<!-- run 2026-12-06T11:00:00+00:00 -->"
    assert history.count("### old") == 1
    small = summary.render(summary.read_run(tmp_path, small=True), old, {}, "abc")
    assert "SMALL RUN" in small
    assert summary.split_history(small) == summary.split_history(old)


def test_figures_keep_three_significant_digits() -> None:
    assert figure(1234.5, "msg/s") == "1,234 msg/s"
    assert figure(0.04567, "s") == "0.0457 s"
    assert figure(12.345, "ms") == "12.3 ms"
    assert figure(0.75, "x") == "0.75x"


def test_a_benchmark_that_failed_in_the_run_is_not_measured_whoever_wrote_its_file(
    tmp_path: Path,
) -> None:
    """Another run may write pipeline.json while this one's pipeline fails: it is left out."""
    write(tmp_path, "pipeline", [PIPELINE], "2026-12-06T11:00:00+00:00")
    (tmp_path / "run.txt").write_text("pipeline 62 1\ncatalog_import 45 0\n")
    run = summary.read_run(tmp_path, "2026-12-06T10:00:00Z")
    assert [f.name for f in run.stale] == ["pipeline"]
    assert summary.goal_rows(run)[0][1] == "not measured (failed)"
    assert "pipeline 1.0 min (FAILED, exit 1)" in summary.run_times(run)
