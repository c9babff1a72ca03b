"""Hostile uploads through the HTTP API (issue 17): a crafted installer is a 422 naming the
file and the reason, other uploads go on meanwhile, and nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.bus import Bus
from libs.contracts.api import PREFIX
from libs.contracts.names import dead_letter_queue_name
from libs.db.pool import drop_database, ensure_database
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.catalog.handlers import SERVICE as CATALOG
from tests.support.console import running_console
from tests.support.infra import Infra
from tests.support.installers import build_msi
from tests.unit.test_fuzz_hostile import section_count_mutation, vector_count_mutation

pytestmark = pytest.mark.integration

COMMANDS_DLQ = dead_letter_queue_name("catalog.commands")


@pytest.fixture
async def api(infra: Infra, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A catalog with its own database and the console in front of it, as the operator."""
    url = f"{infra.database_url}_hostile{uuid.uuid4().hex[:6]}"
    await ensure_database(url)
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=url,
        heartbeat_seconds=60,
        content_dir=str(tmp_path / "content"),
    )
    process = ServiceProcess(CATALOG, settings, http_port=0)
    await process.start()
    try:
        async with (
            running_console(settings) as console,
            httpx.AsyncClient(
                base_url=console.url + PREFIX,
                headers={"Authorization": f"Bearer {console.admin_token}"},
                timeout=120,
            ) as client,
        ):
            yield client
    finally:
        await process.stop()
        await drop_database(url)


async def upload(client: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
    """Declare one installer and send all its bytes; the answer to the last chunk."""
    started = await client.post("/uploads", json={"installer": {"path": name, "size": len(data)}})
    assert started.status_code == 200, started.text
    upload_id = started.json()["upload_id"]
    return await client.post(
        f"/uploads/{upload_id}/chunks",
        json={"path": name, "offset": 0, "data_b64": base64.b64encode(data).decode()},
    )


async def dead_letters(bus: Bus) -> int:
    channel = await bus.connection.channel()
    try:
        queue = await channel.declare_queue(COMMANDS_DLQ, passive=True)
        count: int = queue.declaration_result.message_count or 0
    finally:
        await channel.close()
    return count


async def test_hostile_msi_is_refused_with_its_reason_while_another_upload_proceeds(
    api: httpx.AsyncClient, bus: Bus, tmp_path: Path
) -> None:
    """Three uploads at once: a database whose summary declares two billion properties is a
    422 naming the file and why; issue 17's 6-byte vector change and a plain database are
    both read. Nothing is retried into the dead-letter queue."""
    before = await dead_letters(bus)
    real = build_msi(tmp_path, name="Contoso Viewer", version="2.4.1", manufacturer="Contoso")
    good = real.path.read_bytes()
    hostile, crafted, plain = await asyncio.gather(
        upload(api, "hostile.msi", section_count_mutation(good)),
        upload(api, "vector.msi", vector_count_mutation(good, 2, 0x1000, 0x7FFFFFFF)),
        upload(api, "viewer.msi", good),
    )

    assert hostile.status_code == 422, hostile.text
    problem: dict[str, Any] = hostile.json()
    assert problem["field"] == "installer"
    assert problem["detail"].startswith(
        "not a valid installer: hostile.msi: corrupt or truncated Windows Installer database: "
        "summary information section"
    )
    for answer in (crafted, plain):
        assert answer.status_code == 200, answer.text
        session = answer.json()
        assert session["state"] == "received"
        assert session["extracted"]["product_code"] == real.product_code
    assert await dead_letters(bus) == before


HOSTILE_NAMES = [
    ("CON.msi", "Windows device name"),
    ("a.txt:stream", "alternate data stream"),
    ("%TEMP%\\x.msi", "environment variable"),
    ("../x.msi", "without '..'"),
    ("x" * 300 + ".msi", "characters long"),
    ("setup.msi.", "ends in a dot"),
]


async def test_hostile_file_names_are_422_naming_field_value_and_rule(
    api: httpx.AsyncClient,
) -> None:
    """Names Windows cannot hold or that leave the installer's folder never reach storage;
    a NUL is refused by the contract before the database (whose text cannot hold it)."""
    for name, reason in HOSTILE_NAMES:
        answer = await api.post("/uploads", json={"installer": {"path": name, "size": 10}})
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert (problem["field"], repr(name) in problem["detail"]) == ("installer.path", True)
        assert reason in problem["detail"], problem["detail"]
    answer = await api.post("/uploads", json={"installer": {"path": "a\u0000.msi", "size": 10}})
    assert answer.status_code == 422, answer.text
    assert "NUL" in answer.text
