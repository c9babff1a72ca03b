"""The generated RabbitMQ definitions on the real broker: each agent speaks and listens only
for itself, each service keeps to its own queues and exchanges, and the real services and
console still work under their own users.

The definitions are imported as an operator would: the committed kind of document (users
without passwords) with `rabbitmqctl import_definitions`, passwords set with `rabbitmqctl
change_password`, then an agent-enrolment document (here with password hashes computed by
`with_passwords`). Vhost and users are named uniquely for the session and removed after.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import AMQPError, ChannelAccessRefused, ProbableAuthenticationError
from pamqp.commands import Basic
from prometheus_client import REGISTRY as METRICS

from libs.bus import Bus, to_amqp
from libs.bus.bus import Binding
from libs.bus.definitions import (
    agent_definitions,
    agent_queue_name,
    definitions,
    render,
    service_users,
    with_passwords,
)
from libs.contracts import Envelope
from libs.contracts.agents import AGENT_STATUS, AgentStatus
from libs.contracts.api import PREFIX
from libs.contracts.names import Exchange, dead_letter_queue_name
from libs.db.pool import drop_database, ensure_database
from libs.observability import metrics
from libs.service.handlers import On, ServiceDefinition
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually

pytestmark = pytest.mark.integration

SERVICES = (CATALOG, APPROVAL, SCHEDULER, REPORTING)
DELIVERY_LIMIT = 5
"""The same in every declaration of a queue (the arguments must agree)."""


@dataclass(frozen=True)
class Broker:
    """This module's vhost, its users and their passwords, and its own database."""

    host: str
    port: int
    vhost: str
    users: dict[str, str]
    """Broker user per service and client name."""
    agent: str
    other: str
    """A second agent whose id starts with the first one's: `<agent>0`."""
    passwords: dict[str, str]
    database_url: str

    def url(self, user: str, *, password: str | None = None, vhost: str | None = None) -> str:
        secret = self.passwords[user] if password is None else password
        where = quote(self.vhost if vhost is None else vhost, safe="")
        return f"amqp://{user}:{secret}@{self.host}:{self.port}/{where}"

    def service_url(self, name: str) -> str:
        return self.url(self.users[name])


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def rabbitmqctl_all(commands: list[list[str]]) -> list[str]:
    """Run independent rabbitmqctl commands side by side (each one starts a VM); errors."""
    running = [
        subprocess.Popen(
            ["rabbitmqctl", "-q", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for command in commands
    ]
    errors = []
    for command, process in zip(commands, running, strict=True):
        _, err = process.communicate(timeout=60)
        if process.returncode:
            errors.append(f"{' '.join(command[:2])}: {err.decode()[:300]}")
    return errors


def import_definitions(text: str) -> None:
    """`rabbitmqctl import_definitions` of `text`; 3.10 cannot read it from standard input,
    and the Debian wrapper runs as the rabbitmq user, so the file must be readable by it."""
    with tempfile.TemporaryDirectory(prefix="lockgate-definitions-") as folder:
        Path(folder).chmod(0o755)
        path = Path(folder) / "definitions.json"
        path.write_text(text)
        path.chmod(0o644)
        rabbitmqctl("import_definitions", str(path))


@pytest.fixture(scope="module")
def broker(infra: Infra) -> Iterator[Broker]:
    if shutil.which("rabbitmqctl") is None or infra.vhost == "/":
        pytest.skip("needs the local broker and rabbitmqctl (users are broker-wide)")
    tag = uuid.uuid4().hex[:8]
    vhost, prefix = f"lockgate-brk-{tag}", f"lgt-{tag}-"
    agent = f"lgt{tag}-pc-1"
    other = agent + "0"
    users = service_users((s.name for s in SERVICES), user_prefix=prefix)
    # Hex: a password starting with "-" would be read by rabbitmqctl as an option.
    passwords = {user: secrets.token_hex(16) for user in [*users.values(), agent, other]}
    parts = urlsplit(infra.amqp_url)
    found = Broker(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5672,
        vhost=vhost,
        users=users,
        agent=agent,
        other=other,
        passwords=passwords,
        database_url=f"{infra.database_url}_brk",
    )
    asyncio.run(ensure_database(found.database_url))
    try:
        import_definitions(render(definitions(SERVICES, vhost=vhost, user_prefix=prefix)))
        # As committed, nobody can log in yet: no user has a password.
        for guess in ("", "guest", passwords[users["catalog"]]):
            with pytest.raises(ProbableAuthenticationError):
                asyncio.run(_connect(found.url(users["catalog"], password=guess)))
        errors = rabbitmqctl_all(
            [["change_password", user, passwords[user]] for user in users.values()]
        )
        assert not errors, errors
        enrolment = agent_definitions([agent, other], vhost=vhost, reserved=users.values())
        import_definitions(
            render(with_passwords(enrolment, {agent: passwords[agent], other: passwords[other]}))
        )
        yield found
    finally:
        errors = rabbitmqctl_all(
            [
                ["delete_vhost", vhost],
                *(["delete_user", user] for user in [*users.values(), agent, other]),
            ]
        )
        asyncio.run(drop_database(found.database_url))
        # A user or vhost that was never created is not an error worth failing on.
        assert all("does not exist" in error for error in errors), errors


async def _connect(url: str) -> None:
    connection = await aio_pika.connect(url)
    await connection.close()


@pytest.fixture
async def as_agent(broker: Broker) -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(broker.url(broker.agent))
    yield connection
    await connection.close()


async def connected(broker: Broker, name: str) -> AbstractConnection:
    return await aio_pika.connect(broker.service_url(name))


async def refused(
    connection: AbstractConnection, attempt: Callable[[AbstractChannel], Awaitable[object]]
) -> str:
    """`attempt` on a fresh confirm channel closes it with ACCESS_REFUSED (403)."""
    channel = await connection.channel(publisher_confirms=True)
    with pytest.raises(ChannelAccessRefused) as caught:
        await attempt(channel)
    assert "ACCESS_REFUSED" in str(caught.value)
    return str(caught.value)


def publishing(
    exchange: str, routing_key: str, body: bytes = b"{}"
) -> Callable[[AbstractChannel], Awaitable[object]]:
    async def attempt(channel: AbstractChannel) -> object:
        target = (
            channel.default_exchange
            if exchange == ""
            else await channel.get_exchange(exchange, ensure=False)
        )
        return await target.publish(aio_pika.Message(body), routing_key=routing_key, timeout=5)

    return attempt


def binding(queue: str, exchange: str, key: str) -> Callable[[AbstractChannel], Awaitable[object]]:
    async def attempt(channel: AbstractChannel) -> object:
        found = await channel.get_queue(queue, ensure=False)
        return await found.bind(exchange, routing_key=key)

    return attempt


async def ignore(_: AbstractIncomingMessage) -> None:
    """A consumer that is never meant to receive anything."""


def consuming(queue: str) -> Callable[[AbstractChannel], Awaitable[object]]:
    async def attempt(channel: AbstractChannel) -> object:
        found = await channel.get_queue(queue, ensure=False)
        return await found.consume(ignore)

    return attempt


def declaring_queue(queue: str) -> Callable[[AbstractChannel], Awaitable[object]]:
    async def attempt(channel: AbstractChannel) -> object:
        return await channel.declare_queue(queue, durable=True)

    return attempt


def declaring_exchange(name: str) -> Callable[[AbstractChannel], Awaitable[object]]:
    async def attempt(channel: AbstractChannel) -> object:
        return await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT)

    return attempt


async def declare_topology(url: str, definition: ServiceDefinition) -> None:
    """What ServiceProcess.start declares, as that service's user."""
    bus = await Bus.connect(url, name="lockgate-tests", delivery_limit=DELIVERY_LIMIT)
    try:
        await bus.declare_exchanges()
        for queue, routes in definition.queues().items():
            await bus.declare_queue(
                queue,
                [
                    Binding(route.spec.exchange, route.spec.binding_key)
                    if isinstance(route, On)
                    else Binding(Exchange.COMMANDS, route.spec.routing_key)
                    for route in routes
                ],
            )
    finally:
        await bus.close()


def status_of(computer_id: str, subject: str) -> tuple[aio_pika.Message, str]:
    """An agent status report about `computer_id`, published as `subject`."""
    body = AgentStatus(computer_id=computer_id, reported_at=datetime.now(UTC))
    envelope = Envelope.new(source=f"agent/{subject}", type=AGENT_STATUS.type, subject=subject)
    return to_amqp(envelope, body.model_dump_json().encode()), AGENT_STATUS.routing_key(subject)


async def test_services_and_console_work_under_their_own_users(
    broker: Broker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The four real services start, relay events and answer the real console; an agent's
    check-in under its own id is confirmed, routed to the scheduler, and its plan comes
    back to the agent's own queue."""

    def settings(name: str) -> Settings:
        return Settings(
            amqp_url=broker.service_url(name),
            database_url=broker.database_url,
            delivery_limit=DELIVERY_LIMIT,
            heartbeat_seconds=0.5,
            outbox_poll_seconds=0.2,
            rpc_timeout_seconds=5,
            content_dir=str(tmp_path / "content"),
        )

    processes = [
        ServiceProcess(service, settings(service.name), http_port=0)
        for service in (REPORTING, CATALOG, APPROVAL, SCHEDULER)  # reporting hears every heartbeat
    ]
    started: list[ServiceProcess] = []
    agent = await aio_pika.connect(broker.url(broker.agent))
    metrics.QUEUE_MESSAGES.clear()  # sampled again below, under the services' own users
    try:
        for process in processes:
            await process.start()
            started.append(process)
        for process in started:
            assert await process.readiness() == {"database": True, "broker": True}
        # Each service may still look at its own queues' depth, dead-letter queues included.
        names = [
            name
            for service in (REPORTING, CATALOG, APPROVAL, SCHEDULER)
            for queue in service.queues()
            for name in (queue, dead_letter_queue_name(queue))
        ]

        async def sampled() -> bool:
            return all(
                METRICS.get_sample_value("lockgate_queue_messages", {"queue": name}) is not None
                for name in names
            )

        await eventually(sampled, timeout=10, what="each service sampling its own queues")

        plans: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        listening = await agent.channel()
        own_queue = await listening.get_queue(agent_queue_name(broker.agent))

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            await plans.put(message)

        await own_queue.consume(on_message)

        sending = await agent.channel(publisher_confirms=True, on_return_raises=True)
        agents = await sending.get_exchange(Exchange.AGENTS.value, ensure=False)
        message, key = checkin(broker.agent)
        confirm = await agents.publish(message, routing_key=key, mandatory=True, timeout=5)
        assert isinstance(confirm, Basic.Ack)  # confirmed, and routed (else DeliveryError)

        plan = await asyncio.wait_for(plans.get(), 20)
        assert plan.routing_key == f"computer.{broker.agent}.plan.v1"
        assert (plan.headers or {}).get("ce-type") == "computer.plan.v1"

        async with (
            running_console(settings("console"), dead_letter_keeper=True) as console,
            httpx.AsyncClient(
                base_url=console.url,
                headers={"Authorization": f"Bearer {console.admin_token}"},
                timeout=10,
            ) as http,
        ):
            assert (await http.get("/readyz")).status_code == 200

            async def every_service_heard() -> bool:
                response = await http.get(PREFIX + "/services")
                assert response.status_code == 200, response.text
                heard = {i["service"] for i in response.json()["instances"]}
                return heard >= {s.name for s in SERVICES}

            await eventually(every_service_heard, timeout=15, what="heartbeats of all four")
            response = await http.get(f"{PREFIX}/computers/{broker.agent}/plan")
            assert response.status_code == 200, response.text
            assert response.json()["computer_id"] == broker.agent

            async def approval_placed_it() -> bool:  # it heard scheduler.computer.registered
                response = await http.get(f"{PREFIX}/computers/{broker.agent}/approvals")
                return response.status_code == 200

            await eventually(approval_placed_it, timeout=15, what="approval to know the computer")
    finally:
        await agent.close()
        for process in reversed(started):
            await process.stop()
    logged = capfd.readouterr()
    assert "ACCESS_REFUSED" not in logged.out + logged.err  # no refused publish, bind, consume


async def test_an_agent_speaks_and_listens_only_for_itself(
    broker: Broker, as_agent: AbstractConnection
) -> None:
    await declare_topology(broker.service_url("scheduler"), SCHEDULER)
    me, other = broker.agent, broker.other
    agents = Exchange.AGENTS.value

    # Under its own id: confirmed and routed to the scheduler's queue.
    channel = await as_agent.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.get_exchange(agents, ensure=False)
    message, key = status_of(me, me)
    scheduler = await connected(broker, "scheduler")
    try:
        reports = await (await scheduler.channel()).get_queue("scheduler.agent-reports")
        await reports.purge()
        assert isinstance(await exchange.publish(message, routing_key=key, timeout=5), Basic.Ack)
        got = await reports.get(timeout=5, fail=True)
        assert got is not None
        assert got.routing_key == key
        await got.ack()
    finally:
        await scheduler.close()

    # Another computer's id, even one that starts with its own: refused (403).
    message, key = status_of(other, other)
    text = await refused(as_agent, publishing(agents, key, message.body))
    assert f"access to topic '{key}'" in text
    # Instructions are the scheduler's to send, to anyone.
    await refused(as_agent, publishing(agents, f"computer.{other}.plan.v1"))
    await refused(as_agent, publishing(agents, f"computer.{me}.plan.v1"))
    # No other exchange, not even the default one (straight into any queue).
    await refused(as_agent, publishing(Exchange.EVENTS.value, "approval.approval.changed.v1"))
    await refused(as_agent, publishing("", "scheduler.agent-checkins"))

    # It binds its own queue to its own instructions only.
    mine = agent_queue_name(me)
    await refused(as_agent, binding(mine, agents, f"computer.{other}.#"))
    await refused(as_agent, binding(mine, agents, "#"))
    await refused(as_agent, binding(mine, agents, f"agent.{me}.#"))
    ok = await as_agent.channel()
    await (await ok.get_queue(mine)).bind(agents, routing_key=f"computer.{me}.install.v1")
    await ok.close()

    # It reads no queue but its own, declares nothing, and has no other vhost.
    await refused(as_agent, consuming("scheduler.agent-checkins"))
    await refused(as_agent, consuming(agent_queue_name(other)))
    await refused(as_agent, declaring_queue(mine + "-more"))
    await refused(as_agent, declaring_queue(""))
    await refused(as_agent, declaring_exchange(mine))
    with pytest.raises(AMQPError):
        await _connect(broker.url(me, vhost="/"))


async def test_a_service_user_keeps_to_its_own_queues_and_exchanges(broker: Broker) -> None:
    await declare_topology(broker.service_url("scheduler"), SCHEDULER)
    await declare_topology(broker.service_url("catalog"), CATALOG)
    catalog = await connected(broker, "catalog")
    reporting = await connected(broker, "reporting")
    scheduler = await connected(broker, "scheduler")
    console = await connected(broker, "console")
    try:
        # catalog: not another service's queue, nor an exchange it does not use.
        await refused(catalog, consuming("scheduler.agent-checkins"))
        await refused(catalog, declaring_queue("scheduler.extra"))
        await refused(
            catalog, publishing(Exchange.AGENTS.value, f"computer.{broker.agent}.plan.v1")
        )
        await refused(catalog, binding("catalog.commands", Exchange.EVENTS.value, "#"))
        # ... and on lockgate.events only its own events.
        await refused(catalog, publishing(Exchange.EVENTS.value, "approval.approval.changed.v1"))
        channel = await catalog.channel(publisher_confirms=True)
        events = await channel.get_exchange(Exchange.EVENTS.value, ensure=False)
        confirm = await events.publish(  # a key no queue binds: confirmed, not routed
            aio_pika.Message(b"{}"), routing_key="catalog.access-check.v1", mandatory=False
        )
        assert isinstance(confirm, Basic.Ack)

        # Only the scheduler instructs agents; it binds agent traffic, never instructions.
        await refused(
            reporting, publishing(Exchange.AGENTS.value, f"computer.{broker.agent}.install.v1")
        )
        await refused(reporting, consuming(agent_queue_name(broker.agent)))
        await refused(scheduler, binding("scheduler.agent-checkins", Exchange.AGENTS.value, "#"))
        await refused(
            scheduler,
            binding("scheduler.agent-checkins", Exchange.AGENTS.value, "computer.*.plan.v1"),
        )

        # The console sends commands, and replays only on lockgate.replay: no event, no
        # agent message of its own; a service never replays.
        await refused(console, publishing(Exchange.EVENTS.value, "catalog.update.published.v1"))
        await refused(console, publishing(Exchange.AGENTS.value, f"agent.{broker.agent}.status.v1"))
        await refused(catalog, publishing(Exchange.REPLAY.value, "scheduler.agent-checkins"))
        await refused(console, declaring_queue("console.anything"))
        await refused(console, consuming("catalog.commands"))
    finally:
        for connection in (catalog, reporting, scheduler, console):
            await connection.close()
