"""What the console's overview and upload wizard read from the catalog, against real RabbitMQ
and PostgreSQL: recent imports with their counts, recent uploads by state, and an upload
interrupted after one chunk that resumes where it stopped, through a catalog restart."""

from __future__ import annotations

import base64
import gzip
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from libs.bus import Bus, RpcClient, RpcError
from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.contracts.api import PREFIX
from libs.db.pool import drop_database, ensure_database
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.catalog.handlers import SERVICE as CATALOG
from tests.integration.test_catalog_msrc import FEB, JAN, import_request
from tests.integration.test_catalog_uploads import CHUNK, Catalog
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.installers import build_exe, build_msi

pytestmark = pytest.mark.integration

EXPIRY_HOURS = 24.0


class Running:
    """A catalog on a database of its own; `restart()` stops it and starts a new process on
    the same database and content directory (nothing kept in memory survives)."""

    def __init__(self, settings: Settings, bus: Bus) -> None:
        self.settings, self.bus = settings, bus
        self.process: ServiceProcess | None = None
        self.db: asyncpg.Connection | None = None

    async def start(self) -> Catalog:
        self.process = ServiceProcess(CATALOG, self.settings, http_port=0)
        await self.process.start()
        if self.db is None:
            self.db = await asyncpg.connect(self.settings.database_url)
        rpc = RpcClient(self.bus, source="tests", timeout=60)
        return Catalog(rpc, self.db, Path(self.settings.content_dir), self.settings)

    async def restart(self) -> Catalog:
        await self.stop()
        return await self.start()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()
            self.process = None


@pytest.fixture
async def running(infra: Infra, bus: Bus, tmp_path: Path) -> AsyncIterator[Running]:
    url = f"{infra.database_url}_rc{uuid.uuid4().hex[:6]}"
    await ensure_database(url)
    one = Running(
        Settings(
            amqp_url=infra.amqp_url,
            database_url=url,
            heartbeat_seconds=60,
            content_dir=str(tmp_path / "content"),
            upload_expiry_hours=EXPIRY_HOURS,
        ),
        bus,
    )
    try:
        yield one
    finally:
        await one.stop()
        if one.db is not None:
            await one.db.close()
        await drop_database(url)


@asynccontextmanager
async def http_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The console in front of the catalog, and an admin's client of its API."""
    async with (
        running_console(settings) as console,
        httpx.AsyncClient(
            base_url=console.url + PREFIX,
            headers={"Authorization": f"Bearer {console.admin_token}"},
            timeout=120,
        ) as http,
    ):
        yield http


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def counts(result: c.ImportResult) -> c.ImportResult:
    """The ImportResult part of a record (or the result itself)."""
    return c.ImportResult.model_validate(
        result.model_dump(include=set(c.ImportResult.model_fields))
    )


