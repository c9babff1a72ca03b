"""`lockgate catalog import-msrc <folder>` against a running catalog and console, on real
RabbitMQ and PostgreSQL: the folder a disconnected network receives is verified against its
SHA256SUMS, then every document is imported in release order; a folder that did not arrive
intact imports nothing at all."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from libs.db.pool import drop_database, ensure_database
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.catalog.handlers import SERVICE as CATALOG
from services.catalog.sources.manifest import MANIFEST_NAME
from tests.integration.test_catalog_msrc import DATA, FEB, JAN, expected
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Site:
    """A catalog service (in this event loop, on a database of its own), the console in
    front of it, the environment `lockgate` runs with, and the catalog's database."""

    env: dict[str, str]
    db: asyncpg.Connection

    async def lockgate(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.cli.main", "--json", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    async def imported(self) -> tuple[int, int]:
        """(imports recorded, updates in the catalog)."""
        imports = await self.db.fetchval("SELECT count(*) FROM catalog.imports")
        updates = await self.db.fetchval("SELECT count(*) FROM catalog.updates")
        return int(imports), int(updates)


@pytest.fixture
async def site(infra: Infra, request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    url = infra.database_url + "_fold" + str(abs(hash(request.node.name)) % 10_000)
    await ensure_database(url)
    process = ServiceProcess(
        CATALOG,
        Settings(amqp_url=infra.amqp_url, database_url=url, heartbeat_seconds=60),
        http_port=0,
    )
    await process.start()
    db = await asyncpg.connect(url)
    try:
        async with running_console(process.settings) as console:
            yield Site(console.cli_env(infra.env(LOCKGATE_DATABASE_URL=url)), db)
    finally:
        await db.close()
        await process.stop()
        await drop_database(url)


def carried(tmp_path: Path) -> Path:
    """data/msrc (both documents and the README) as the folder carried in."""
    folder = tmp_path / "carried-in"
    shutil.copytree(DATA, folder)
    return folder


async def test_folder_is_verified_then_imported_in_release_order(
    site: Site, tmp_path: Path
) -> None:
    """The manifest is written on the connected side; the folder then imports January before
    February (by release, not by name), and each import records the file and its SHA-256.
    Importing the same folder again changes nothing."""
    folder = carried(tmp_path)
    written = await site.lockgate("catalog", "import-msrc", "--write-manifest", str(folder))
    assert written.returncode == 0, written.stderr
    assert (folder / MANIFEST_NAME).is_file()

    done = await site.lockgate("catalog", "import-msrc", str(folder))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [i["document_id"] for i in result["imports"]] == ["2026-Jan", "2026-Feb"]
    assert {f["file"] for f in result["verified"]} == {
        "README.md",
        "cvrf-2026-Jan.xml",
        "cvrf-2026-Feb.xml",
    }
    kbs, links = expected(JAN, FEB)
    assert sum(i["published"] for i in result["imports"]) == len(kbs)
    assert sum(i["supersession_links"] for i in result["imports"]) == len(links)
    assert result["imports"][1]["superseded"] > 0  # February marks January's KBs
    assert await site.imported() == (2, len(kbs))
    # What the catalog hashed on its side is what the manifest verified on the way in.
    recorded = [
        (row["label"], row["sha256"])
        for row in await site.db.fetch(
            "SELECT label, sha256 FROM catalog.imports ORDER BY import_id"
        )
    ]
    sha = {f["file"]: f["sha256"] for f in result["verified"]}
    assert recorded == [
        (f"{folder / name} (sha256 {sha[name]})", sha[name])
        for name in ("cvrf-2026-Jan.xml", "cvrf-2026-Feb.xml")
    ]

    again = await site.lockgate("catalog", "import-msrc", str(folder))
    assert again.returncode == 0, again.stderr
    assert [(i["published"], i["revised"]) for i in json.loads(again.stdout)["imports"]] == [
        (0, 0),
        (0, 0),
    ]
    assert await site.imported() == (4, len(kbs))


async def test_a_folder_not_intact_imports_nothing(site: Site, tmp_path: Path) -> None:
    """A changed document, a file the manifest does not list, a listed file that is absent:
    each refuses the whole folder with the file named, and the catalog stays empty, although
    January on its own was intact."""
    folder = carried(tmp_path)
    assert (
        await site.lockgate("catalog", "import-msrc", "--write-manifest", str(folder))
    ).returncode == 0
    manifest = (folder / MANIFEST_NAME).read_text()
    feb = folder / "cvrf-2026-Feb.xml"
    original = feb.read_bytes()

    feb.write_bytes(original.replace(b"KB", b"KX", 1))
    changed = await site.lockgate("catalog", "import-msrc", str(folder))
    feb.write_bytes(original)
    (folder / "cvrf-2026-Mar.xml").write_bytes(b"<not-listed/>")
    unlisted = await site.lockgate("catalog", "import-msrc", str(folder))
    (folder / "cvrf-2026-Mar.xml").unlink()
    feb.unlink()
    absent = await site.lockgate("catalog", "import-msrc", str(folder))
    (folder / MANIFEST_NAME).unlink()
    no_manifest = await site.lockgate("catalog", "import-msrc", str(folder))

    for refused, named in [
        (changed, "'cvrf-2026-Feb.xml' has SHA-256"),
        (unlisted, f"'cvrf-2026-Mar.xml' is in the folder but not in {MANIFEST_NAME}"),
        (absent, f"'cvrf-2026-Feb.xml' is listed in {MANIFEST_NAME} but absent"),
        (no_manifest, f"has no {MANIFEST_NAME}"),
    ]:
        assert refused.returncode == 1
        assert named in json.loads(refused.stderr)["error"]
    assert await site.imported() == (0, 0)

    # Put back as it was carried, the same folder imports.
    feb.write_bytes(original)
    (folder / MANIFEST_NAME).write_text(manifest)
    done = await site.lockgate("catalog", "import-msrc", str(folder))
    assert done.returncode == 0, done.stderr
    assert (await site.imported())[0] == 2
