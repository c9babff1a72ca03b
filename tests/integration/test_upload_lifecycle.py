"""Uploads that end without commit, and content that survives crashes (issue 17 items 3, 5).

Real installers, real RabbitMQ and PostgreSQL: cancelling and expiry free the quota at once;
a crash between the commit and the move of the content into place is finished at restart;
the sweeper removes what no row names and reports rows whose file is gone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from libs.bus import Bus, RpcClient, RpcError
from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.contracts.api import PREFIX
from libs.db.pool import create_pool, drop_database, ensure_database
from libs.service import InvalidInput, TaskContext
from libs.service.clock import Clock, ManualClock
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.catalog import store
from services.catalog.domain.content import staged_name
from services.catalog.handlers import SERVICE as CATALOG
from services.catalog.store.content import LocalContentStore
from services.catalog.use_cases import content, uploads
from tests.integration.test_catalog_uploads import Catalog
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.installers import build_exe, build_msi
from tests.support.messages import eventually
from tests.support.processes import ROOT, ServiceRunner

pytestmark = pytest.mark.integration

HOUR = 3600.0


class Started:
    """One catalog process and the client a test drives it with."""

    def __init__(self, catalog: Catalog, process: ServiceProcess, url: str) -> None:
        self.catalog, self.process, self.url = catalog, process, url
        self.running = True

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.process.stop()


Start = Callable[..., Awaitable[Started]]


@pytest.fixture
async def start_catalog(infra: Infra, bus: Bus, tmp_path: Path) -> AsyncIterator[Start]:
    """Start catalogs sharing one content directory; `url=` starts one on an existing
    database (a restart), which is then dropped at the end like the others."""
    started: list[Started] = []
    connections: list[asyncpg.Connection] = []
    databases: list[str] = []

    async def start(
        *, url: str | None = None, clock: Clock | None = None, **settings: object
    ) -> Started:
        if url is None:
            url = f"{infra.database_url}_ul{uuid.uuid4().hex[:6]}"
            await ensure_database(url)
        if url not in databases:
            databases.append(url)  # dropped at the end, whoever created it
        configured = Settings(
            amqp_url=infra.amqp_url,
            database_url=url,
            heartbeat_seconds=60,
            content_dir=str(tmp_path / "content"),
        ).model_copy(update=settings)
        process = ServiceProcess(CATALOG, configured, http_port=0, clock=clock)
        await process.start()
        db = await asyncpg.connect(url)
        connections.append(db)
        rpc = RpcClient(bus, source="tests", timeout=30)
        one = Started(Catalog(rpc, db, tmp_path / "content", configured), process, url)
        started.append(one)
        return one

    yield start
    for db in connections:
        await db.close()
    for one in started:
        await one.stop()
    for url in databases:
        await drop_database(url)


@asynccontextmanager
async def tasks_of(one: Started) -> AsyncIterator[TaskContext]:
    """What the catalog's periodic tasks get, to run one of them here and read its result."""
    pool = await create_pool(one.url, "catalog", max_size=2)
    try:
        yield TaskContext(
            pool=pool,
            clock=one.process.clock,
            instance=one.process.instance,
            settings=one.catalog.settings,
        )
    finally:
        await pool.close()


def _exe(tmp_path: Path) -> bytes:
    return build_exe(
        tmp_path, product_name="Litware Sync", version="1.2.0.0", company="Litware", description="x"
    ).read_bytes()


async def _chunks(catalog: Catalog, upload_id: str) -> int:
    count: int = await catalog.db.fetchval(
        "SELECT count(*) FROM catalog.upload_chunks WHERE upload_id = $1::uuid", upload_id
    )
    return count


async def _state(catalog: Catalog, upload_id: str) -> u.UploadSession:
    return await catalog.rpc.call(u.GET_UPLOAD, u.UploadRef(upload_id=upload_id))


async def _start_partly(catalog: Catalog, installer: tuple[str, bytes]) -> u.UploadSession:
    """Declare an installer and send only its first 1000 bytes (an upload left half-way)."""
    name, data = installer
    session = await catalog.rpc.call(
        u.START_UPLOAD, u.StartUpload(installer=c.UploadFile(path=name, size=len(data)))
    )
    return await catalog.rpc.call(
        u.SEND_CHUNK,
        u.SendChunk(
            upload_id=session.upload_id,
            path=name,
            offset=0,
            data_b64=base64.b64encode(data[:1000]).decode(),
        ),
    )


async def _commit_msi(catalog: Catalog, tmp_path: Path, name: str) -> tuple[str, c.UpdateDetail]:
    built = build_msi(tmp_path, name=name, version="1.0.0", manufacturer="Litware")
    session = await catalog.upload(
        (f"{name.lower().replace(' ', '-')}.msi", built.path.read_bytes())
    )
    await catalog.rpc.call(
        u.SET_REQUIREMENTS,
        u.SetRequirements(
            upload_id=session.upload_id, architecture="x64", operating_systems=["Windows 11"]
        ),
    )
    detail = await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=session.upload_id))
    return session.upload_id, detail


