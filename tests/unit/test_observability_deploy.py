"""Alert rules, their promtool unit tests, the dashboards' PromQL and the Prometheus config.

promtool comes from Debian's `prometheus` package (`make test-packages` installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from prometheus_client import REGISTRY

import libs.observability.metrics  # noqa: F401 - registers every Lockgate metric
from libs.observability import dashboards

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "lockgate.yml"
RULE_TESTS = PROMETHEUS / "tests" / "lockgate_test.yml"
GRAFANA = ROOT / "deploy" / "grafana"

METRIC = re.compile(r"\b(lockgate_[a-z_]+|rabbitmq_[a-z_]+|up)\b(?=\s*(?:\{|\[|\)|$| ))")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool not found: `make test-packages` installs Debian's prometheus package"
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=120, check=False)


def load(path: Path) -> dict[str, Any]:
    return cast("dict[str, Any]", yaml.safe_load(path.read_text()))


def lockgate_metric_names() -> set[str]:
    """Every sample name Lockgate exports (counters with _total, histograms' series)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("lockgate_"):
            names.add(family.name)
            names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def alerts() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_resolves_in_the_promtool_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    cases = [case for test in load(RULE_TESTS)["tests"] for case in test["alert_rule_test"]]
    for alert in alerts():
        name = alert["alert"]
        mine = sorted(
            (case for case in cases if case["alertname"] == name),
            key=lambda case: _seconds(case["eval_time"]),
        )
        firing = [i for i, case in enumerate(mine) if case["exp_alerts"]]
        assert firing, f"no promtool test makes {name} fire"
        assert any(not case["exp_alerts"] for case in mine[: firing[0]]), (
            f"no promtool test shows {name} quiet before it fires"
        )
        assert any(not case["exp_alerts"] for case in mine[firing[0] + 1 :]), (
            f"no promtool test shows {name} resolving"
        )


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(
        float(value) * units[unit]
        for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration)
    )


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    for alert in alerts():
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert {"summary", "description"} <= set(alert["annotations"]), alert["alert"]
        assert alert.get("for"), f"{alert['alert']} would fire on a single scrape"


def test_committed_dashboards_are_generated_from_code() -> None:
    for dashboard in dashboards.DASHBOARDS:
        path = GRAFANA / dashboard.filename
        assert path.read_text() == dashboards.render(dashboard), (
            f"{path} differs from libs/observability/dashboards.py: run "
            "`.venv/bin/python -m libs.observability.dashboards`"
        )
    committed = {p.name for p in GRAFANA.glob("*.json")}
    assert committed == {d.filename for d in dashboards.DASHBOARDS}


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule of a throwaway rule file."""
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:check_{number}", "expr": expr}
                    for number, (_, _, expr) in enumerate(dashboards.expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("source", ["dashboards", "rules"])
def test_expressions_name_only_metrics_that_exist(source: str) -> None:
    if source == "dashboards":
        exprs = [expr for _, _, expr in dashboards.expressions()]
    else:
        exprs = [rule["expr"] for group in load(RULES)["groups"] for rule in group["rules"]]
    known = lockgate_metric_names()
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    unknown = {n for n in used if n.startswith("lockgate_") and n not in known}
    assert not unknown, f"{source} use metrics no Lockgate service exports: {sorted(unknown)}"
    assert any(n.startswith("lockgate_") for n in used)


def test_prometheus_config_is_valid_and_loads_the_rules() -> None:
    config = PROMETHEUS / "prometheus.yml"
    result = promtool("check", "config", "--syntax-only", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules/*.yml" in " ".join(load(config)["rule_files"])
