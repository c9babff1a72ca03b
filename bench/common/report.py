"""How the benchmarks print: aligned tables, the environment block, profiles, goals."""

from __future__ import annotations

import cProfile
import io
import pstats
import re
from collections.abc import Mapping, Sequence

SITE_PACKAGES = re.compile(r"\S*/site-packages/")


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = ""
) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    widths = [len(header) for header in headers]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {list(row)} has {len(row)} cells for {len(headers)} columns")
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        aligned = [cells[0].ljust(widths[0])]
        aligned += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return f"{indent}| " + " | ".join(aligned) + " |"

    rule = f"{indent}|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return [line(headers), rule, *(line(row) for row in rows)]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "") -> None:
    for text in format_table(headers, rows, indent=indent):
        print(text)


def print_environment(env: Mapping[str, str]) -> None:
    for name, value in env.items():
        print(f"{name:>12}: {value}")


def goal(name: str, met: bool, detail: str) -> str:
    """One line saying whether a goal of the issue was met, and by what figure."""
    return f"goal {name}: {'met' if met else 'NOT met'} ({detail})"


def profile_text(profiler: cProfile.Profile, *, own: int = 30, cumulative: int = 40) -> str:
    """The top functions by own time, then by cumulative time, site-packages paths shortened."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    if own:
        stats.sort_stats("tottime").print_stats(own)
    if cumulative:
        stats.sort_stats("cumulative").print_stats(cumulative)
    return SITE_PACKAGES.sub("", out.getvalue())


def figure(value: float, unit: str = "") -> str:
    """A figure for a summary table: three significant digits, thousands separated."""
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1 or magnitude == 0:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip() if unit not in ("x", "%") else f"{text}{unit}"