async def test_cancel_frees_the_quota_and_the_bytes_at_once(
    start_catalog: Start, tmp_path: Path
) -> None:
    """An upload that would not fit beside an abandoned one fits once that one is cancelled;
    a cancelled upload takes no more steps, cancelling it again changes nothing, and a
    committed or unknown upload refuses, naming the upload."""
    exe = _exe(tmp_path)
    padding = bytes(200_000)
    one = await start_catalog(storage_quota_bytes=2 * len(exe) + 300_000)
    catalog = one.catalog
    first = await catalog.upload(("sync.exe", exe), [("payload.bin", padding)])
    assert first.state == "received"

    with pytest.raises(RpcError, match="storage quota exceeded"):
        await catalog.upload(("sync.exe", exe), [("payload.bin", padding)])

    cancelled = await catalog.rpc.call(u.CANCEL_UPLOAD, u.UploadRef(upload_id=first.upload_id))
    assert (cancelled.state, cancelled.received_bytes) == ("cancelled", 0)
    assert await _chunks(catalog, first.upload_id) == 0
    fits = await catalog.upload(("sync.exe", exe), [("payload.bin", padding)])
    assert fits.state == "received"

    again = await catalog.rpc.call(u.CANCEL_UPLOAD, u.UploadRef(upload_id=first.upload_id))
    assert again.state == "cancelled"
    with pytest.raises(RpcError, match=f"upload {first.upload_id} is cancelled"):
        await catalog.rpc.call(
            u.SET_COMMAND_LINE, u.SetCommandLine(upload_id=first.upload_id, arguments="/S")
        )

    await catalog.rpc.call(
        u.SET_REQUIREMENTS,
        u.SetRequirements(upload_id=fits.upload_id, architecture="x64", operating_systems=["W"]),
    )
    await catalog.rpc.call(
        u.SET_COMMAND_LINE, u.SetCommandLine(upload_id=fits.upload_id, arguments="/S")
    )
    detail = await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=fits.upload_id))
    with pytest.raises(RpcError, match=f"upload {fits.upload_id} is committed") as caught:
        await catalog.rpc.call(u.CANCEL_UPLOAD, u.UploadRef(upload_id=fits.upload_id))
    assert caught.value.body.error == "Conflict"
    assert detail.update.update_id in caught.value.body.message
    unknown = str(uuid.uuid4())
    with pytest.raises(RpcError, match=f"upload '{unknown}' does not exist") as caught:
        await catalog.rpc.call(u.CANCEL_UPLOAD, u.UploadRef(upload_id=unknown))
    assert (caught.value.body.error, caught.value.body.field) == ("NotFound", "upload_id")


async def test_cli_cancels_an_upload_and_the_api_refuses_what_cannot_be(
    start_catalog: Start, infra: Infra, tmp_path: Path
) -> None:
    """`lockgate --json upload cancel ID` ends a half-sent upload; over HTTP a committed
    upload answers 409 and an unknown one 404, each naming the upload."""
    one = await start_catalog()
    catalog = one.catalog
    half = await _start_partly(catalog, ("sync.exe", _exe(tmp_path)))
    assert (half.state, half.received_bytes) == ("receiving", 1000)
    committed_id, _ = await _commit_msi(catalog, tmp_path, "Litware Agent")
    unknown = str(uuid.uuid4())
    async with running_console(catalog.settings) as console:
        env = console.cli_env(infra.env())
        done = await _cli(["--json", "upload", "cancel", half.upload_id], env)
        refused = await _cli(["upload", "cancel", unknown], env)
        async with httpx.AsyncClient(
            base_url=console.url + PREFIX,
            headers={"Authorization": f"Bearer {console.admin_token}"},
            timeout=60,
        ) as http:
            conflict = await http.post(f"/uploads/{committed_id}/cancel")
            missing = await http.post(f"/uploads/{unknown}/cancel")
    assert done.returncode == 0, done.stderr
    ended = u.UploadSession.model_validate(json.loads(done.stdout))
    assert (ended.upload_id, ended.state, ended.received_bytes) == (half.upload_id, "cancelled", 0)
    assert await _chunks(catalog, half.upload_id) == 0
    assert refused.returncode == 1
    assert unknown in refused.stderr
    assert conflict.status_code == 409, conflict.text
    assert committed_id in conflict.text
    assert missing.status_code == 404, missing.text
    assert unknown in missing.text


