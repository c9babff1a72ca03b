"""Render Lockgate's Grafana dashboards to PNG from a real run, without Grafana.

With the system running (`make run`: services, demo estate, 1,000 simulated computers),
this starts a private Prometheus (Debian's `prometheus` package) scraping every service
every 5 s with Lockgate's alert rules, waits, then asks it for every panel's expressions
(query_range, the same PromQL as deploy/grafana/*.json, from libs/observability/dashboards.py)
and draws each dashboard in its Grafana layout with matplotlib:

    make screenshots            # or: .venv/bin/python scripts/render_dashboards.py --minutes 8

Output: docs/dashboards/<dashboard>.png.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from libs.observability.dashboards import DASHBOARDS, Dashboard, Panel, layout  # noqa: E402
from libs.settings import SERVICE_NAMES, Settings  # noqa: E402

PROMETHEUS_PORT = 9099
SCRAPE_SECONDS = 5
UNIT_FORMAT = {
    "percentunit": lambda v: f"{v:.1%}",
    "s": lambda v: f"{v:.2f} s",
    "bytes": lambda v: f"{v / 1024**2:.1f} MiB",
    "ops": lambda v: f"{v:.2f}/s",
}


def prometheus_config(directory: Path, settings: Settings) -> Path:
    jobs = [(name, settings.http_port(name)) for name in SERVICE_NAMES]
    jobs.append(("console", settings.console_port))
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": "15s"},
        "rule_files": [str(ROOT / "deploy" / "prometheus" / "rules" / "*.yml")],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for name, port in jobs
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def query_range(expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode(
        {"query": expr, "start": start, "end": end, "step": SCRAPE_SECONDS * 3}
    )
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query_range?{params}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text or ", ".join(f"{k}={v}" for k, v in labels.items()) or "value"


def fmt(unit: str, value: float) -> str:
    if math.isnan(value):
        return "no data"
    if unit in UNIT_FORMAT:
        return UNIT_FORMAT[unit](value)
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2f}"


def draw_panel(ax: Axes, panel: Panel, start: float, end: float) -> None:
    ax.set_title(panel.title, fontsize=9, loc="left")
    series: list[tuple[str, list[float], list[float]]] = []
    for query in panel.queries:
        for result in query_range(query.expr, start, end):
            times = [(float(t) - end) / 60 for t, _ in result["values"]]
            values = [float(v) for _, v in result["values"]]
            series.append((legend(query.legend, result["metric"]), times, values))
    if not series:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", color="grey")
        ax.set_axis_off()
        return
    if panel.kind == "stat":
        ax.set_axis_off()
        text = "\n".join(
            (f"{name}: " if len(series) > 1 else "") + fmt(panel.unit, values[-1])
            for name, _, values in series[:6]
        )
        ax.text(0.5, 0.4, text, ha="center", va="center", fontsize=18 if len(series) == 1 else 10)
        return
    if panel.kind == "bargauge":
        ordered = sorted(series, key=lambda s: s[2][-1])[:10]
        ax.barh([s[0] for s in ordered], [s[2][-1] for s in ordered], color="tab:green")
        ax.tick_params(labelsize=7)
        if panel.unit == "percentunit":
            ax.set_xlim(0, 1)
        return
    for name, times, values in sorted(series, key=lambda s: s[0])[:14]:
        ax.plot(times, values, label=name, linewidth=1.2)
    ax.set_xlabel("minutes", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", ncol=2 if len(series) > 6 else 1)


def draw(dashboard: Dashboard, start: float, end: float, out: Path) -> Path:
    placed = layout(dashboard.panels)
    rows = max(pos["y"] + pos["h"] for _, pos in placed)
    figure = plt.figure(figsize=(20, rows * 0.42))
    grid = figure.add_gridspec(rows, 24, hspace=1.2, wspace=1.5)
    for panel, pos in placed:
        ax = figure.add_subplot(
            grid[pos["y"] : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]]
        )
        draw_panel(ax, panel, start, end)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    figure.suptitle(
        f"{dashboard.title}  (rendered from Prometheus, {stamp}, last {(end - start) / 60:.0f}"
        " min of a simulated fleet)",
        fontsize=12,
        x=0.01,
        ha="left",
    )
    path = out / f"{dashboard.filename.removesuffix('.json')}.png"
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--minutes", type=float, default=8.0, help="how long to scrape first")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboards")
    args = parser.parse_args()
    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("prometheus not found: `make test-packages` installs Debian's prometheus")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        config = prometheus_config(Path(directory), Settings())
        server = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory}/data",
                f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            start = time.time()
            print(f"scraping for {args.minutes:g} min ...", flush=True)
            time.sleep(args.minutes * 60)
            end = time.time()
            for dashboard in DASHBOARDS:
                print(draw(dashboard, start, end, args.out), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
