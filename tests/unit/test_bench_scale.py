"""bench/bench_scale and bench/bench_memory: the pure parts (rates from samples, RSS reading)."""

from __future__ import annotations

import os

from bench.bench_memory.processes import tree_rss
from bench.bench_scale.rates import window_rate


def test_the_rate_leaves_out_start_up_and_the_tail() -> None:
    """10 s of start-up with nothing done, then 100 items/s: the window sees only the 100/s."""
    samples = [(float(t), 0) for t in range(11)]
    samples += [(10.0 + t, 100 * t) for t in range(1, 11)]
    assert window_rate(samples, 1000) == 100.0


def test_a_run_done_between_two_samples_is_not_a_division_by_zero() -> None:
    assert window_rate([(0.0, 0), (0.5, 40)], 40) == 80.0


def test_the_rss_of_this_process_is_read_and_a_gone_one_is_zero() -> None:
    assert tree_rss(os.getpid()) > 1024 * 1024
    assert tree_rss(2**22 + 12345) == 0