async def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_abandoned_uploads_expire_and_free_the_quota(
    start_catalog: Start, tmp_path: Path
) -> None:
    """With no activity for LOCKGATE_UPLOAD_EXPIRY_HOURS (the catalog's clock moved past it),
    received and half-sent uploads expire, their bytes go, and what did not fit now fits."""
    exe = _exe(tmp_path)
    padding = bytes(200_000)
    clock = ManualClock(datetime.now(UTC))
    one = await start_catalog(
        clock=clock,
        storage_quota_bytes=len(exe) + 250_000,
        upload_expiry_hours=24,
        upload_sweep_seconds=0.2,
    )
    catalog = one.catalog
    received = await catalog.upload(("sync.exe", exe), [("payload.bin", padding)])
    half = await _start_partly(catalog, ("other.exe", exe))
    with pytest.raises(RpcError, match="storage quota exceeded"):
        await catalog.upload(("sync.exe", exe), [("payload.bin", padding)])

    clock.advance(timedelta(hours=23))
    async with tasks_of(one) as task:
        assert await uploads.expire_abandoned(task) == []  # 23 hours idle: not yet
    assert (await _state(catalog, received.upload_id)).state == "received"

    clock.advance(timedelta(hours=2))

    async def both_expired() -> bool:
        states = [(await _state(catalog, s.upload_id)).state for s in (received, half)]
        return states == ["expired", "expired"]

    await eventually(both_expired, timeout=60, what="both idle uploads to expire")
    for ended in (received, half):
        assert await _chunks(catalog, ended.upload_id) == 0
        assert (await _state(catalog, ended.upload_id)).received_bytes == 0
    fits = await catalog.upload(("sync.exe", exe), [("payload.bin", padding)])
    assert fits.state == "received"
    with pytest.raises(RpcError, match="is expired; this step needs it receiving or received"):
        await catalog.rpc.call(
            u.SET_COMMAND_LINE, u.SetCommandLine(upload_id=received.upload_id, arguments="/S")
        )


def _staged(content_dir: Path) -> list[str]:
    scratch = content_dir / "tmp"
    return sorted(p.name for p in scratch.iterdir()) if scratch.exists() else []


