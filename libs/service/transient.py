"""Outages are waited out: which failures are a dependency's, and the gate that waits for it.

A failure is either the message's own (bad data, a bug, a constraint it breaks: retried a
few times, then dead-lettered) or a dependency's (the database or broker does not answer,
is shutting down, is a standby after a failover, ran out of connections, or timed out).
`classify` tells them apart, by exception type and SQLSTATE, following explicit causes
(`raise ... from ...`).

A dependency's failure must never cost a message its delivery limit: the consumer keeps the
message unacked, closes the process's `Gate`, waits for the gate to open again and runs the
same message once more, in process, as often as it takes. While the gate is closed every
consumer of the process waits at it before taking the next delivery (prefetch bounds how
many are held), periodic tasks wait for it before their next run, and readiness is red. The
gate probes with capped backoff and opens by itself when the dependency answers; a stop
ends every wait.

Conflicts (serialization failure 40001, deadlock 40P01) are also never the message's fault,
but the database is fine: they are retried in place after a short pause, without closing
the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import socket
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

import asyncpg
import structlog
from aiormq.exceptions import (
    AMQPConnectionError,
    AuthenticationError,
    ChannelInvalidStateError,
    IncompatibleProtocolError,
    ProbableAuthenticationError,
)

from libs.bus.bus import PublishFailed
from libs.observability import metrics

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Failure(StrEnum):
    """What a failure says about the message that met it."""

    OWN = "own"
    """The message's own: bounded retry, then `<queue>.dlq`."""
    CONFLICT = "conflict"
    """Lost a race with another transaction: run it again now, without limit."""
    OUTAGE = "outage"
    """A dependency does not answer: wait at the gate, then run it again, without limit."""


CONFLICT_STATES = frozenset({"40001", "40P01"})
"""serialization_failure, deadlock_detected."""
OUTAGE_STATES = frozenset(
    {
        "57P01",  # admin_shutdown: the server is stopping (or a failover fenced it)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up or in recovery
        "57014",  # query_canceled: a statement timeout or a cancel on a hung server
        "53300",  # too_many_connections
        "25006",  # read_only_sql_transaction: talking to a standby after a failover
    }
)
OUTAGE_STATE_CLASSES = ("08",)
"""connection_exception and every code in it."""

NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.EADDRNOTAVAIL,
    }
)

_CONFIGURATION = (AuthenticationError, ProbableAuthenticationError, IncompatibleProtocolError)
"""Broker connection errors that waiting will not cure: wrong credentials or protocol."""


