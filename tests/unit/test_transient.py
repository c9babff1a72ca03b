"""Which failures are outages to wait out, which are the message's own; multi-host URLs."""

from __future__ import annotations

import asyncio
import errno
import socket

import asyncpg
import pytest
from aiormq.exceptions import (
    AMQPConnectionError,
    ChannelInvalidStateError,
    ProbableAuthenticationError,
)
from prometheus_client import REGISTRY

from libs.bus.bus import PublishFailed
from libs.bus.codec import InvalidMessage
from libs.bus.rpc import BrokerUnavailable
from libs.db.pool import _server_url, database_name, hosts
from libs.service.errors import DomainError
from libs.service.transient import Failure, Gate, classify, is_transient, keep_trying

OUTAGES: list[BaseException] = [
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    ConnectionResetError(errno.ECONNRESET, "reset by peer"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed, [Errno 111] ..."),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    socket.gaierror(-2, "Name or service not known"),
    TimeoutError(),
    TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.ConnectionFailureError("server closed the connection"),
    asyncpg.PostgresConnectionError("08000"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("crash"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
    asyncpg.exceptions.TargetServerAttributeNotMatched("none of the hosts match read-write"),
    asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    ),
    PublishFailed("publish to lockgate.events/x failed: TimeoutError"),
    BrokerUnavailable("the connection to the broker is down"),
    AMQPConnectionError("connection lost"),
    ChannelInvalidStateError("channel closed"),
]

OWN: list[BaseException] = [
    ValueError("bad value"),
    KeyError("missing"),
    RuntimeError("a bug"),
    FileNotFoundError(errno.ENOENT, "No such file"),
    PermissionError(errno.EACCES, "Permission denied"),
    asyncpg.UniqueViolationError("duplicate key"),
    asyncpg.NotNullViolationError("null value"),
    asyncpg.UndefinedTableError("relation does not exist"),
    asyncpg.InvalidPasswordError("password authentication failed"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InterfaceError("pool is closing"),
    ProbableAuthenticationError("ACCESS_REFUSED"),
    InvalidMessage("field x is missing"),
    DomainError("refused"),
]


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
def test_dependency_failures_are_outages(error: BaseException) -> None:
    assert classify(error) is Failure.OUTAGE
    assert is_transient(error)


@pytest.mark.parametrize("error", OWN, ids=lambda e: type(e).__name__)
def test_other_failures_are_the_messages_own(error: BaseException) -> None:
    assert classify(error) is Failure.OWN
    assert not is_transient(error)


@pytest.mark.parametrize(
    "error",
    [asyncpg.SerializationError("could not serialize"), asyncpg.DeadlockDetectedError("deadlock")],
    ids=lambda e: type(e).__name__,
)
def test_lost_races_are_conflicts(error: BaseException) -> None:
    assert classify(error) is Failure.CONFLICT
    assert is_transient(error)


def test_an_explicit_cause_is_followed() -> None:
    wrapped = RuntimeError("could not save")
    wrapped.__cause__ = ConnectionResetError(errno.ECONNRESET, "reset")
    assert classify(wrapped) is Failure.OUTAGE


def test_an_implicit_context_is_not_followed() -> None:
    """A bug raised while handling an outage is still a bug."""
    error = ValueError("bad")
    error.__context__ = ConnectionResetError(errno.ECONNRESET, "reset")
    assert classify(error) is Failure.OWN


async def test_the_gate_waits_until_the_probe_answers_and_a_stop_ends_the_wait() -> None:
    stopping = asyncio.Event()
    answers = [False, False, True]
    closed_hook: list[bool] = []

    async def probe() -> bool:
        return answers.pop(0)

    async def on_close() -> None:
        closed_hook.append(True)

    gate = Gate(probe, stopping=stopping, on_close=on_close, first_delay=0.01, max_delay=0.02)
    assert gate.is_open
    assert await gate.wait_open()
    gate.close(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    gate.close(ConnectionRefusedError(errno.ECONNREFUSED, "again"))  # already closed: no-op
    assert not gate.is_open
    assert gate.closings == 1
    assert "ConnectionRefusedError" in gate.reason
    assert REGISTRY.get_sample_value("lockgate_dependencies_available") == 0
    assert await gate.wait_open()
    assert answers == []
    assert REGISTRY.get_sample_value("lockgate_dependencies_available") == 1
    assert closed_hook == [True]

    async def never() -> bool:
        return False

    stuck = Gate(never, stopping=stopping, first_delay=0.01, max_delay=0.02)
    stuck.close(TimeoutError())
    waiter = asyncio.create_task(stuck.wait_open())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    stopping.set()
    assert await waiter is False
    await stuck.aclose()


async def test_keep_trying_waits_out_outages_and_raises_the_rest() -> None:
    stopping = asyncio.Event()
    failures: list[BaseException] = [
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        asyncpg.CannotConnectNowError("starting up"),
    ]

    async def step() -> str:
        if failures:
            raise failures.pop(0)
        return "connected"

    result = await keep_trying(
        step, what="test", stopping=stopping, first_delay=0.01, max_delay=0.02
    )
    assert result == "connected"

    async def broken() -> str:
        raise asyncpg.InvalidPasswordError("password authentication failed")

    with pytest.raises(asyncpg.InvalidPasswordError):
        await keep_trying(broken, what="test", stopping=stopping)

    async def down() -> str:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    stopping.set()
    assert await keep_trying(down, what="test", stopping=stopping) is None


MULTI = "postgresql://lockgate:s%40cret@db1.example:5433,db2.example:5434,[::1]/lockgate_prod?target_session_attrs=read-write"


def test_a_multi_host_url_keeps_every_host_and_its_options() -> None:
    assert database_name(MULTI) == "lockgate_prod"
    assert hosts(MULTI) == [("db1.example", 5433), ("db2.example", 5434), ("::1", 5432)]
    assert _server_url(MULTI) == (
        "postgresql://lockgate:s%40cret@db1.example:5433,db2.example:5434,[::1]/postgres"
        "?target_session_attrs=read-write"
    )
    assert hosts("postgresql://postgres@127.0.0.1/lockgate") == [("127.0.0.1", 5432)]


def test_asyncpg_reads_a_multi_host_url_as_a_list_of_hosts() -> None:
    """The installed asyncpg parses the same URL into both hosts and the session target."""
    from asyncpg.connect_utils import (  # type: ignore[attr-defined]  # noqa: PLC0415 - private, unstubbed
        _parse_connect_dsn_and_args,
    )

    addrs, params = _parse_connect_dsn_and_args(
        dsn=MULTI,
        host=None,
        port=None,
        user=None,
        password=None,
        passfile=None,
        database=None,
        ssl=None,
        service=None,
        servicefile=None,
        direct_tls=None,
        server_settings=None,
        target_session_attrs=None,
        krbsrvname=None,
        gsslib=None,
    )
    assert addrs[:2] == [("db1.example", 5433), ("db2.example", 5434)]
    assert params.database == "lockgate_prod"
    assert params.password == "s@cret"  # noqa: S105 - a made-up URL's password
    assert str(params.target_session_attrs.value) == "read-write"


def test_a_url_without_a_database_is_refused_naming_the_hosts() -> None:
    with pytest.raises(ValueError, match=r"db1\.example:5433,db2\.example:5434"):
        database_name("postgresql://u@db1.example:5433,db2.example:5434/")