async def test_a_crash_around_the_commit_never_leaves_a_row_without_its_file(
    start_catalog: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failing before the commit leaves the upload resumable; failing between the commit and
    the move into place (the move never runs, as in a crash there) leaves the file staged
    under tmp/, and the restarted catalog moves it into place before anything else."""
    one = await start_catalog()
    catalog = one.catalog
    built = build_msi(tmp_path, name="Litware Viewer", version="3.0.0", manufacturer="Litware")
    data = built.path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    session = await catalog.upload(("viewer.msi", data))
    await catalog.rpc.call(
        u.SET_REQUIREMENTS,
        u.SetRequirements(
            upload_id=session.upload_id, architecture="x64", operating_systems=["Windows 11"]
        ),
    )

    async def fail_before_commit(*_: object, **__: object) -> None:
        raise InvalidInput("simulated failure inside the commit's transaction")

    monkeypatch.setattr(store.updates, "put_update", fail_before_commit)
    with pytest.raises(RpcError, match="simulated failure"):
        await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=session.upload_id))
    monkeypatch.undo()
    assert (await _state(catalog, session.upload_id)).state == "received"  # resumable
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.contents") == 0
    assert not (catalog.content / sha[:2] / sha).exists()

    def crash_before_the_move(*_: object) -> bool:
        raise OSError("simulated crash between the commit and the move into place")

    monkeypatch.setattr(LocalContentStore, "settle", crash_before_the_move)
    detail = await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=session.upload_id))
    assert detail.update.sha256 == sha
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.contents") == 1
    assert not (catalog.content / sha[:2] / sha).exists()
    assert any(name.startswith(f"{sha}.") for name in _staged(catalog.content))
    await one.stop()
    monkeypatch.undo()

    restarted = await start_catalog(url=one.url)

    async def settled() -> bool:
        staged = [name for name in _staged(catalog.content) if name.startswith(f"{sha}.")]
        return (catalog.content / sha[:2] / sha).exists() and not staged

    await eventually(settled, timeout=60, what="the restarted catalog to settle the content")
    assert (catalog.content / sha[:2] / sha).read_bytes() == data
    assert restarted.running


async def test_the_sweeper_removes_what_no_row_names_and_reports_rows_without_a_file(
    start_catalog: Start, tmp_path: Path
) -> None:
    """Past the grace period, temporary files and content no row names go; named content
    stays however old; young unnamed files stay (a commit may be about to name them); a row
    whose file is gone is reported."""
    one = await start_catalog()
    catalog = one.catalog
    _, detail = await _commit_msi(catalog, tmp_path, "Litware Tool")
    named = detail.update.sha256
    assert named is not None
    files = LocalContentStore(catalog.content)
    long_ago = time.time() - 2 * HOUR

    def plant(path: Path, data: bytes, *, old: bool) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if old:
            os.utime(path, (long_ago, long_ago))
        return path

    orphan = hashlib.sha256(b"orphan").hexdigest()
    young_orphan = hashlib.sha256(b"young orphan").hexdigest()
    gone = hashlib.sha256(b"gone").hexdigest()
    plant(files.path(orphan), b"orphan", old=True)
    plant(files.path(young_orphan), b"young orphan", old=False)
    old_staged = plant(files.scratch / staged_name(orphan, "1"), b"orphan", old=True)
    old_temporary = plant(files.scratch / "abandoned", b"half", old=True)
    young_temporary = plant(files.scratch / "assembling", b"half", old=False)
    os.utime(files.path(named), (long_ago, long_ago))
    await catalog.db.execute("INSERT INTO catalog.contents (sha256, size) VALUES ($1, 4)", gone)

    async with tasks_of(one) as task:
        report = await content.sweep(task)
        while report is None:  # the catalog's own sweep holds the lock right now
            await asyncio.sleep(0.1)
            report = await content.sweep(task)

    assert report.removed_orphans == [orphan]
    assert sorted(report.removed_temporary) == sorted(["abandoned", old_staged.name])
    assert report.missing == [gone]
    assert REGISTRY.get_sample_value("lockgate_catalog_content_missing") == 1
    assert not files.path(orphan).exists()
    assert not old_staged.exists()
    assert not old_temporary.exists()
    assert files.path(named).exists()
    assert files.path(young_orphan).exists()
    assert young_temporary.exists()


KILLED_BETWEEN_COMMIT_AND_MOVE = """
import os, signal
from libs.service.runner import main
from services.catalog.handlers import SERVICE
from services.catalog.store.content import LocalContentStore

def die(*_):  # the commit's transaction has committed; its content is still staged in tmp/
    os.kill(os.getpid(), signal.SIGKILL)

LocalContentStore.settle = die
main(SERVICE)
"""


class CatalogKilledBeforeTheMove(ServiceRunner):
    """The real catalog process, killed -9 at the first move of content into place."""

    def start(self) -> CatalogKilledBeforeTheMove:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", KILLED_BETWEEN_COMMIT_AND_MOVE],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self


async def test_kill_9_between_commit_and_move_is_finished_by_the_next_catalog(
    start_catalog: Start, infra: Infra, bus: Bus, tmp_path: Path
) -> None:
    """A catalog process killed -9 right after the commit, before the move: the row names
    content still staged under tmp/. The next catalog moves it into place, and answers the
    redelivered commit from its inbox with the update the first one committed."""
    url = f"{infra.database_url}_ul{uuid.uuid4().hex[:6]}"
    await ensure_database(url)
    content_dir = tmp_path / "content"
    doomed = CatalogKilledBeforeTheMove(
        "catalog",
        infra,
        tmp_path,
        LOCKGATE_DATABASE_URL=url,
        LOCKGATE_CONTENT_DIR=str(content_dir),
        LOCKGATE_HEARTBEAT_SECONDS="60",
    ).start()
    db = await asyncpg.connect(url)
    restarted = False
    try:
        await doomed.wait_ready()
        catalog = Catalog(RpcClient(bus, source="tests", timeout=120), db, content_dir, Settings())
        built = build_msi(tmp_path, name="Litware Probe", version="2.0.0", manufacturer="Litware")
        data = built.path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        session = await catalog.upload(("probe.msi", data))
        await catalog.rpc.call(
            u.SET_REQUIREMENTS,
            u.SetRequirements(
                upload_id=session.upload_id, architecture="x64", operating_systems=["Windows 11"]
            ),
        )
        commit = asyncio.create_task(
            catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=session.upload_id))
        )
        assert doomed.process is not None
        assert await asyncio.to_thread(doomed.process.wait, 120) == -signal.SIGKILL
        assert await db.fetchval("SELECT state FROM catalog.uploads") == "committed"
        assert await db.fetchval("SELECT sha256 FROM catalog.contents") == sha
        assert not (content_dir / sha[:2] / sha).exists()
        assert any(name.startswith(f"{sha}.") for name in _staged(content_dir))

        restarted = bool(await start_catalog(url=url))
        detail = await commit
        assert detail.update.sha256 == sha

        async def settled() -> bool:
            staged = [name for name in _staged(content_dir) if name.startswith(f"{sha}.")]
            return (content_dir / sha[:2] / sha).exists() and not staged

        await eventually(settled, timeout=60, what="the next catalog to settle the content")
        assert (content_dir / sha[:2] / sha).read_bytes() == data
    finally:
        doomed.stop_quietly()
        await db.close()
        if not restarted:  # the fixture drops it otherwise
            await drop_database(url)
