"""Third-party uploads end to end with real installers, against real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from libs.bus import Bus, RpcClient, RpcError
from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.db.pool import drop_database, ensure_database
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.catalog.handlers import SERVICE as CATALOG
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.installers import build_exe, build_msi
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024


class Catalog:
    """An in-process catalog with its own database and content directory."""

    def __init__(
        self, rpc: RpcClient, db: asyncpg.Connection, content: Path, settings: Settings
    ) -> None:
        self.rpc, self.db, self.content, self.settings = rpc, db, content, settings

    async def upload(
        self, installer: tuple[str, bytes], extra: list[tuple[str, bytes]] | None = None
    ) -> u.UploadSession:
        """Steps 1 and the content: declare the files, then send every byte in chunks."""
        files = [installer, *(extra or [])]
        session = await self.rpc.call(
            u.START_UPLOAD,
            u.StartUpload(
                installer=c.UploadFile(path=installer[0], size=len(installer[1])),
                extra_files=[c.UploadFile(path=p, size=len(d)) for p, d in extra or []],
            ),
        )
        for path, data in files:
            for offset in range(0, len(data), CHUNK):
                session = await self.rpc.call(
                    u.SEND_CHUNK,
                    u.SendChunk(
                        upload_id=session.upload_id,
                        path=path,
                        offset=offset,
                        data_b64=base64.b64encode(data[offset : offset + CHUNK]).decode(),
                    ),
                )
        return session

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT body FROM catalog.outbox WHERE routing_key = $1 ORDER BY seq", event_type
        )
        return [json.loads(bytes(row["body"])) for row in rows]


CatalogFactory = Callable[..., Any]


@pytest.fixture
async def catalog_with(infra: Infra, bus: Bus, tmp_path: Path) -> AsyncIterator[CatalogFactory]:
    """Start a catalog with a given storage quota (one per test)."""
    started: list[tuple[ServiceProcess, asyncpg.Connection, str]] = []

    async def start(quota: int = 10 * 1024**2) -> Catalog:
        url = f"{infra.database_url}_up{uuid.uuid4().hex[:6]}"
        await ensure_database(url)
        settings = Settings(
            amqp_url=infra.amqp_url,
            database_url=url,
            heartbeat_seconds=60,
            content_dir=str(tmp_path / "content"),
            storage_quota_bytes=quota,
        )
        process = ServiceProcess(CATALOG, settings, http_port=0)
        await process.start()
        db = await asyncpg.connect(url)
        started.append((process, db, url))
        return Catalog(
            RpcClient(bus, source="tests", timeout=30), db, tmp_path / "content", settings
        )

    yield start
    for process, db, url in started:
        await db.close()
        await process.stop()
        await drop_database(url)


async def test_msi_upload_end_to_end(catalog_with: CatalogFactory, tmp_path: Path) -> None:
    """A real MSI: its metadata is read from the Property table, it is stored by sha256 and
    published as an update other services can approve."""
    catalog: Catalog = await catalog_with()
    built = build_msi(tmp_path, name="Contoso Viewer", version="2.4.1", manufacturer="Contoso")
    data = built.path.read_bytes()
    session = await catalog.upload(("viewer.msi", data))
    assert session.state == "received"
    assert session.total_bytes == len(data)
    assert session.extracted is not None
    assert (
        session.extracted.product_name,
        session.extracted.version,
        session.extracted.manufacturer,
        session.extracted.product_code,
    ) == ("Contoso Viewer", "2.4.1", "Contoso", built.product_code)
    assert session.title == "Contoso Viewer 2.4.1"
    assert session.missing == ["requirements"]

    with pytest.raises(RpcError, match=r"not asked for \.msi"):
        await catalog.rpc.call(u.SET_DETECTION, u.SetDetectionRules(upload_id=session.upload_id))
    await catalog.rpc.call(
        u.DESCRIBE, u.Describe(upload_id=session.upload_id, classification="Security Updates")
    )
    with pytest.raises(RpcError, match="greater than or equal to 0") as caught:
        await catalog.rpc.call(
            u.SET_REQUIREMENTS,
            u.SetRequirements.model_construct(
                upload_id=session.upload_id,
                architecture="x64",
                operating_systems=["Windows 11"],
                min_free_disk_bytes=-1,
                min_memory_bytes=None,
            ),
        )
    assert "min_free_disk_bytes" in caught.value.body.message
    assert "-1" in caught.value.body.message
    answered = await catalog.rpc.call(
        u.SET_REQUIREMENTS,
        u.SetRequirements(
            upload_id=session.upload_id,
            architecture="x64",
            operating_systems=["Windows 11"],
            min_free_disk_bytes=500_000_000,
            min_memory_bytes=2 * 1024**3,
        ),
    )
    assert (answered.min_free_disk_bytes, answered.min_memory_bytes) == (500_000_000, 2 * 1024**3)
    detail = await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=session.upload_id))

    update = detail.update
    sha = hashlib.sha256(data).hexdigest()
    assert (update.origin, update.title, update.classification) == (
        "third_party",
        "Contoso Viewer 2.4.1",
        "Security Updates",
    )
    assert (update.sha256, update.size_bytes) == (sha, len(data))
    assert update.package is not None
    assert update.package.kind == "msi"
    assert (update.package.min_free_disk_bytes, update.package.min_memory_bytes) == (
        500_000_000,
        2 * 1024**3,
    )
    assert [r.code for r in update.return_codes] == [0, 3010]
    assert (catalog.content / sha[:2] / sha).read_bytes() == data
    published = await catalog.events(c.UPDATE_PUBLISHED.type)
    assert [e["update"]["update_id"] for e in published] == [update.update_id]
    package = c.UpdatePublished.model_validate(published[0]).update.package
    assert package is not None
    assert (package.min_free_disk_bytes, package.min_memory_bytes) == (500_000_000, 2 * 1024**3)
    assert published[0]["update"]["offered"] is True  # third-party: always (product.md 2)
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.upload_chunks") == 0


async def test_exe_upload_needs_a_silent_command_line(
    catalog_with: CatalogFactory, tmp_path: Path
) -> None:
    """A real EXE: version-resource metadata, extra files, detection rules, return codes,
    and no commit until it has a silent switch."""
    catalog: Catalog = await catalog_with()
    exe = build_exe(
        tmp_path,
        product_name="Fabrikam Tool",
        version="5.1.0.7",
        company="Fabrikam",
        description="Fabrikam maintenance tool",
    ).read_bytes()
    session = await catalog.upload(("setup.exe", exe), [("docs/readme.txt", b"read me\n")])
    assert session.extracted is not None
    assert (
        session.extracted.product_name,
        session.extracted.version,
        session.extracted.manufacturer,
        session.extracted.description,
    ) == ("Fabrikam Tool", "5.1.0.7", "Fabrikam", "Fabrikam maintenance tool")
    upload_id = session.upload_id
    await catalog.rpc.call(
        u.SET_REQUIREMENTS,
        u.SetRequirements(
            upload_id=upload_id, architecture="both", operating_systems=["Windows 10", "Windows 11"]
        ),
    )
    with pytest.raises(RpcError, match="cannot be committed yet: missing command_line"):
        await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=upload_id))
    with pytest.raises(RpcError, match="give its silent switch") as caught:
        await catalog.rpc.call(
            u.SET_COMMAND_LINE, u.SetCommandLine(upload_id=upload_id, arguments=" ")
        )
    assert caught.value.body.field == "arguments"
    await catalog.rpc.call(
        u.SET_COMMAND_LINE, u.SetCommandLine(upload_id=upload_id, arguments="/S")
    )
    with pytest.raises(RpcError, match="is not an MSI product code"):
        await catalog.rpc.call(
            u.SET_DETECTION,
            u.SetDetectionRules(
                upload_id=upload_id,
                rules=[c.DetectionRule(kind="msi_product_code", value="not-a-guid")],
            ),
        )
    await catalog.rpc.call(
        u.SET_DETECTION,
        u.SetDetectionRules(
            upload_id=upload_id,
            rules=[
                c.DetectionRule(kind="file_exists", value="C:\\Program Files\\Fabrikam\\tool.exe")
            ],
        ),
    )
    await catalog.rpc.call(
        u.SET_RETURN_CODES,
        u.SetReturnCodes(
            upload_id=upload_id, codes=[c.ReturnCode(code=1641, outcome="success_restart_required")]
        ),
    )
    summary = await catalog.rpc.call(u.GET_UPLOAD, u.UploadRef(upload_id=upload_id))
    assert summary.total_bytes == len(exe) + len(b"read me\n")
    assert summary.missing == []
    detail = await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=upload_id))
    package = detail.update.package
    assert package is not None
    assert (package.command_line, [f.path for f in package.files]) == (
        "/S",
        ["setup.exe", "docs/readme.txt"],
    )
    assert [r.code for r in detail.update.return_codes] == [0, 1641, 3010]
    assert package.detection_rules[0].kind == "file_exists"


async def test_quota_refuses_during_upload_and_keeps_nothing(
    catalog_with: CatalogFactory, tmp_path: Path
) -> None:
    """Space runs out mid-upload: the chunk that would pass the quota is refused with a clear
    error, the upload is cancelled and none of its bytes stay stored."""
    catalog: Catalog = await catalog_with(quota=150_000)
    exe = build_exe(
        tmp_path, product_name="Big", version="1.0", company="Big Co", description="big"
    ).read_bytes()
    padding = bytes(200_000)
    with pytest.raises(RpcError, match="storage quota exceeded") as caught:
        await catalog.upload(("big.exe", exe), [("payload.bin", padding)])
    assert caught.value.body.error == "QuotaExceeded"
    rows = await catalog.db.fetch("SELECT upload_id, state, refusal FROM catalog.uploads")
    assert [row["state"] for row in rows] == ["refused"]
    assert "quota is 150000 bytes" in rows[0]["refusal"]
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.upload_chunks") == 0
    with pytest.raises(RpcError, match="is refused; this step needs it receiving"):
        await catalog.rpc.call(
            u.SEND_CHUNK,
            u.SendChunk(
                upload_id=str(rows[0]["upload_id"]), path="big.exe", offset=0, data_b64="AA=="
            ),
        )


async def test_only_third_party_updates_can_be_edited_or_deleted(
    catalog_with: CatalogFactory, tmp_path: Path
) -> None:
    """Microsoft updates refuse edit and delete; a third-party one is revised, then deleted
    with its content."""
    catalog: Catalog = await catalog_with()
    jan = (ROOT / "data" / "msrc" / "cvrf-2026-Jan.xml").read_bytes()
    await catalog.rpc.call(
        c.IMPORT_DOCUMENT,
        c.ImportDocument(content_gzip_b64=base64.b64encode(gzip.compress(jan)).decode()),
        timeout=120,
    )
    microsoft = (await catalog.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=1))).updates[0]
    with pytest.raises(
        RpcError, match="is a Microsoft update: only third-party updates can be edited"
    ):
        await catalog.rpc.call(
            u.EDIT_UPDATE, u.EditUpdate(update=microsoft.update_id, title="mine now")
        )
    with pytest.raises(RpcError, match="can be deleted"):
        await catalog.rpc.call(u.DELETE_UPDATE, u.DeleteUpdate(update=microsoft.update_id))

    built = build_msi(tmp_path, name="Tailspin Agent", version="1.0.0", manufacturer="Tailspin")
    session = await catalog.upload(("agent.msi", built.path.read_bytes()))
    await catalog.rpc.call(
        u.SET_REQUIREMENTS,
        u.SetRequirements(
            upload_id=session.upload_id, architecture="x64", operating_systems=["Windows 11"]
        ),
    )
    created = await catalog.rpc.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=session.upload_id))
    update_id = created.update.update_id
    edited = await catalog.rpc.call(
        u.EDIT_UPDATE,
        u.EditUpdate(update=update_id, title="Tailspin Agent (pilot)", command_line="/qn"),
    )
    assert (edited.update.revision, edited.update.title) == (2, "Tailspin Agent (pilot)")
    assert edited.update.package is not None
    assert edited.update.package.command_line == "/qn"
    assert [e["previous_revision"] for e in await catalog.events(c.UPDATE_REVISED.type)] == [1]

    sha = created.update.sha256
    assert sha is not None
    deleted = await catalog.rpc.call(u.DELETE_UPDATE, u.DeleteUpdate(update=update_id))
    assert deleted.freed_bytes == created.update.size_bytes
    assert not (catalog.content / sha[:2] / sha).exists()
    assert [e["update_id"] for e in await catalog.events(c.UPDATE_DELETED.type)] == [update_id]
    with pytest.raises(RpcError, match="is not in the catalog"):
        await catalog.rpc.call(c.GET_UPDATE, c.GetUpdate(update=update_id))


async def test_bad_uploads_are_refused_naming_the_problem(
    catalog_with: CatalogFactory, tmp_path: Path
) -> None:
    """Wrong extension, '..' in a path, an empty file and a corrupt installer each get a clear
    error, and a corrupt installer leaves nothing stored."""
    catalog: Catalog = await catalog_with()
    with pytest.raises(RpcError, match=r"allowed extensions are \.msi, \.msp, \.exe") as caught:
        await catalog.upload(("tool.zip", b"PK"))
    assert caught.value.body.field == "installer.path"
    with pytest.raises(RpcError, match=r"without '\.\.'") as caught:
        await catalog.upload(("ok.msi", b"x"), [("../../etc/passwd", b"x")])
    assert caught.value.body.field == "extra_files[0].path"
    with pytest.raises(RpcError, match="greater than 0"):
        await catalog.rpc.call(
            u.START_UPLOAD,
            u.StartUpload.model_construct(
                installer=c.UploadFile.model_construct(path="empty.msi", size=0), extra_files=[]
            ),
        )
    exe = build_exe(
        tmp_path, product_name="X", version="1.0", company="X", description="x"
    ).read_bytes()
    with pytest.raises(RpcError, match=r"fake\.msi") as caught:
        await catalog.upload(("fake.msi", exe))
    assert caught.value.body.field == "installer"
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.upload_chunks") == 0
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.contents") == 0
    assert (
        await catalog.db.fetchval("SELECT count(*) FROM catalog.uploads WHERE state = 'refused'")
        == 1
    )


async def test_cli_uploads_a_real_exe(
    catalog_with: CatalogFactory, infra: Infra, tmp_path: Path
) -> None:
    """The operator's command runs every step and publishes the update in one go."""
    catalog: Catalog = await catalog_with()
    exe = build_exe(
        tmp_path,
        product_name="Northwind Sync",
        version="3.2.0.0",
        company="Northwind",
        description="sync client",
    )
    readme = exe.parent / "notes" / "readme.txt"
    readme.parent.mkdir()
    readme.write_text("notes\n")
    async with running_console(catalog.settings) as console:
        done = await _cli_upload(exe, readme, console.cli_env(infra.env()))
    assert done.returncode == 0, done.stderr
    update = c.UpdateDetail.model_validate_json(done.stdout).update
    assert update.title == "Northwind Sync 3.2.0.0"
    assert update.package is not None
    assert [f.path for f in update.package.files] == [exe.name, "notes/readme.txt"]
    assert [r.code for r in update.return_codes] == [0, 1641, 3010]
    assert (update.package.min_free_disk_bytes, update.package.min_memory_bytes) == (
        500_000_000,
        2 * 1024**3,
    )
    # "Updates" is not among the default classifications: third-party updates are offered
    # all the same (docs/product.md section 2).
    assert (update.classification, update.offered) == ("Updates", True)
    listed = await catalog.rpc.call(c.LIST_UPDATES, c.ListUpdates(origin="third_party"))
    assert [u.update_id for u in listed.updates] == [update.update_id]


async def _cli_upload(
    exe: Path, readme: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "--json",
            "upload",
            str(exe),
            "--extra",
            str(readme),
            "--arch",
            "x64",
            "--os",
            "Windows 11",
            "--min-disk",
            "500MB",
            "--min-memory",
            "2GiB",
            "--command-line",
            "/S",
            "--detect",
            "registry_key=HKLM\\Software\\Northwind\\Sync",
            "--return-code",
            "1641=success_restart_required",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
