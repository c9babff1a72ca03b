"""docker-compose.yml, the Prometheus config and the Dockerfile agree with Settings."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from libs.settings import SERVICE_NAMES, ServiceName, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"

ENV_VAR = re.compile(r"\bLOCKGATE_[A-Z0-9_]+\b")
READYZ_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/readyz")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what compose binds a port to when no address is given


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path} is not a YAML mapping"
    return cast("dict[str, Any]", loaded)


def _service(name: str) -> dict[str, Any]:
    services = cast("dict[str, dict[str, Any]]", _load(COMPOSE_FILE)["services"])
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def _environment(name: str) -> dict[str, str]:
    env = _service(name).get("environment", {})
    if isinstance(env, list):  # compose also accepts ["KEY=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def _port_var(name: ServiceName) -> str:
    return f"LOCKGATE_{name.upper()}_HTTP_PORT"


def _env_port(name: ServiceName) -> int:
    return int(_environment(name)[_port_var(name)])


def _published(name: str) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each `ports:` entry."""
    published = []
    for entry in _service(name).get("ports", []):
        *address, host_port, container_port = str(entry).split(":")
        host = address[0] if address else ALL_INTERFACES
        published.append((host, int(host_port), int(container_port)))
    return published


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_runs_its_module(name: ServiceName) -> None:
    """Compose must start every service the code knows, the same way the Procfile does."""
    assert _argv(_service(name)["command"]) == ["python", "-m", f"services.{name}"]


def test_lockgate_env_vars_are_settings_fields() -> None:
    """A misspelt LOCKGATE_* variable is silently ignored (extra="ignore"), so catch it here."""
    fields = {f"LOCKGATE_{field.upper()}" for field in Settings.model_fields}
    used = set(ENV_VAR.findall(COMPOSE_FILE.read_text()))
    assert used, "docker-compose.yml sets no LOCKGATE_* variable"
    assert used <= fields, f"not Settings fields: {sorted(used - fields)}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_port_env_matches_settings_default(name: ServiceName) -> None:
    """Compose ports match the defaults, so host tools (`lockgate wait-ready`) find services."""
    assert _env_port(name) == Settings.model_fields[f"{name}_http_port"].default


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_port_env_matches_published_port(name: ServiceName) -> None:
    """The service listens where compose publishes it, or the host cannot reach its endpoints.

    Replicated services publish nothing (two replicas cannot share a host port); Prometheus
    reaches each replica on the compose network.
    """
    port = _env_port(name)
    published = [(host, container) for _, host, container in _published(name)]
    replicas = _service(name).get("deploy", {}).get("replicas", 1)
    assert published == ([(port, port)] if replicas == 1 else [])


def test_compose_file_matches_the_compose_specification() -> None:
    """Validated offline against the Compose Specification schema check-jsonschema ships."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_some_service_runs_replicated() -> None:
    replicated = [n for n in SERVICE_NAMES if _service(n).get("deploy", {}).get("replicas", 1) > 1]
    assert replicated, "docker-compose.yml should show scale-out with 2 replicas of a service"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_healthcheck_probes_service_port(name: ServiceName) -> None:
    """A healthcheck on the wrong port keeps the container unhealthy forever."""
    probe = " ".join(_argv(_service(name)["healthcheck"]["test"]))
    assert [int(port) for port in READYZ_URL.findall(probe)] == [_env_port(name)]


def test_ports_published_on_localhost_only() -> None:
    """Nothing in the development stack (guest/guest, trust auth) may face the network."""
    services = cast("dict[str, Any]", _load(COMPOSE_FILE)["services"])
    addresses = {address for name in services for address, _, _ in _published(name)}
    assert addresses == {"127.0.0.1"}


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_waits_for_rabbitmq_and_migrations(name: ServiceName) -> None:
    """Services must not start before the broker answers and their schema exists."""
    depends_on = _service(name)["depends_on"]
    assert depends_on["rabbitmq"]["condition"] == "service_healthy"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"


def test_migrate_runs_once_after_postgres() -> None:
    """Migrations need the database up, and a restarting one-shot would never "complete"."""
    migrate = _service("migrate")
    assert _argv(migrate["command"]) == ["lockgate", "migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"


def test_prometheus_scrapes_exactly_the_services() -> None:
    """Each service is scraped once per replica (DNS finds them), under a job of its name,
    and RabbitMQ's own metrics too; nothing else is scraped by mistake."""
    targets = {}
    for job in _load(PROMETHEUS_FILE)["scrape_configs"]:
        found = [t for static in job.get("static_configs", []) for t in static["targets"]]
        found += [
            f"{name}:{dns['port']}"
            for dns in job.get("dns_sd_configs", [])
            for name in dns["names"]
        ]
        targets[job["job_name"]] = found
    expected: dict[str, list[str]] = {n: [f"{n}:{_env_port(n)}"] for n in SERVICE_NAMES}
    expected["console"] = [f"console:{Settings().console_port}"]
    expected["rabbitmq"] = ["rabbitmq:15692"]
    assert targets == expected


def test_dockerfile_installs_pinned_requirements() -> None:
    """The image must use the same pinned versions as CI, then add the project without deps."""
    text = DOCKERFILE.read_text()
    pinned = text.find("pip install --no-cache-dir -r requirements.lock")
    project = text.find("pip install --no-cache-dir --no-deps .")
    assert pinned != -1, "Dockerfile does not install requirements.lock"
    assert project > pinned, "Dockerfile must install the project, without deps, after the lock"
