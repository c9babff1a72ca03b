"""Settings: development defaults, LOCKGATE_* overrides, range checks and per-service ports."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from libs.settings import SERVICE_NAMES, ServiceName, Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No LOCKGATE_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("LOCKGATE_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.usefixtures("clean_env")
def test_default_amqp_url_points_at_local_rabbitmq() -> None:
    """A fresh checkout must talk to a broker on this machine, never to a remote one."""
    assert Settings().amqp_url == "amqp://guest:guest@127.0.0.1:5672/"


@pytest.mark.usefixtures("clean_env")
def test_default_database_url_points_at_local_postgresql() -> None:
    """Likewise for the database: defaults reach only 127.0.0.1."""
    assert Settings().database_url == "postgresql://postgres@127.0.0.1:5432/lockgate"


@pytest.mark.usefixtures("clean_env")
def test_default_http_host_is_loopback() -> None:
    """Metrics are not exposed on every interface unless someone asks for it."""
    assert Settings().http_host == "127.0.0.1"


def test_env_var_overrides_amqp_url(clean_env: pytest.MonkeyPatch) -> None:
    """Deployments configure each process through LOCKGATE_* variables."""
    clean_env.setenv("LOCKGATE_AMQP_URL", "amqp://lockgate:secret@rabbit:5672/prod")
    assert Settings().amqp_url == "amqp://lockgate:secret@rabbit:5672/prod"


def test_env_var_overrides_a_number(clean_env: pytest.MonkeyPatch) -> None:
    """Numeric knobs are parsed from their string form in the environment."""
    clean_env.setenv("LOCKGATE_PREFETCH", "8")
    clean_env.setenv("LOCKGATE_RPC_TIMEOUT_SECONDS", "2.5")
    settings = Settings()
    assert (settings.prefetch, settings.rpc_timeout_seconds) == (8, 2.5)


def test_env_var_without_prefix_is_ignored(clean_env: pytest.MonkeyPatch) -> None:
    """A generic DATABASE_URL meant for another program must not redirect Lockgate."""
    clean_env.setenv("DATABASE_URL", "postgresql://elsewhere/other")
    assert Settings().database_url == "postgresql://postgres@127.0.0.1:5432/lockgate"


def test_out_of_range_port_is_refused_naming_the_field(clean_env: pytest.MonkeyPatch) -> None:
    """A typo in a port must stop the process at start-up with the variable it came from."""
    clean_env.setenv("LOCKGATE_SCHEDULER_HTTP_PORT", "70000")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [error["loc"] for error in caught.value.errors()] == [("scheduler_http_port",)]
    assert "65535" in str(caught.value)


def test_negative_port_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    """The lower bound is checked as well as the upper one."""
    clean_env.setenv("LOCKGATE_CATALOG_HTTP_PORT", "-1")
    with pytest.raises(ValidationError, match="catalog_http_port"):
        Settings()


def test_unknown_log_level_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    """Only the levels the logger knows are accepted, so a typo is not silently ignored."""
    clean_env.setenv("LOCKGATE_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError, match="log_level"):
        Settings()


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_http_port_returns_the_port_of_that_service(
    clean_env: pytest.MonkeyPatch, service: ServiceName
) -> None:
    """Each service serves its metrics on its own port; a mix-up would collide at start-up."""
    clean_env.setenv(f"LOCKGATE_{service.upper()}_HTTP_PORT", "9999")
    settings = Settings()
    assert settings.http_port(service) == 9999
    assert [settings.http_port(other) for other in SERVICE_NAMES].count(9999) == 1


@pytest.mark.usefixtures("clean_env")
def test_default_http_ports_are_distinct() -> None:
    """The four services run side by side on one machine in development."""
    settings = Settings()
    ports = [settings.http_port(service) for service in SERVICE_NAMES]
    assert len(set(ports)) == len(SERVICE_NAMES)
