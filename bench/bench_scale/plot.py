"""docs/scaling-*.png: how each figure grows with the fleet, and with replicas.

matplotlib is not a dependency of Lockgate: `make bench` installs it into .venv (as `make
screenshots` does); without it the figures are still saved and the plots are skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
Series = Mapping[str, Sequence[tuple[float, float]]]
"""A line per name: (x, y) points."""


def plot(
    name: str,
    title: str,
    xlabel: str,
    ylabel: str,
    series: Series,
    *,
    log_x: bool = True,
) -> Path | None:
    """One PNG in docs/; None when matplotlib is missing or there is nothing to draw."""
    try:  # optional, installed by make bench; imported by name (no stubs in .venv)
        importlib.import_module("matplotlib").use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        print(f"matplotlib missing: {name} not drawn (make bench installs it)")
        return None
    drawn = {label: sorted(points) for label, points in series.items() if points}
    if not drawn:
        return None
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=100)
    for label, points in drawn.items():
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    if log_x:
        axes.set_xscale("log")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_ylim(bottom=0)
    axes.grid(visible=True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path = DOCS / f"{name}.png"
    figure.savefig(path)
    plt.close(figure)
    return path
