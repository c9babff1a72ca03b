"""The catalog service importing the real MSRC documents, against real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from libs.bus import Bus, RpcClient, RpcError
from libs.contracts import catalog as c
from libs.db.pool import drop_database, ensure_database
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.catalog.handlers import SERVICE as CATALOG
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

DATA = ROOT / "data" / "msrc"
JAN, FEB = DATA / "cvrf-2026-Jan.xml", DATA / "cvrf-2026-Feb.xml"
VENDOR_FIX = re.compile(r'<vuln:Remediation Type="Vendor Fix">(.*?)</vuln:Remediation>', re.S)


def expected(*paths: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """KBs and supersedence links, read with regular expressions (not with the importer)."""
    kbs: set[str] = set()
    links: set[tuple[str, str]] = set()
    for path in paths:
        for body in VENDOR_FIX.findall(path.read_text()):
            match = re.search(r"<vuln:Description>(?:KB)?(\d+)</vuln:Description>", body)
            if not match:
                continue
            kbs.add(match.group(1))
            for text in re.findall(r"<vuln:Supercedence>([^<]*)</vuln:Supercedence>", body):
                links |= {
                    (match.group(1), old)
                    for old in re.findall(r"\d{4,8}", text)
                    if old != match.group(1)
                }
    return kbs, links


def import_request(path: Path) -> c.ImportDocument:
    return c.ImportDocument(
        content_gzip_b64=base64.b64encode(gzip.compress(path.read_bytes())).decode(),
        label=path.name,
    )


class Catalog:
    """A catalog service in this event loop, on a database of its own, plus an RPC client."""

    def __init__(self, process: ServiceProcess, rpc: RpcClient, db: asyncpg.Connection) -> None:
        self.process, self.rpc, self.db = process, rpc, db

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT body FROM catalog.outbox WHERE routing_key = $1 ORDER BY seq", event_type
        )
        return [json.loads(bytes(row["body"])) for row in rows]

    async def all_updates(self) -> dict[str, c.UpdateSnapshot]:
        found = await self.rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
        return {u.kb or u.update_id: u for u in found.updates}


@pytest.fixture
async def catalog(infra: Infra, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Catalog]:
    url = infra.database_url + "_cat" + str(abs(hash(request.node.name)) % 10_000)
    await ensure_database(url)
    process = ServiceProcess(
        CATALOG,
        Settings(amqp_url=infra.amqp_url, database_url=url, heartbeat_seconds=60),
        http_port=0,
    )
    await process.start()
    rpc = RpcClient(bus, source="tests", timeout=60)
    db = await asyncpg.connect(url)
    try:
        yield Catalog(process, rpc, db)
    finally:
        await db.close()
        await process.stop()
        await drop_database(url)


async def test_january_then_february(catalog: Catalog) -> None:
    """Every KB becomes one update, every declared link is kept, and February's KBs mark the
    January KBs they replace as superseded, navigable both ways."""
    jan = await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    feb = await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(FEB))
    kbs, links = expected(JAN, FEB)
    jan_kbs, _ = expected(JAN)
    updates = await catalog.all_updates()
    assert set(updates) == kbs
    assert jan.supersession_links + feb.supersession_links == len(links)
    replaced = {old for new, old in links if old in updates}
    assert {kb for kb, u in updates.items() if u.superseded_by} == replaced
    assert feb.superseded == len(replaced & jan_kbs)
    for new, old in links:
        if old in updates:
            assert new in updates[old].superseded_by_kbs
            assert old in updates[new].supersedes
    assert len(await catalog.events(c.UPDATE_PUBLISHED.type)) == len(kbs)
    superseded_events = await catalog.events(c.UPDATE_SUPERSEDED.type)
    assert {e["kb"] for e in superseded_events} == replaced


async def test_reimport_changes_nothing_and_publishes_nothing(catalog: Catalog) -> None:
    """Importing a document again is harmless: same updates, no new events."""
    await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    before = await catalog.db.fetchval("SELECT count(*) FROM catalog.outbox")
    again = await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    assert (again.published, again.revised, again.superseded) == (0, 0, 0)
    assert again.unchanged == again.updates_in_document
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.outbox") == before


async def test_import_order_does_not_matter(infra: Infra, bus: Bus) -> None:
    """February then January ends exactly like January then February."""
    states = []
    for order in ((JAN, FEB), (FEB, JAN)):
        url = f"{infra.database_url}_order_{order[0].stem[-3:].lower()}"
        await ensure_database(url)
        process = ServiceProcess(
            CATALOG,
            Settings(amqp_url=infra.amqp_url, database_url=url, heartbeat_seconds=60),
            http_port=0,
        )
        await process.start()
        try:
            rpc = RpcClient(bus, source="tests", timeout=60)
            for path in order:
                await rpc.call(c.IMPORT_DOCUMENT, import_request(path))
            found = await rpc.call(c.LIST_UPDATES, c.ListUpdates(limit=10_000))
            states.append(sorted(u.model_dump_json() for u in found.updates))
        finally:
            await process.stop()
            await drop_database(url)
    assert states[0] == states[1]


async def test_expired_update_publishes_once(catalog: Catalog) -> None:
    """Expiry is an event approval relies on; expiring twice does not repeat it."""
    await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    kb = sorted(expected(JAN)[0])[0]
    detail = await catalog.rpc.call(
        c.EXPIRE_UPDATE, c.ExpireUpdate(update=f"KB{kb}", reason="pulled")
    )
    assert detail.update.expired
    assert detail.expired_at is not None
    await catalog.rpc.call(c.EXPIRE_UPDATE, c.ExpireUpdate(update=kb))
    events = await catalog.events(c.UPDATE_EXPIRED.type)
    assert [(e["kb"], e["reason"]) for e in events] == [(kb, "pulled")]
    listed = await catalog.rpc.call(c.LIST_UPDATES, c.ListUpdates(expired=True))
    assert [u.kb for u in listed.updates] == [kb]


async def test_unknown_update_is_a_clear_error(catalog: Catalog) -> None:
    """Asking for a KB the catalog does not hold names it."""
    with pytest.raises(RpcError, match="'KB1234567' is not in the catalog") as caught:
        await catalog.rpc.call(c.GET_UPDATE, c.GetUpdate(update="KB1234567"))
    assert caught.value.body.field == "update"
    with pytest.raises(RpcError, match="is not a KB number"):
        await catalog.rpc.call(c.GET_UPDATE, c.GetUpdate(update="not-a-kb"))


async def test_truncated_document_is_refused_and_nothing_written(catalog: Catalog) -> None:
    """A cut document is refused with the line at fault, and leaves no half import behind."""
    raw = JAN.read_bytes()
    cut = c.ImportDocument(
        content_gzip_b64=base64.b64encode(gzip.compress(raw[: len(raw) // 2])).decode(),
        label="half.xml",
    )
    with pytest.raises(RpcError, match=r"half\.xml") as caught:
        await catalog.rpc.call(c.IMPORT_DOCUMENT, cut)
    assert caught.value.body.field == "content"
    assert "line" in caught.value.body.message
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.updates") == 0
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.update_contributions") == 0
    with pytest.raises(RpcError, match="not base64 of gzip"):
        await catalog.rpc.call(c.IMPORT_DOCUMENT, c.ImportDocument(content_gzip_b64="bm90Z3o="))


async def test_settings_defaults_change_and_refusal(catalog: Catalog) -> None:
    """Common products/classifications are on by default; a change is published; an unknown
    product is refused naming the allowed ones."""
    view = await catalog.rpc.call(c.GET_SETTINGS, c.GetSettings())
    assert view.settings.products == ["Windows", "Microsoft Office"]
    assert "Security Updates" in view.settings.classifications
    await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    changed = await catalog.rpc.call(
        c.CHANGE_SETTINGS,
        c.ChangeSettings(
            products=["Windows", "SQL Server"], classifications=["Security Updates", "Updates"]
        ),
    )
    assert changed.settings.products == ["SQL Server", "Windows"]
    assert changed.settings.classifications == ["Security Updates", "Updates"]
    events = await catalog.events(c.SETTINGS_CHANGED.type)
    assert [c.SettingsChanged.model_validate(e).settings.products for e in events] == [
        ["SQL Server", "Windows"]
    ]
    with pytest.raises(RpcError, match=r"products \['Windows 95'\] are not product categories"):
        await catalog.rpc.call(c.CHANGE_SETTINGS, c.ChangeSettings(products=["Windows 95"]))


async def test_cli_imports_both_documents(catalog: Catalog, infra: Infra) -> None:
    """The operator's command: `lockgate catalog import-msrc PATH` for both real documents."""
    results: list[dict[str, Any]] = []
    async with running_console(catalog.process.settings) as console:
        env = console.cli_env(
            infra.env(LOCKGATE_DATABASE_URL=catalog.process.settings.database_url)
        )
        results = await asyncio.gather(*[_cli_import(path, env) for path in (JAN,)])
        results += await asyncio.gather(*[_cli_import(path, env) for path in (FEB,)])
    kbs, links = expected(JAN, FEB)
    assert sum(r["published"] for r in results) == len(kbs)
    assert sum(r["supersession_links"] for r in results) == len(links)
    assert [r["document_id"] for r in results] == ["2026-Jan", "2026-Feb"]


