"""Figures from samples: percentiles, histogram buckets, time covered by overlapping intervals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least p% of them at or below it."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def bucket_percentile(
    before: Mapping[float, float], after: Mapping[float, float], p: float
) -> float:
    """Upper bound of the histogram bucket holding percentile p of the observations made
    between two readings of its cumulative bucket counts (`le` -> count)."""
    bounds = sorted(after)
    counts = [after[bound] - before.get(bound, 0.0) for bound in bounds]
    total = counts[-1] if counts else 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if total and count >= p / 100 * total:
            return bound
    return float("inf")


def covered(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds during which at least one of the (start, end) intervals was open."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total