async def test_every_import_is_listed_newest_first_with_its_counts(running: Running) -> None:
    """January through the HTTP API, February and January again over RPC: three records,
    newest first, each with the counts its import answered, who sent it, the document's
    hash and how long it took; a refused document leaves no record; `limit` bounds the list."""
    catalog = await running.start()
    async with http_api(running.settings) as http:
        jan = c.ImportResult.model_validate(
            ok(await http.post("/catalog/imports", json=import_request(JAN).model_dump()))
        )
        feb = await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(FEB))
        again = await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
        raw = JAN.read_bytes()
        cut = c.ImportDocument(
            content_gzip_b64=base64.b64encode(gzip.compress(raw[: len(raw) // 2])).decode(),
            label="half.xml",
        )
        with pytest.raises(RpcError, match=r"half\.xml"):
            await catalog.rpc.call(c.IMPORT_DOCUMENT, cut)

        listed = await catalog.rpc.call(c.LIST_IMPORTS, c.ListImports())
        over_http = c.ImportList.model_validate(ok(await http.get("/catalog/imports")))
        two = c.ImportList.model_validate(ok(await http.get("/catalog/imports?limit=2")))
        too_many = await http.get("/catalog/imports?limit=201")
        none = await http.get("/catalog/imports?limit=0")

    records = listed.imports
    assert [counts(r) for r in records] == [again, feb, jan]
    assert jan.published > 0
    assert feb.published > 0
    assert (again.published, again.revised, again.unchanged) == (0, 0, again.updates_in_document)
    assert [r.document_id for r in records] == ["2026-Jan", "2026-Feb", "2026-Jan"]
    assert [r.sent_by for r in records] == ["tests", "tests", "lockgate/console"]
    assert [r.label for r in records] == [JAN.name, FEB.name, JAN.name]
    assert {r.source for r in records} == {"msrc"}
    assert [r.sha256 for r in records] == [
        hashlib.sha256(path.read_bytes()).hexdigest() for path in (JAN, FEB, JAN)
    ]
    assert records[0].title == records[2].title != records[1].title
    assert records[1].release_date > records[0].release_date == records[2].release_date
    assert records[0].imported_at > records[1].imported_at > records[2].imported_at
    assert records[0].import_id > records[1].import_id > records[2].import_id
    assert all(r.duration_seconds > 0 for r in records)
    assert over_http == listed
    assert two.imports == records[:2]
    assert (await catalog.rpc.call(c.LIST_IMPORTS, c.ListImports(limit=1))).imports == [records[0]]
    assert too_many.status_code == 422, too_many.text
    assert none.status_code == 422, none.text
    assert "limit" in too_many.text


async def _start(catalog: Catalog, name: str, data: bytes, first: int) -> u.UploadSession:
    """Declare one installer and send only its first `first` bytes."""
    session = await catalog.rpc.call(
        u.START_UPLOAD, u.StartUpload(installer=c.UploadFile(path=name, size=len(data)))
    )
    return await catalog.rpc.call(
        u.SEND_CHUNK,
        u.SendChunk(
            upload_id=session.upload_id,
            path=name,
            offset=0,
            data_b64=base64.b64encode(data[:first]).decode(),
        ),
    )


async def test_uploads_are_listed_newest_first_and_filtered_by_state(
    running: Running, tmp_path: Path
) -> None:
    """Cancelled, received, receiving and committed uploads, started in that order, list
    newest first; `states` keeps those in the states given (empty: all), `limit` bounds the
    list, and each entry is the session GET /uploads/{upload_id} shows."""
    catalog = await running.start()
    exe = build_exe(
        tmp_path, product_name="Litware Sync", version="1.2.0.0", company="Litware", description="x"
    ).read_bytes()
    cancelled = await _start(catalog, "sync.exe", exe, 1000)
    await catalog.rpc.call(u.CANCEL_UPLOAD, u.UploadRef(upload_id=cancelled.upload_id))
    received = await catalog.upload(("sync.exe", exe))
    receiving = await _start(catalog, "other.exe", exe, 1000)
    msi = build_msi(tmp_path, name="Contoso Viewer", version="2.4.1", manufacturer="Contoso")
    committed = await catalog.upload(("viewer.msi", msi.path.read_bytes()))
    await catalog.rpc.call(
        u.SET_REQUIREMENTS,
        u.SetRequirements(
            upload_id=committed.upload_id, architecture="x64", operating_systems=["Windows 11"]
        ),
    )
    await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=committed.upload_id))
    newest_first = [committed, receiving, received, cancelled]

    async def listed(**asked: Any) -> list[u.UploadSession]:
        return (await catalog.rpc.call(u.LIST_UPLOADS, u.ListUploads(**asked))).uploads

    every = await listed()
    assert [s.upload_id for s in every] == [s.upload_id for s in newest_first]
    assert [s.state for s in every] == ["committed", "receiving", "received", "cancelled"]
    shown = [
        await catalog.rpc.call(u.GET_UPLOAD, u.UploadRef(upload_id=s.upload_id))
        for s in newest_first
    ]
    assert every == shown
    created = [s.created_at for s in every if s.created_at is not None]
    assert len(created) == len(every)
    assert sorted(created, reverse=True) == created
    assert [s.upload_id for s in await listed(states=["receiving", "received"])] == [
        receiving.upload_id,
        received.upload_id,
    ]
    assert [s.upload_id for s in await listed(states=["cancelled", "committed"])] == [
        committed.upload_id,
        cancelled.upload_id,
    ]
    assert await listed(states=["expired"]) == []
    assert [s.upload_id for s in await listed(limit=2)] == [
        committed.upload_id,
        receiving.upload_id,
    ]

    async with http_api(running.settings) as http:
        open_ones = u.UploadList.model_validate(
            ok(await http.get("/uploads?states=receiving&states=received&limit=1"))
        )
        all_of_them = u.UploadList.model_validate(ok(await http.get("/uploads")))
        unknown = await http.get("/uploads?states=paused")
    assert [s.upload_id for s in open_ones.uploads] == [receiving.upload_id]
    assert all_of_them.uploads == every
    assert unknown.status_code == 422, unknown.text
    assert "paused" in unknown.text


async def test_an_upload_interrupted_after_one_chunk_resumes_from_there_to_commit(
    running: Running, tmp_path: Path
) -> None:
    """The wizard stops after the installer's first chunk and a description; the catalog
    restarts. GET /uploads/{upload_id} then tells each file's offset, the steps answered and
    when the upload expires; sending from a wrong offset is refused naming the right one;
    the wizard sends the rest from the offsets given, sees the installer's metadata, answers
    the remaining steps and commits."""
    catalog = await running.start()
    exe = build_exe(
        tmp_path,
        product_name="Litware Sync",
        version="1.2.0.0",
        company="Litware",
        description="Litware file sync",
    ).read_bytes()
    readme = b"Litware Sync: read me first.\n" * 100
    first = min(CHUNK, len(exe) // 2)
    started = await catalog.rpc.call(
        u.START_UPLOAD,
        u.StartUpload(
            installer=c.UploadFile(path="sync.exe", size=len(exe)),
            extra_files=[c.UploadFile(path="docs/readme.txt", size=len(readme))],
        ),
    )
    upload_id = started.upload_id
    assert [(f.path, f.received_bytes) for f in started.file_progress] == [
        ("sync.exe", 0),
        ("docs/readme.txt", 0),
    ]
    await catalog.rpc.call(
        u.SEND_CHUNK,
        u.SendChunk(
            upload_id=upload_id,
            path="sync.exe",
            offset=0,
            data_b64=base64.b64encode(exe[:first]).decode(),
        ),
    )
    await catalog.rpc.call(u.DESCRIBE, u.Describe(upload_id=upload_id, title="Litware Sync pilot"))

    await running.restart()
    async with http_api(running.settings) as http:
        resumed = u.UploadSession.model_validate(ok(await http.get(f"/uploads/{upload_id}")))
        listed = u.UploadList.model_validate(ok(await http.get("/uploads?states=receiving")))
        wrong = await http.post(
            f"/uploads/{upload_id}/chunks",
            json={
                "path": "sync.exe",
                "offset": 0,
                "data_b64": base64.b64encode(exe[:first]).decode(),
            },
        )

        assert resumed.state == "receiving"
        assert [(f.path, f.size, f.received_bytes) for f in resumed.file_progress] == [
            ("sync.exe", len(exe), first),
            ("docs/readme.txt", len(readme), 0),
        ]
        assert resumed.received_bytes == first
        assert resumed.total_bytes == len(exe) + len(readme)
        assert resumed.answered == ["description"]
        assert (resumed.title, resumed.classification) == ("Litware Sync pilot", "Updates")
        assert resumed.extracted is None, "read once every byte arrived"
        assert resumed.missing[:2] == ["content", "requirements"]
        assert resumed.created_at is not None
        assert resumed.updated_at is not None
        assert resumed.expires_at == resumed.updated_at + timedelta(hours=EXPIRY_HOURS)
        assert listed.uploads == [resumed]
        assert wrong.status_code == 409, wrong.text
        assert f"send offset {first}" in wrong.text

        contents = {"sync.exe": exe, "docs/readme.txt": readme}
        session = resumed
        for progress in resumed.file_progress:
            data = contents[progress.path]
            for offset in range(progress.received_bytes, len(data), CHUNK):
                session = u.UploadSession.model_validate(
                    ok(
                        await http.post(
                            f"/uploads/{upload_id}/chunks",
                            json={
                                "path": progress.path,
                                "offset": offset,
                                "data_b64": base64.b64encode(
                                    data[offset : offset + CHUNK]
                                ).decode(),
                            },
                        )
                    )
                )
        assert session.state == "received"
        assert [f.received_bytes for f in session.file_progress] == [len(exe), len(readme)]
        assert session.received_bytes == session.total_bytes
        assert session.extracted is not None
        assert (session.extracted.product_name, session.extracted.version) == (
            "Litware Sync",
            "1.2.0.0",
        )
        assert session.extracted.description == "Litware file sync"
        assert session.title == "Litware Sync pilot", "the operator's answer stays"

        ok(
            await http.put(
                f"/uploads/{upload_id}/requirements",
                json={"architecture": "x64", "operating_systems": ["Windows 11"]},
            )
        )
        ok(await http.put(f"/uploads/{upload_id}/command-line", json={"arguments": "/S"}))
        ready = u.UploadSession.model_validate(ok(await http.get(f"/uploads/{upload_id}")))
        assert ready.answered == ["description", "requirements", "command_line"]
        assert ready.missing == []
        detail = c.UpdateDetail.model_validate(ok(await http.post(f"/uploads/{upload_id}/commit")))
        done = u.UploadSession.model_validate(ok(await http.get(f"/uploads/{upload_id}")))

    assert detail.update.title == "Litware Sync pilot"
    assert detail.update.package is not None
    assert [(f.path, f.size) for f in detail.update.package.files] == [
        ("sync.exe", len(exe)),
        ("docs/readme.txt", len(readme)),
    ]
    assert (done.state, done.update_id, done.expires_at) == (
        "committed",
        detail.update.update_id,
        None,
    )
    assert [f.received_bytes for f in done.file_progress] == [len(exe), len(readme)]