async def _cli_import(path: Path, env: dict[str, str]) -> dict[str, Any]:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli.main", "--json", "catalog", "import-msrc", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def offered_in(updates: dict[str, c.UpdateSnapshot], families: set[str]) -> set[str]:
    """KBs the default classifications offer when these product categories are offered."""
    classes = {"Critical Updates", "Security Updates", "Definition Updates", "Update Rollups"}
    return {
        kb
        for kb, u in updates.items()
        if u.classification in classes and families & set(u.product_families)
    }


async def test_settings_offer_and_withdraw_updates_with_events(catalog: Catalog) -> None:
    """Snapshots say whether the settings offer each update and why not; a change withdraws
    or offers exactly the updates it moves, one event each, with the new settings version."""
    await catalog.rpc.call(c.IMPORT_DOCUMENT, import_request(JAN))
    updates = await catalog.all_updates()
    defaults = offered_in(updates, {"Windows", "Microsoft Office"})
    assert {kb for kb, u in updates.items() if u.offered} == defaults
    assert defaults != set(updates), "January has SQL Server and ESU updates, not offered"
    sql = next(u for u in updates.values() if u.product_families == ["SQL Server"])
    assert sql.not_offered_because == (
        "its product category SQL Server is not offered "
        "(offered products: Windows, Microsoft Office)"
    )
    published = await catalog.events(c.UPDATE_PUBLISHED.type)
    assert {e["update"]["kb"] for e in published if e["update"]["offered"]} == defaults
    assert {e["update"]["settings_version"] for e in published} == {1}

    await catalog.rpc.call(c.CHANGE_SETTINGS, c.ChangeSettings(products=["Windows"]))
    withdrawn = [
        c.UpdateOfferChanged.model_validate(e)
        for e in await catalog.events(c.UPDATE_WITHDRAWN.type)
    ]
    office = defaults - offered_in(updates, {"Windows"})
    assert office, "January has offered Office updates"
    assert {e.kb for e in withdrawn} == office
    assert len(withdrawn) == len(office)
    assert {(e.offered, e.settings_version, e.revision) for e in withdrawn} == {(False, 2, 1)}
    assert all(
        "product category Microsoft Office is not offered (offered products: Windows)" in e.reason
        for e in withdrawn
    )
    assert await catalog.events(c.UPDATE_OFFERED.type) == []
    now = await catalog.all_updates()
    assert {kb for kb, u in now.items() if u.offered} == offered_in(updates, {"Windows"})
    assert {u.settings_version for u in now.values()} == {2}

    await catalog.rpc.call(
        c.CHANGE_SETTINGS, c.ChangeSettings(products=["Windows", "Microsoft Office", "ESU"])
    )
    offered = [
        c.UpdateOfferChanged.model_validate(e) for e in await catalog.events(c.UPDATE_OFFERED.type)
    ]
    widened = offered_in(updates, {"Windows", "Microsoft Office", "ESU"})
    assert {e.kb for e in offered} == widened - offered_in(updates, {"Windows"})
    assert {e.settings_version for e in offered} == {3}
    assert len(await catalog.events(c.UPDATE_WITHDRAWN.type)) == len(withdrawn)

    before = await catalog.db.fetchval("SELECT count(*) FROM catalog.outbox")
    await catalog.rpc.call(
        c.CHANGE_SETTINGS, c.ChangeSettings(products=["ESU", "Windows", "Microsoft Office"])
    )
    assert await catalog.db.fetchval("SELECT count(*) FROM catalog.outbox") == before, (
        "the same settings again change nothing and publish nothing"
    )
    view = await catalog.rpc.call(c.GET_SETTINGS, c.GetSettings())
    assert "SQL Server" in view.available_products
