"""The benchmarks' shared pure helpers: statistics, tables, mirror tables, trace breakdowns."""

from __future__ import annotations

import pytest

from bench.common.baselines import mirror_outbox, mirror_table
from bench.common.report import format_table
from bench.common.stats import bucket_percentile, covered, percentile
from bench.common.tracing import INTROSPECTION, SQL, Span, Trace, short
from libs.db.outbox import RELAY_PUBLISH
from libs.service import pipeline


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]  # 1 .. 100, shuffled below
    shuffled = samples[50:] + samples[:50]
    assert percentile(shuffled, 50) == 50.0
    assert percentile(shuffled, 95) == 95.0
    assert percentile(shuffled, 99) == 99.0
    assert percentile(shuffled, 100) == 100.0
    assert percentile(shuffled, 0) == 1.0


def test_percentile_of_few_samples() -> None:
    """p99 of 5 samples is the largest; p50 of 4 is the second."""
    assert percentile([3.0, 1.0, 2.0, 5.0, 4.0], 99) == 5.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([7.0], 95) == 7.0


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_bucket_percentile_counts_only_the_new_observations() -> None:
    before = {0.05: 10.0, 0.25: 10.0, 1.0: 10.0, float("inf"): 10.0}
    after = {0.05: 60.0, 0.25: 108.0, 1.0: 110.0, float("inf"): 110.0}  # 50, 48, 2 new
    assert bucket_percentile(before, after, 50) == 0.05
    assert bucket_percentile(before, after, 95) == 0.25
    assert bucket_percentile(before, after, 99) == 1.0
    assert bucket_percentile(after, after, 99) == float("inf")


def test_covered_counts_overlaps_once() -> None:
    assert covered([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.7)]) == pytest.approx(4.0)
    assert covered([]) == 0.0


def test_table_aligns_columns_to_the_widest_cell() -> None:
    lines = format_table(["phase", "s"], [["raw", "1.50"], ["lockgate", "12.25"]])
    assert lines == [
        "| phase    |     s |",
        "|----------|-------|",
        "| raw      |  1.50 |",
        "| lockgate | 12.25 |",
    ]


def test_table_indent_and_header_wider_than_cells() -> None:
    lines = format_table(["what", "calls"], [["x", "3"]], indent="  ")
    assert lines == ["  | what | calls |", "  |------|-------|", "  | x    |     3 |"]


def test_table_refuses_a_row_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="has 1 cells for 2 columns"):
        format_table(["a", "b"], [["only one"]])


def test_mirror_tables_are_made_like_the_service_tables() -> None:
    """Baseline tables follow the migrations (no hand-copied columns that can drift)."""
    assert mirror_table("reporting.computer_updates", "bench_raw.computer_updates") == (
        "CREATE TABLE bench_raw.computer_updates (LIKE reporting.computer_updates INCLUDING ALL);"
    )
    ddl = mirror_outbox("approval.outbox", "bench.events")
    assert ddl.startswith("CREATE TABLE bench.events (LIKE approval.outbox INCLUDING ALL);")
    assert "ALTER seq SET DEFAULT nextval('bench.events_seq')" in ddl


def test_short_flattens_and_cuts_sql() -> None:
    assert short("SELECT a,\n       b\n  FROM t") == "SELECT a, b FROM t"
    assert short("SELECT " + "x" * 100, width=20) == "SELECT xxxxxxxxxx..."


def test_breakdown_nests_the_handler_and_its_statements_in_the_pipeline_steps() -> None:
    trace = Trace()
    handler = "handler commands/approve"
    trace.spans += [
        Span(pipeline.STEP_PROCESS, 1.0, 0.100),
        Span(pipeline.STEP_DECODE, 1.0, 0.005),
        Span(pipeline.STEP_TRANSACTION, 1.01, 0.080),
        Span(pipeline.STEP_CLAIM, 1.01, 0.002),
        Span(handler, 1.02, 0.060),
        Span(SQL + "INSERT INTO outbox", 1.03, 0.020, scope=handler),
        Span(SQL + "SELECT groups", 1.04, 0.010, scope=handler),
        Span(SQL + "SELECT groups", 1.05, 0.010, scope=handler),
        Span(SQL + "SELECT elsewhere", 1.05, 0.5, scope="task other"),
        Span(pipeline.STEP_STORE_REPLY, 1.08, 0.003),
        Span(pipeline.STEP_REPLY, 1.09, 0.004),
        Span(pipeline.STEP_ACK, 1.095, 0.001),
        Span(RELAY_PUBLISH, 1.2, 0.3),
        Span(pipeline.STEP_PROCESS, 0.5, 9.0),  # before `since`: left out
    ]
    rows = {
        name: (calls, round(seconds, 6))
        for name, calls, seconds in trace.breakdown(handler, since=0.9)
    }
    assert list(rows) == [
        "process",
        "  decode",
        "  transaction",
        "    inbox.claim",
        "    handler commands/approve",
        "      sql INSERT INTO outbox",
        "      sql SELECT groups",
        "      (rest: not SQL)",
        "    inbox.store_reply",
        "    (rest: pool acquire, BEGIN, COMMIT)",
        "  reply",
        "  ack",
        "  (rest)",
        "relay.publish (concurrent)",
    ]
    assert rows["      sql SELECT groups"] == (2, 0.02)
    assert rows["      (rest: not SQL)"] == (0, 0.02)
    assert rows["    (rest: pool acquire, BEGIN, COMMIT)"] == (0, 0.015)
    assert rows["  (rest)"] == (0, 0.01)


def test_breakdown_of_a_task_has_no_pipeline_steps() -> None:
    """asyncpg's type lookups happen inside another statement: shown, not counted twice."""
    trace = Trace()
    trace.spans += [
        Span("task timers", 0.0, 2.0),
        Span(SQL + "SELECT due", 0.1, 0.5, scope="task timers"),
        Span(INTROSPECTION, 0.2, 0.25, scope="task timers"),
    ]
    assert trace.breakdown("task timers") == [
        ("task timers", 1, 2.0),
        ("  sql SELECT due", 1, 0.5),
        (f"  {INTROSPECTION}", 1, 0.25),
        ("  (rest: not SQL)", 0, 1.5),
    ]
