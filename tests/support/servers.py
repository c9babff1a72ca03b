"""Private PostgreSQL and RabbitMQ servers for fault tests: each on free ports and data dirs of
its own, always removed at the end, whatever happened; the shared servers (PostgreSQL on 5432,
rabbit@localhost on 5672) are never touched.

- `postgres_cluster()`: a PostgreSQL 15 primary made with Debian's postgresql-common
  (`pg_createcluster`), trust auth on 127.0.0.1; with `standby=True` also a streaming standby
  cloned by `pg_basebackup -R`. The services reach whichever is writable through
  `multi_host_url()` (libpq's and asyncpg's `target_session_attrs=read-write`).
- `rabbitmq_cluster(nodes)`: RabbitMQ nodes of our own (`lgt<hex>-<i>@localhost`) joined into
  one cluster, sharing the machine's Erlang cookie (copied into a private HOME) so
  `rabbitmqctl -n <node>` reaches them. aio-pika connects to one URL and a robust connection
  reconnects to that same URL, so a client that must survive the loss of its node needs
  something in front that forwards to a live node: a load balancer or DNS in production, a
  `tests.support.proxy.TcpProxy` with fallbacks in tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

PG_VERSION = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PG_ETC = Path(f"/etc/postgresql/{PG_VERSION}")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
SHARED_COOKIE = Path("/var/lib/rabbitmq/.erlang.cookie")

_PG_HBA = """\
# Written by tests/support/servers.py: a private test cluster, trust on loopback only.
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""

_PG_CONF = """\
# Written by tests/support/servers.py.
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '256MB'
hot_standby = on
max_connections = 200
shared_buffers = '64MB'
fsync = off
synchronous_commit = on
"""


class ServerError(RuntimeError):
    """A private server did not start, stop or answer as asked; carries the command's output."""


_HANDED_OUT: set[int] = set()


def _pg_ports_in_use() -> set[int]:
    """Ports every postgresql-common cluster on this machine is configured for, running or
    not (another test's private cluster may be starting on one right now)."""
    done = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False, timeout=30
    )
    ports: set[int] = set()
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2].isdigit():
            ports.add(int(fields[2]))
    return ports