def classify(error: BaseException) -> Failure:
    """The kind of `error`, or of the first explicit cause in its chain that is not OWN."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = _classify_one(current)
        if kind is not Failure.OWN:
            return kind
        current = current.__cause__
    return Failure.OWN


def is_transient(error: BaseException) -> bool:
    """True when `error` is no fault of the message (an outage or a conflict)."""
    return classify(error) is not Failure.OWN


def _classify_one(error: BaseException) -> Failure:  # noqa: PLR0911 - one answer per kind
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        if state in CONFLICT_STATES:
            return Failure.CONFLICT
        if state in OUTAGE_STATES or state.startswith(OUTAGE_STATE_CLASSES):
            return Failure.OUTAGE
        return Failure.OWN
    if isinstance(error, asyncpg.InterfaceError):
        # "connection is closed", "connection was closed in the middle of operation"; other
        # interface errors (misuse of a connection, "pool is closing") are not outages.
        text = str(error).lower()
        return Failure.OUTAGE if "connection" in text and "closed" in text else Failure.OWN
    if isinstance(error, asyncpg.exceptions.TargetServerAttributeNotMatched):
        return Failure.OUTAGE  # no host is (yet) the read-write primary: a failover is under way
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        # "cannot switch to state N; another operation is in progress": a connection left
        # half-way through a protocol exchange when the server went away. The gate replaces
        # the pool's connections before the message runs again.
        return Failure.OUTAGE
    if isinstance(error, _CONFIGURATION):
        return Failure.OWN
    if isinstance(
        error,
        PublishFailed | AMQPConnectionError | ChannelInvalidStateError | TimeoutError,
    ):
        return Failure.OUTAGE
    if isinstance(error, ConnectionError | socket.gaierror):
        return Failure.OUTAGE
    if isinstance(error, OSError):
        # A plain OSError is what a failed connect to several addresses raises; a file
        # that is missing or unreadable (FileNotFoundError, PermissionError) is the
        # message's own business.
        if type(error) is OSError and error.errno is None:
            return Failure.OUTAGE
        return Failure.OUTAGE if error.errno in NETWORK_ERRNOS else Failure.OWN
    return Failure.OWN


Probe = Callable[[], Awaitable[bool]]
"""Answers True when every dependency answers now (it may raise: that is a False)."""


class Gate:
    """Open while the process's dependencies answer; closed from a reported outage until a
    probe finds them answering again.

    One per process, shared by every consumer, the batching path and periodic tasks.
    """

    def __init__(
        self,
        probe: Probe,
        *,
        stopping: asyncio.Event,
        on_close: Callable[[], Awaitable[None]] | None = None,
        first_delay: float = 0.1,
        max_delay: float = 5.0,
    ) -> None:
        self._probe = probe
        self._stopping = stopping
        self._on_close = on_close
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._open = asyncio.Event()
        self._open.set()
        metrics.DEPENDENCIES_AVAILABLE.set(1)
        self._prober: asyncio.Task[None] | None = None
        self._closed_at: float | None = None
        self.closings = 0
        """How many outages this gate has seen (tests, logs)."""
        self.reason = ""
        """Why it was last closed."""
        self.reopened_at_once = False
        """Whether the last reopening took a single probe: the dependencies answered at
        once, so the failure that closed the gate may have been the work's own."""

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def close(self, error: BaseException) -> None:
        """Close the gate for `error` (an outage) and start probing, unless already closed."""
        if not self._open.is_set():
            return
        self._open.clear()
        metrics.DEPENDENCIES_AVAILABLE.set(0)
        metrics.DEPENDENCY_OUTAGES.inc()
        self.closings += 1
        self._closed_at = time.monotonic()
        self.reason = f"{type(error).__name__}: {error}"[:300]
        log.warning("dependencies.unavailable", reason=self.reason)
        self._prober = asyncio.create_task(self._probe_until_open(), name="dependency-gate")

    async def wait_open(self) -> bool:
        """Wait until the gate is open (True) or the process stops (False)."""
        if self._open.is_set():
            return True
        if self._stopping.is_set():
            return False
        opened = asyncio.ensure_future(self._open.wait())
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({opened, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
            stopped.cancel()
        return self._open.is_set() and not self._stopping.is_set()

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds` unless stopping first; True when not stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    async def _probe_until_open(self) -> None:
        delay = self._first_delay
        if self._on_close is not None:
            try:
                await self._on_close()
            except Exception as error:  # noqa: BLE001 - the probe decides, not this hook
                log.debug("dependencies.on_close_failed", error=repr(error))
        attempts = 0
        while not self._stopping.is_set():
            attempts += 1
            try:
                answered = await self._probe()
            except Exception as error:  # noqa: BLE001 - any failure of the probe is a "no"
                answered = False
                log.debug("dependencies.probe_failed", error=repr(error))
            if answered:
                waited = time.monotonic() - (self._closed_at or time.monotonic())
                log.info("dependencies.available", waited_seconds=round(waited, 2), probes=attempts)
                self.reopened_at_once = attempts == 1
                self._open.set()
                metrics.DEPENDENCIES_AVAILABLE.set(1)
                return
            # Jitter so replicas do not probe in step.
            if not await self.pause(delay * random.uniform(0.8, 1.2)):  # noqa: S311 - not crypto
                return
            delay = min(delay * 2, self._max_delay)

    async def aclose(self) -> None:
        """Stop probing (the process is stopping)."""
        if self._prober is not None and not self._prober.done():
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober


def conflict_pause(attempt: int) -> float:
    """Seconds to pause before running a conflicted transaction again (attempt from 1)."""
    base: float = min(0.01 * 2.0**attempt, 1.0)
    return base * random.uniform(0.5, 1.5)  # noqa: S311 - not crypto


async def keep_trying(
    step: Callable[[], Awaitable[T]],
    *,
    what: str,
    stopping: asyncio.Event,
    first_delay: float = 0.5,
    max_delay: float = 5.0,
) -> T | None:
    """Run `step` until it succeeds; an outage is logged and tried again with capped
    backoff (start-up: the database or broker may come later). A failure of any other kind
    is raised. None when `stopping` is set first.
    """
    delay = first_delay
    attempt = 0
    while not stopping.is_set():
        attempt += 1
        try:
            return await step()
        except Exception as error:
            if classify(error) is Failure.OWN:
                raise
            log.warning(
                "dependencies.waiting",
                step=what,
                attempt=attempt,
                retry_in=round(delay, 2),
                error=f"{type(error).__name__}: {error}"[:300],
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        delay = min(delay * 2, max_delay)
    return None
