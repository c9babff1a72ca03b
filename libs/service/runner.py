"""A service process from start to SIGTERM: migrate, connect, consume, relay, shut down cleanly.

Start-up waits for the database and the broker (serving /healthz, /readyz red) instead of
exiting; outages after that are waited out at the process's gate (libs/service/transient.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog

from libs.bus.bus import Binding, Bus, Callback
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.db import inbox, outbox
from libs.db.migrations import migrate
from libs.db.outbox import OutboxRelay, StepObserver
from libs.db.pool import Pool, answers, create_pool, ensure_database
from libs.observability import metrics
from libs.observability.http import HealthServer
from libs.observability.logging import configure_logging
from libs.service.batching import BatchingPipeline, batch_prefetch
from libs.service.clock import Clock, clock_from
from libs.service.handlers import Answer, Instance, On, ServiceDefinition, TaskContext
from libs.service.pipeline import InFlight, Pipeline
from libs.service.system import emit_heartbeat
from libs.service.transient import Failure, Gate, classify, keep_trying
from libs.settings import SERVICE_NAMES, Settings

log = structlog.get_logger(__name__)

INBOX_RETENTION = timedelta(days=7)
OUTBOX_RETENTION = timedelta(days=1)
HOUSEKEEPING_SECONDS = 3600.0


def lockgate_version() -> str:
    try:
        return version("lockgate")
    except PackageNotFoundError:
        return "0+unknown"


def _port_of(settings: Settings, name: str) -> int:
    if name not in SERVICE_NAMES:
        raise ValueError(f"service {name!r} has no port setting; pass http_port explicitly")
    return settings.http_port(name)


ConsumerHook = Callable[[str, Callback], Callback]
"""Given a queue and the callback about to consume it, returns that callback or a wrapper."""


def _bound(route: On[Any] | Answer[Any, Any]) -> bool:
    """Whether the route's queue binds its type (see `On.bound`)."""
    return not isinstance(route, On) or route.bound


def _bindings(route: On[Any] | Answer[Any, Any]) -> list[Binding]:
    """A route's bindings: its type's, and its earlier names' while they are still accepted."""
    if isinstance(route, On):
        return [Binding(route.spec.exchange, key) for key in route.spec.binding_keys]
    return [Binding(Exchange.COMMANDS, key) for key in route.spec.accepted_types]