def server_port() -> int:
    """A free TCP port for a server of ours, below the kernel's ephemeral range: a server
    stopped and started again must find its port free, and a `bind(0)` port may meanwhile
    be any process's source port. Never one handed out before in this process, nor one a
    PostgreSQL cluster is configured for."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    taken = _HANDED_OUT | _pg_ports_in_use()
    for _ in range(500):
        port = 20000 + secrets.randbelow(max(low - 20000, 1000))
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise ServerError(f"no free port between 20000 and {low}")


def _run(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if done.returncode != 0:
        raise ServerError(
            f"{' '.join(args)} exited {done.returncode}: "
            f"{done.stdout[-2000:]} {done.stderr[-2000:]}"
        )
    return done.stdout


def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll `check()` until true; ServerError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
            if check():
                return
        if time.monotonic() > deadline:
            raise ServerError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PgServer:
    """One postgresql-common cluster (`pg_lsclusters` shows it as 15/<name>)."""

    name: str
    port: int

    @property
    def data_dir(self) -> Path:
        return Path(f"/var/lib/postgresql/{PG_VERSION}/{self.name}")

    @property
    def conf_dir(self) -> Path:
        return PG_ETC / self.name

    def ctl(self, action: str, *extra: str) -> None:
        _run("pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.name, action, *extra)

    def psql(self, sql: str, db: str = "postgres") -> str:
        """One statement through psql; its unaligned, tuples-only output."""
        return _run(
            str(PG_BIN / "psql"),
            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
            "-XAtqc", sql,
            timeout=30,
        ).strip()  # fmt: skip

    def accepting(self) -> bool:
        done = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
            capture_output=True,
            check=False,
            timeout=10,
        )
        return done.returncode == 0

    def in_recovery(self) -> bool:
        return self.psql("SELECT pg_is_in_recovery()") == "t"

    def running(self) -> bool:
        done = subprocess.run(
            ["pg_ctlcluster", PG_VERSION, self.name, "status"],
            capture_output=True,
            check=False,
            timeout=30,
        )
        return done.returncode == 0

    def create(self) -> None:
        _run(
            "pg_createcluster", PG_VERSION, self.name,
            "-p", str(self.port), "--start-conf", "manual",
        )  # fmt: skip
        (self.conf_dir / "pg_hba.conf").write_text(_PG_HBA, encoding="utf-8")
        conf_d = self.conf_dir / "conf.d"
        conf_d.mkdir(exist_ok=True)
        (conf_d / "lockgate-tests.conf").write_text(_PG_CONF, encoding="utf-8")

    def start(self, timeout: float = 60) -> None:
        self.ctl("start")
        _wait(self.accepting, f"PostgreSQL {self.name} on {self.port}", timeout)

    def drop(self) -> None:
        """Remove the cluster (stopped at once first: its data is thrown away anyway)."""
        subprocess.run(
            [
                *("pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.name),
                *("stop", "-m", "immediate"),
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        subprocess.run(
            ["pg_dropcluster", "--stop", PG_VERSION, self.name],
            capture_output=True,
            check=False,
            timeout=120,
        )


@dataclass
class PgCluster:
    """A private primary, and a streaming standby when asked for one."""

    primary: PgServer
    standby: PgServer | None = None
    promoted: bool = False

    def _url(self, hosts: str, db: str, query: str = "") -> str:
        return f"postgresql://postgres@{hosts}/{quote(db, safe='')}{query}"

    def primary_url(self, db: str = "postgres") -> str:
        return self._url(f"127.0.0.1:{self.primary.port}", db)

    def standby_url(self, db: str = "postgres") -> str:
        return self._url(f"127.0.0.1:{self._standby().port}", db)

    def multi_host_url(self, db: str = "postgres") -> str:
        """Both servers; a client connects to whichever accepts writes."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self._standby().port}"
        return self._url(hosts, db, "?target_session_attrs=read-write")

    def _standby(self) -> PgServer:
        if self.standby is None:
            raise ServerError("this cluster has no standby: postgres_cluster(standby=True)")
        return self.standby

    def stop_primary(self, mode: str = "fast") -> None:
        """Stop the primary (`fast`: clients cut, WAL shipped; `immediate`: as a crash)."""
        self.primary.ctl("stop", "-m", mode)

    def start_primary(self) -> None:
        self.primary.start()

    def restart_primary(self, mode: str = "fast") -> None:
        self.stop_primary(mode)
        self.start_primary()

    def streaming(self) -> bool:
        """The standby is connected and streaming from the primary."""
        return self.primary.psql(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
        ) not in ("", "0")

    def replay_caught_up(self) -> bool:
        """The standby has replayed everything the primary has written so far."""
        lsn = self.primary.psql("SELECT pg_current_wal_lsn()")
        return self._standby().psql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t"

    def promote_standby(self, timeout: float = 60) -> None:
        """Make the standby a primary; returns once it accepts writes."""
        standby = self._standby()
        standby.ctl("promote")
        _wait(lambda: not standby.in_recovery(), f"{standby.name} to leave recovery", timeout)
        self.promoted = True


