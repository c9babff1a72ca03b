"""A RabbitMQ vhost and a PostgreSQL database of our own for one test session."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from libs.db.pool import drop_database, ensure_database
from libs.settings import Settings


@dataclass(frozen=True)
class Infra:
    """Where this session's tests find their broker vhost and database."""

    amqp_url: str
    database_url: str
    vhost: str

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a service subprocess pointed at this session's infrastructure."""
        env = dict(os.environ)
        env.update(LOCKGATE_AMQP_URL=self.amqp_url, LOCKGATE_DATABASE_URL=self.database_url)
        env.update(extra)
        return env


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def _with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def local_infra(base: Settings) -> Iterator[Infra]:
    """A fresh vhost (rabbitmqctl) and database on the configured local servers."""
    if shutil.which("rabbitmqctl") is None:
        raise RuntimeError("rabbitmqctl is needed to create the test vhost")
    tag = uuid.uuid4().hex[:10]
    vhost = f"lockgate-test-{tag}"
    user = urlsplit(base.amqp_url).username or "guest"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    database_url = _with_database(base.database_url, f"lockgate_test_{tag}")
    asyncio.run(ensure_database(database_url))
    try:
        yield Infra(_with_vhost(base.amqp_url, vhost), database_url, vhost)
    finally:
        asyncio.run(drop_database(database_url))
        _rabbitmqctl("delete_vhost", vhost)


@contextmanager
def own_vhost(infra: Infra, suffix: str) -> Iterator[Infra]:
    """`infra` with a vhost of its own beside the session's (`<vhost>-<suffix>`), removed
    after: for a long-lived system that must not meet messages other tests left queued on
    the session's vhost. A container's broker (vhost "/") is already the session's alone."""
    if infra.vhost == "/" or shutil.which("rabbitmqctl") is None:
        yield infra
        return
    vhost = f"{infra.vhost}-{suffix}"
    user = urlsplit(infra.amqp_url).username or "guest"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield Infra(_with_vhost(infra.amqp_url, vhost), infra.database_url, vhost)
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@contextmanager
def container_infra() -> Iterator[Infra]:
    """RabbitMQ and PostgreSQL in containers, for machines with Docker but no local servers."""
    from testcontainers.postgres import PostgresContainer  # noqa: PLC0415 - only with Docker
    from testcontainers.rabbitmq import RabbitMqContainer  # noqa: PLC0415 - only with Docker

    with RabbitMqContainer("rabbitmq:3.13") as rabbit, PostgresContainer("postgres:16") as pg:
        amqp = (
            f"amqp://guest:guest@{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/"
        )
        database = pg.get_connection_url().replace("postgresql+psycopg2", "postgresql")
        yield Infra(amqp, database, "/")


@contextmanager
def session_infra() -> Iterator[Infra]:
    """Local servers when they answer (LOCKGATE_* URLs or defaults), else testcontainers."""
    base = Settings()
    if _reachable(base.amqp_url, 5672) and _reachable(base.database_url, 5432):
        with local_infra(base) as infra:
            yield infra
    elif (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    ):
        with container_infra() as infra:
            yield infra
    else:
        raise RuntimeError(
            f"no broker at {base.amqp_url} or no database at {base.database_url}, and no "
            "Docker engine for testcontainers: run `make services` or set LOCKGATE_*_URL"
        )