class ServiceProcess:
    """One running instance of a service; N replicas are N of these in N processes.

    Two optional hooks let a benchmark watch the service in its own process; without them
    nothing is called or timed. `on_step` is told how long each step of a delivery
    (libs.service.pipeline.STEP_*) and of each outbox relay batch (libs.db.outbox.RELAY_STEPS)
    took. `wrap_consumer` is called once per queue, just before its consumer is registered
    (migrations, pool, relay and topology are ready by then), and may wrap the callback.
    """

    def __init__(
        self,
        definition: ServiceDefinition,
        settings: Settings,
        *,
        http_port: int | None = None,
        clock: Clock | None = None,
        on_step: StepObserver | None = None,
        wrap_consumer: ConsumerHook | None = None,
    ) -> None:
        self.definition = definition
        self.clock = clock or clock_from(settings.clock_speed, settings.clock_epoch)
        self.settings = settings
        self.instance = Instance(
            service=definition.name,
            instance_id=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            version=lockgate_version(),
            started_at=datetime.now(UTC),
        )
        self._http_port = http_port
        self._on_step = on_step
        self._wrap_consumer = wrap_consumer
        self._sequence = 0
        self._stopping = asyncio.Event()
        self._in_flight = InFlight()
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: Pool | None = None
        self._bus: Bus | None = None
        self._relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._running = False
        self.gate: Gate | None = None
        """Open while the database and broker answer (libs/service/transient.py)."""
        self.health: HealthServer | None = None

    async def start(self) -> None:
        """Serve /healthz at once, then connect and consume.

        While the database or the broker does not answer, it logs, keeps /readyz red and
        tries again with backoff capped at 5 s; it returns once consuming (or when stop()
        is called first). A failure that waiting cannot cure (a migration refused, wrong
        credentials) is raised.
        """
        settings = self.settings
        self.health = HealthServer(
            self.readiness,
            host=settings.http_host,
            port=self._http_port
            if self._http_port is not None
            else _port_of(settings, self.definition.name),
        )
        await self.health.start()
        try:
            connected = await keep_trying(self._connect_once, what="start", stopping=self._stopping)
        except BaseException:
            await self.health.stop()
            raise
        if connected is None:
            return  # stopped before the dependencies answered
        self._start_tasks()
        self._running = True
        log.info(
            "service.started",
            instance_id=self.instance.instance_id,
            queues=sorted(self.definition.queues()),
            http_port=self.health.port,
        )

    async def _connect_once(self) -> bool:
        """One attempt at everything start needs; on failure, undo what it opened."""
        try:
            await self._connect()
        except BaseException:
            await self._disconnect()
            raise
        return True

    async def _connect(self) -> None:
        name, settings = self.definition.name, self.settings
        connect_timeout = settings.database_connect_timeout_seconds
        await ensure_database(settings.database_url, timeout=connect_timeout)
        await migrate(
            settings.database_url,
            name,
            self.definition.migrations,
            self.definition.mounted_migrations,
            connect_timeout=connect_timeout,
        )
        self._pool = pool = await create_pool(
            settings.database_url,
            name,
            command_timeout=settings.database_command_timeout_seconds,
            connect_timeout=connect_timeout,
        )
        self._bus = bus = await Bus.connect(
            settings.amqp_url,
            name=f"lockgate-{name}/{self.instance.instance_id}",
            delivery_limit=settings.delivery_limit,
            publish_timeout=settings.publish_timeout_seconds,
        )
        await bus.declare_exchanges()
        queues = self.definition.queues()
        for queue, routes in queues.items():
            await bus.declare_queue(
                queue,
                [binding for route in routes if _bound(route) for binding in _bindings(route)],
                retired=[
                    binding for route in routes if not _bound(route) for binding in _bindings(route)
                ],
            )
        self.gate = gate = Gate(
            self._dependencies_answer, stopping=self._stopping, on_close=pool.expire_connections
        )
        for queue, routes in queues.items():
            pipeline = Pipeline(
                queue=queue,
                routes=routes,
                pool=pool,
                bus=bus,
                instance=self.instance,
                settings=settings,
                delivery_limit=settings.delivery_limit,
                in_flight=self._in_flight,
                stopping=self._stopping,
                gate=gate,
                clock=self.clock,
                on_step=self._on_step,
            )
            consumer: Pipeline | BatchingPipeline = pipeline
            prefetch = settings.prefetch
            if any(isinstance(r, On) and r.handle_many is not None for r in routes):
                prefetch = batch_prefetch(settings)
                consumer = BatchingPipeline(
                    pipeline,
                    routes=routes,
                    pool=pool,
                    instance=self.instance,
                    settings=settings,
                    clock=self.clock,
                    in_flight=self._in_flight,
                    gate=gate,
                    on_step=self._on_step,
                )
            callback: Callback = consumer
            if self._wrap_consumer is not None:
                callback = self._wrap_consumer(queue, callback)
            await bus.consume(queue, callback, prefetch=prefetch)

    async def _disconnect(self) -> None:
        """Close what a failed start attempt opened, so the next attempt starts clean."""
        bus, self._bus = self._bus, None
        pool, self._pool = self._pool, None
        self.gate = None
        if bus is not None:
            await bus.stop_consuming()
            await bus.close()
        if pool is not None:
            pool.terminate()

    def _start_tasks(self) -> None:
        assert self._pool is not None  # noqa: S101 - connected before this
        assert self._bus is not None  # noqa: S101
        settings, name = self.settings, self.definition.name
        self._relay = OutboxRelay(
            self._pool,
            self._bus,
            url=settings.database_url,
            schema=name,
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
            on_step=self._on_step,
            connect_timeout=settings.database_connect_timeout_seconds,
            command_timeout=settings.database_command_timeout_seconds,
        )
        self._relay_task = asyncio.create_task(self._relay.run(), name="outbox-relay")
        self._tasks = [
            asyncio.create_task(
                self._every(HOUSEKEEPING_SECONDS, "housekeeping", self._housekeeping)
            )
        ]
        context = TaskContext(
            pool=self._pool,
            clock=self.clock,
            instance=self.instance,
            settings=settings,
            bus=self._bus,
        )
        for task in self.definition.tasks:
            self._tasks.append(
                asyncio.create_task(
                    self._every(task.seconds(settings), task.name, partial(task.work, context))
                )
            )
        self._tasks.append(
            asyncio.create_task(
                self._every(settings.metrics_sample_seconds, "queue-metrics", self._queue_metrics)
            )
        )
        if self.definition.heartbeat:
            self._tasks.append(
                asyncio.create_task(
                    self._every(settings.heartbeat_seconds, "heartbeat", self._heartbeat)
                )
            )

    async def _dependencies_answer(self) -> bool:
        """The gate's probe: the database takes writes and the broker answers."""
        database = await answers(self.settings.database_url, timeout=2.0)
        broker = self._bus is not None and await self._bus.check()
        return database and broker

    async def readiness(self) -> dict[str, bool]:
        """Ready only when consuming, the gate is open, and both dependencies answer now.

        The database is asked on a connection of its own: under a backlog every pooled
        connection can be busy, and that is load, not unreadiness. Before the process has
        started consuming, and while it waits out an outage (its gate is closed), the
        database counts as not answering.
        """
        database = await answers(self.settings.database_url, timeout=2.0)
        broker = self._bus is not None and await self._bus.check()
        consuming = self._running and self.gate is not None and self.gate.is_open
        return {"database": database and consuming, "broker": broker}

    async def _every(
        self, seconds: float, name: str, work: Callable[[], Awaitable[object]]
    ) -> None:
        """Run `work` now and every `seconds` until stopping; a failure is logged, not fatal.

        While the gate is closed the task waits for it; an outage it meets closes the gate,
        so it resumes by itself when the dependency answers again.
        """
        while not self._stopping.is_set():
            if self.gate is not None and not await self.gate.wait_open():
                return
            try:
                await work()
            except Exception as error:  # noqa: BLE001 - a periodic task must outlive one failure
                if self.gate is not None and classify(error) is Failure.OUTAGE:
                    self.gate.close(error)
                    log.info(
                        "periodic.waiting",
                        task=name,
                        error=f"{type(error).__name__}: {error}"[:300],
                    )
                else:
                    log.warning("periodic.failed", task=name, error=repr(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _heartbeat(self) -> None:
        assert self._pool is not None  # noqa: S101 - started before this task
        self._sequence += 1
        await emit_heartbeat(
            self._pool, self.instance, self._sequence, self.settings.heartbeat_seconds
        )

    async def _queue_metrics(self) -> None:
        """Depth and consumers of this service's queues and dead-letter queues."""
        assert self._bus is not None  # noqa: S101 - started before this task
        for queue in self.definition.queues():
            for name in (queue, dead_letter_queue_name(queue)):
                state = await self._bus.queue_state(name)
                if state is not None:
                    metrics.QUEUE_MESSAGES.labels(name).set(state[0])
                    metrics.QUEUE_CONSUMERS.labels(name).set(state[1])

    async def _housekeeping(self) -> None:
        assert self._pool is not None  # noqa: S101 - started before this task
        forgotten = await inbox.purge(self._pool, INBOX_RETENTION)
        deleted = await outbox.purge_published(self._pool, OUTBOX_RETENTION)
        log.info("housekeeping.done", inbox_purged=forgotten, outbox_purged=deleted)

    async def _tasks_ended(self, timeout: float) -> None:
        """Wait for the cancelled periodic tasks to end: the timers task still publishes the
        batch it committed (libs/db/direct_publish.py), before the relay's final flush."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    async def stop(self) -> None:
        """Stop consuming, let in-flight messages finish, flush the outbox, close.

        One deadline (shutdown_grace_seconds) covers all of it, so SIGTERM always ends.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_grace_seconds

        def left() -> float:
            return max(deadline - loop.time(), 0.1)

        self._stopping.set()
        self._running = False
        log.info("service.stopping", in_flight=self._in_flight.count)
        for task in self._tasks:
            task.cancel()
        if self.gate is not None:
            await self.gate.aclose()
        if self._bus is not None:
            try:
                await asyncio.wait_for(self._bus.stop_consuming(), left())
            except TimeoutError:
                log.warning("service.cancel_incomplete")
        log.info("service.consumers_stopped")
        try:
            await asyncio.wait_for(self._in_flight.wait_idle(), left())
        except TimeoutError:
            log.warning("service.in_flight_abandoned", count=self._in_flight.count)
        await self._tasks_ended(left())
        if self._relay is not None and self._relay_task is not None:
            self._relay.stop()
            try:
                await asyncio.wait_for(self._relay_task, left())
            except TimeoutError:
                log.warning("outbox.flush_incomplete")
        log.info("service.outbox_flushed")
        if self.health is not None:
            await self.health.stop()
        if self._bus is not None:
            try:
                await asyncio.wait_for(self._bus.close(), left())
            except TimeoutError:
                log.warning("service.broker_close_incomplete")
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), left())
            except TimeoutError:
                self._pool.terminate()  # a handler still holds a connection past the deadline
        log.info("service.stopped")


async def serve(definition: ServiceDefinition, settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (also while still waiting for
    the database or broker to answer at start)."""
    process = ServiceProcess(definition, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(process.start(), name="start")
    stopped = asyncio.create_task(stop.wait(), name="stop-signal")
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if starting.done() and starting.exception() is not None:
        stopped.cancel()
        await process.stop()
        await starting  # raises: a failure waiting cannot cure
    await stopped
    if not starting.done():  # still waiting for the database or broker: give up at once
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    await process.stop()


def main(definition: ServiceDefinition) -> None:
    """Entry point of `python -m services.<name>`."""
    settings = Settings()
    configure_logging(definition.name, settings.log_level)
    try:
        asyncio.run(serve(definition, settings))
    except Exception as error:
        log.exception("service.start_failed", error=f"{type(error).__name__}: {error}")
        raise SystemExit(1) from None