def _empty(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _pg_name() -> str:
    return f"lgt{secrets.token_hex(4)}"


@contextmanager
def postgres_cluster(*, standby: bool = False) -> Iterator[PgCluster]:
    """A private PostgreSQL 15 primary (and standby), dropped at the end whatever happens."""
    if shutil.which("pg_createcluster") is None:
        raise ServerError("postgresql-common's pg_createcluster is needed for a private cluster")
    name = _pg_name()
    primary = PgServer(name, server_port())
    replica = PgServer(f"{name}_standby", server_port()) if standby else None
    created: list[PgServer] = []
    try:
        created.append(primary)
        primary.create()
        primary.start()
        if replica is not None:
            created.append(replica)
            replica.create()
            _empty(replica.data_dir)  # the directory stays, owned by postgres, mode 0700
            _run(
                "runuser", "-u", "postgres", "--",
                str(PG_BIN / "pg_basebackup"),
                "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                "-D", str(replica.data_dir), "-R", "-X", "stream", "-c", "fast",
            )  # fmt: skip
            replica.start()
        cluster = PgCluster(primary, replica)
        if replica is not None:
            _wait(cluster.streaming, f"{replica.name} to stream from {primary.name}", 60)
        yield cluster
    finally:
        with ThreadPoolExecutor(max(1, len(created))) as pool:
            list(pool.map(PgServer.drop, created))


# --------------------------------------------------------------------------- RabbitMQ


@dataclass
class RabbitNode:
    """One private RabbitMQ node: its name, ports, directories and process."""

    index: int
    nodename: str
    port: int
    dist_port: int
    base: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """`rabbitmqctl -n <this node> ...`."""
        return _run(
            str(RABBIT_BIN / "rabbitmqctl"), "-n", self.nodename, *args,
            timeout=timeout, env=self.env,
        )  # fmt: skip

    def start(self) -> None:
        """Start the node's Erlang VM in a process group of its own (see `await_startup`)."""
        log = (self.base / "server.out").open("ab")
        self.process = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env,
            cwd=self.base,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def listening(self) -> bool:
        """The node's AMQP listener accepts connections (it opens near the end of boot)."""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def await_listening(self, timeout: float = 120) -> None:
        """Until the node accepts AMQP connections: cheaper than `rabbitmqctl await_startup`,
        each call of which boots an Erlang VM (seconds on a busy machine)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.listening():
            if self.process.poll() is not None:
                raise ServerError(f"{self.nodename} exited at start: {self.output()}")
            if time.monotonic() > deadline:
                raise ServerError(f"{self.nodename} not listening in {timeout} s: {self.output()}")
            time.sleep(0.2)

    def await_startup(self, timeout: float = 120) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"{self.nodename} exited at start: {self.output()}")
            try:
                self.ctl("await_startup", "--timeout", "10", timeout=30)
            except (ServerError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"{self.nodename} not started in {timeout} s: {self.output()}"
                    ) from None
                time.sleep(0.5)
            else:
                return

    def stop(self, timeout: float = 60) -> None:
        """Stop the whole node gracefully (SIGTERM: RabbitMQ shuts down as `rabbitmqctl stop`
        does, closing its clients' connections first), then make sure its process is gone."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                # rabbitmq-server traps TERM, stops the VM gracefully and waits for it.
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.process = None

    def kill(self) -> None:
        """SIGKILL the node's whole process group, as when its machine dies."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        self.process = None

    def output(self) -> str:
        path = self.base / "server.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@dataclass
class RabbitCluster:
    """Private RabbitMQ nodes clustered together; indexes count from 0."""

    nodes: list[RabbitNode] = field(default_factory=list)
    user: str = "guest"
    password: str = "guest"  # noqa: S105 - the default loopback-only test account

    def amqp_url(self, i: int = 0, vhost: str = "/") -> str:
        node = self.nodes[i]
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{node.port}/{quote(vhost, safe='')}"

    def amqp_urls(self, vhost: str = "/") -> list[str]:
        return [self.amqp_url(i, vhost) for i in range(len(self.nodes))]

    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def index_of(self, nodename: str) -> int:
        for node in self.nodes:
            if node.nodename == nodename:
                return node.index
        raise ServerError(f"{nodename!r} is not one of {[n.nodename for n in self.nodes]}")

    def running(self) -> list[RabbitNode]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """rabbitmqctl on the first node that runs."""
        alive = self.running()
        if not alive:
            raise ServerError("no node of the cluster runs")
        return alive[0].ctl(*args, timeout=timeout)

    def stop_app(self, i: int) -> None:
        """Stop RabbitMQ on node i (listeners close) while its Erlang VM stays up."""
        self.nodes[i].ctl("stop_app")

    def start_app(self, i: int) -> None:
        self.nodes[i].ctl("start_app")
        self.nodes[i].ctl("await_startup")

    def stop_node(self, i: int) -> None:
        self.nodes[i].stop()

    def kill_node(self, i: int) -> None:
        self.nodes[i].kill()

    def start_node(self, i: int, timeout: float = 120) -> None:
        """Start node i again; it rejoins the cluster from its own data."""
        self.nodes[i].start()
        self.nodes[i].await_listening(timeout)

    def add_vhost(self, vhost: str) -> None:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, self.user, ".*", ".*", ".*")

    def queues(self, vhost: str = "/") -> list[dict[str, object]]:
        """Every queue in `vhost`: name, type, leader, members, messages (rabbitmqctl)."""
        out = self.ctl(
            "list_queues", "-q", "-p", vhost,
            "name", "type", "leader", "members", "messages",
            "--formatter", "json",
        )  # fmt: skip
        rows: list[dict[str, object]] = json.loads(out or "[]")
        return rows

    def quorum_leader(self, queue: str, vhost: str = "/") -> int:
        """Index of the node that leads quorum queue `queue`."""
        for row in self.queues(vhost):
            if row.get("name") == queue:
                return self.index_of(str(row.get("leader")))
        raise ServerError(f"no queue {queue!r} in vhost {vhost!r}")

    def cluster_members(self) -> list[str]:
        status = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        running: list[str] = status.get("running_nodes", [])
        return sorted(running)


def _rabbit_node(base: Path, prefix: str, index: int, home: Path, plugins: Path) -> RabbitNode:
    """Node `index` of the cluster: every node after the first finds the first by classic
    peer discovery on its first boot and joins it (no stop_app/join_cluster/start_app)."""
    node_dir = base / f"node{index + 1}"
    (node_dir / "mnesia").mkdir(parents=True)
    (node_dir / "log").mkdir()
    port, dist_port = server_port(), server_port()
    config = node_dir / "rabbitmq.conf"
    lines = [
        f"listeners.tcp.1 = 127.0.0.1:{port}",
        "disk_free_limit.absolute = 50MB",
        "log.console = false",
        "log.file.level = info",
    ]
    if index > 0:
        lines += [
            "cluster_formation.peer_discovery_backend = classic_config",
            f"cluster_formation.classic_config.nodes.1 = {prefix}-1@localhost",
        ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env_file = node_dir / "rabbitmq-env.conf"
    env_file.write_text("# private test node: no settings from /etc/rabbitmq\n", encoding="utf-8")
    nodename = f"{prefix}-{index + 1}@localhost"
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("RABBITMQ_", "ERL_"))
    }
    env.update(
        HOME=str(home),
        ERL_EPMD_ADDRESS="127.0.0.1",
        RABBITMQ_CONF_ENV_FILE=str(env_file),
        RABBITMQ_NODENAME=nodename,
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist_port),
        RABBITMQ_MNESIA_BASE=str(node_dir / "mnesia"),
        RABBITMQ_LOG_BASE=str(node_dir / "log"),
        RABBITMQ_CONFIG_FILE=str(config),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(node_dir / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
        RABBITMQ_PID_FILE=str(node_dir / "pid"),
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
    )
    return RabbitNode(index, nodename, port, dist_port, node_dir, env)


@contextmanager
def rabbitmq_cluster(nodes: int = 1) -> Iterator[RabbitCluster]:
    """`nodes` private RabbitMQ nodes in one cluster; stopped and removed at the end."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        raise ServerError(f"RabbitMQ is needed for a private cluster ({RABBIT_BIN})")
    base = Path(tempfile.mkdtemp(prefix="lgt-rabbit-"))
    cluster = RabbitCluster()
    try:
        home = base / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        shutil.copyfile(SHARED_COOKIE, cookie)
        cookie.chmod(0o400)
        plugins = base / "enabled_plugins"
        plugins.write_text("[].\n", encoding="utf-8")
        prefix = f"lgt{secrets.token_hex(3)}"
        cluster.nodes = [_rabbit_node(base, prefix, i, home, plugins) for i in range(nodes)]
        first, *others = cluster.nodes
        first.start()
        first.await_listening()
        for node in others:
            node.start()
        for node in others:
            node.await_listening()
        if others:
            names = sorted(node.nodename for node in cluster.nodes)
            _wait(lambda: cluster.cluster_members() == names, f"cluster of {names}", 60)
        yield cluster
    finally:
        for node in cluster.nodes:
            node.kill()  # a throwaway cluster: no graceful stop needed, and none is slower
        for node in cluster.nodes:
            _forget_epmd(node)
        shutil.rmtree(base, ignore_errors=True)


def _forget_epmd(node: RabbitNode) -> None:
    """A node killed without stopping can stay registered in epmd for a moment; wait it out."""
    short = node.nodename.split("@", 1)[0]

    def gone() -> bool:
        names = _run("epmd", "-names", timeout=10)
        return f"name {short} " not in names

    with contextlib.suppress(ServerError):
        _wait(gone, f"{short} to leave epmd", 10)
