"""The console's audit log answers who did what (content with secrets removed, refusals,
failures as the status sent), token expiry, and the last admin under concurrent revokes:
the console over real HTTP, PostgreSQL and RabbitMQ (no service answers its commands)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from libs.contracts.api import PREFIX
from libs.db.pool import drop_database, ensure_database
from libs.settings import Settings
from services.console.app import create_app
from tests.integration.test_approval import lockgate
from tests.support.infra import Infra
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Console:
    url: str
    admin_token: str
    database_url: str
    env: dict[str, str]

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url + PREFIX, headers=headers, timeout=30)

    def admin(self) -> httpx.AsyncClient:
        return self.client(self.admin_token)


class Boom(Exception):
    """A failure no handler expects."""


@pytest.fixture
async def console(infra: Infra, request: pytest.FixtureRequest) -> AsyncIterator[Console]:
    """The console alone, with one extra route that fails unexpectedly."""
    url = f"{infra.database_url}_aud{abs(hash(request.node.name)) % 100_000}"
    await ensure_database(url)
    token = "lg_test_" + secrets.token_urlsafe(12)
    port = free_port()
    settings = Settings(
        amqp_url=infra.amqp_url,
        database_url=url,
        rpc_timeout_seconds=3,
        bootstrap_token=SecretStr(token),
        console_port=port,
    )
    app = create_app(settings)

    async def boom(body: dict[str, str]) -> None:
        raise Boom(f"nobody expects this: {body}")

    app.add_api_route(f"{PREFIX}/boom", boom, methods=["POST"])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        yield Console(base, token, url, {**infra.env(), "LOCKGATE_URL": base})
    finally:
        server.should_exit = True
        await task
        await drop_database(url)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def audit(
    console: Console, token: str | None = None, **filters: str | int
) -> list[dict[str, Any]]:
    async with console.client(token or console.admin_token) as http:
        found = ok(await http.get("/audit", params={"limit": 1000, **filters}))
    entries: list[dict[str, Any]] = found["entries"]
    assert found["total"] == len(entries)
    return entries


async def test_writes_are_recorded_with_their_content_and_secrets_removed(
    console: Console,
) -> None:
    deadline = {"kind": "custom", "at": "2030-01-01T18:00:00+01:00"}
    chunk = base64.b64encode(b"\x00" * 300_000).decode()
    async with console.admin() as http:
        approve = {
            "updates": ["KB5034441"],
            "groups": [{"group": "Pilot", "action": "required_install", "deadline": deadline}],
        }
        # No service answers in this test: the console still records what was asked.
        asked = await http.post(
            "/updates/approve", json=approve, headers={"X-Correlation-Id": "change-4711"}
        )
        assert asked.status_code == 503
        assert asked.headers["x-correlation-id"] == "change-4711"
        sent = await http.post(
            "/uploads/u-1/chunks", json={"path": "setup.msi", "offset": 0, "data_b64": chunk}
        )
        assert sent.status_code == 503
        viewer = ok(await http.post("/tokens", json={"name": "auditor", "role": "viewer"}), 201)
        extra = await http.post(
            "/groups", json={"name": "G", "password": "hunter2", "api_key": "k-123"}
        )
        assert extra.status_code == 422

    (approved,) = await audit(console, command="approval.update.approve.v1")
    assert approved["token_name"] == "bootstrap"  # noqa: S105 - a name
    assert approved["role"] == "admin"
    assert approved["token_id"]
    assert (approved["method"], approved["path"]) == ("POST", f"{PREFIX}/updates/approve")
    assert approved["content"] == {"body": approve}, "which update, which group, which deadline"
    assert (approved["status"], approved["correlation_id"]) == (503, "change-4711")
    assert approved["detail"]

    (uploaded,) = await audit(console, path_prefix=f"{PREFIX}/uploads/")
    assert uploaded["content"]["body"] == {
        "path": "setup.msi",
        "offset": 0,
        "data_b64": "[base64: 300000 bytes, not kept]",
    }
    (created,) = await audit(console, command="console.token.create")
    assert created["content"] == {"body": {"name": "auditor", "role": "viewer"}}
    assert created["status"] == 201
    (refused,) = await audit(console, status=422)
    assert refused["content"]["body"] == {
        "name": "G",
        "password": "[removed]",
        "api_key": "[removed]",
    }
    assert "password" in refused["detail"]
    everything = json.dumps(await audit(console))
    for secret in (viewer["token"], console.admin_token, "hunter2", "k-123", chunk[:100]):
        assert secret not in everything


async def test_refusals_and_failures_are_recorded_as_sent(console: Console) -> None:
    unknown = "lg_" + secrets.token_urlsafe(32)
    async with console.admin() as http:
        viewer = ok(await http.post("/tokens", json={"name": "auditor", "role": "viewer"}), 201)
    async with console.client() as anonymous:
        assert (await anonymous.post("/groups", json={"name": "A"})).status_code == 401
        assert (await anonymous.get("/groups")).status_code == 401
    async with console.client(unknown) as stranger:
        assert (await stranger.delete("/groups/A")).status_code == 401
    async with console.client(viewer["token"]) as reader:
        assert (await reader.post("/groups", json={"name": "B"})).status_code == 403
        assert (await reader.get("/tokens")).status_code == 403
        ok(await reader.get("/audit"))  # a read that succeeds is not recorded
    async with console.admin() as http:
        failed = await http.post("/boom", json={"why": "test"})
        assert failed.status_code == 500
        assert failed.headers["content-type"].startswith("application/problem+json")
        correlation = failed.headers["x-correlation-id"]

    (crashed,) = await audit(console, status=500)
    assert crashed["path"] == f"{PREFIX}/boom"
    assert crashed["correlation_id"] == correlation
    assert crashed["content"] == {"body": {"why": "test"}}
    assert crashed["detail"] == "unexpected failure"

    refusals = {
        (e["method"], e["path"], e["status"]): e
        for e in await audit(console)
        if e["status"] in {401, 403}
    }
    assert set(refusals) == {
        ("POST", f"{PREFIX}/groups", 401),
        ("GET", f"{PREFIX}/groups", 401),
        ("DELETE", f"{PREFIX}/groups/A", 401),
        ("POST", f"{PREFIX}/groups", 403),
        ("GET", f"{PREFIX}/tokens", 403),
    }
    anonymous_write = refusals["POST", f"{PREFIX}/groups", 401]
    assert (anonymous_write["token_name"], anonymous_write["role"]) == ("anonymous", None)
    assert anonymous_write["content"] == {"body": {"name": "A"}}
    assert anonymous_write["command"] == "approval.group.create.v1"
    stranger_write = refusals["DELETE", f"{PREFIX}/groups/A", 401]
    assert stranger_write["token_name"] == f"unknown {unknown[:6]}…"
    assert stranger_write["token_id"] is None
    viewer_write = refusals["POST", f"{PREFIX}/groups", 403]
    assert (viewer_write["token_name"], viewer_write["role"]) == ("auditor", "viewer")
    assert viewer_write["token_id"] == viewer["token_id"]
    assert "read only" in viewer_write["detail"]
    by_viewer = await audit(console, actor="auditor")
    assert {e["status"] for e in by_viewer} == {403}
    assert unknown not in json.dumps(await audit(console))


async def test_tokens_expire_with_a_clear_reason(console: Console) -> None:
    async with console.admin() as http:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        refused = await http.post(
            "/tokens", json={"name": "late", "role": "viewer", "expires_at": past}
        )
        assert refused.status_code == 422
        assert refused.json()["field"] == "expires_at"
        assert past in refused.json()["detail"]
        soon = datetime.now(UTC) + timedelta(days=1)
        short = ok(
            await http.post(
                "/tokens",
                json={"name": "contractor", "role": "viewer", "expires_at": soon.isoformat()},
            ),
            201,
        )
        assert datetime.fromisoformat(short["expires_at"]) == soon
        assert short["state"] == "active"
    async with console.client(short["token"]) as contractor:
        ok(await contractor.get("/audit"))
    # Its day passes (moved in the database: tests do not wait).
    connection = await asyncpg.connect(console.database_url)
    try:
        await connection.execute(
            "UPDATE console.tokens SET expires_at = now() - interval '1 second'"
            " WHERE token_id = $1",
            short["token_id"],
        )
    finally:
        await connection.close()
    async with console.client(short["token"]) as contractor:
        expired = await contractor.get("/audit")
    assert expired.status_code == 401
    assert "'contractor' expired at" in expired.json()["detail"]
    async with console.admin() as http:
        listed = {t["name"]: t for t in ok(await http.get("/tokens"))["tokens"]}
    assert listed["contractor"]["state"] == "expired"
    assert listed["bootstrap"]["expires_at"] is None
    (recorded,) = await audit(console, actor="contractor")
    assert (recorded["status"], recorded["token_id"]) == (401, short["token_id"])

    env = {**console.env, "LOCKGATE_TOKEN": console.admin_token}
    code, created, _ = await lockgate(
        env, "tokens", "create", "--role", "viewer", "--name", "monthly", "--expires-in", "30d"
    )
    assert code == 0
    until = datetime.fromisoformat(created["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=29) < until <= timedelta(days=30)
    code, _, err = await lockgate(env, "tokens", "create", "--role", "viewer", "--expires-in", "3x")
    assert code != 0
    assert "'3x' is not a lifetime" in err
    code, shown, _ = await lockgate(env, "audit", "--command", "console.token.create")
    assert code == 0
    assert shown["entries"][0]["content"]["body"]["name"] == "monthly"


async def test_concurrent_revokes_never_remove_the_last_admin(console: Console) -> None:
    """Two admins revoked at once: exactly one revoke succeeds, every round."""
    async with console.admin() as http:
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        # The caller's own token expires, so it never counts as the admin that remains.
        caller = ok(
            await http.post(
                "/tokens", json={"name": "racer", "role": "admin", "expires_at": tomorrow}
            ),
            201,
        )
        listed = ok(await http.get("/tokens"))["tokens"]
    (survivor,) = [t["token_id"] for t in listed if t["name"] == "bootstrap"]
    async with console.client(caller["token"]) as http:
        for round_ in range(6):
            other = ok(
                await http.post("/tokens", json={"name": f"a{round_}", "role": "admin"}), 201
            )
            pair = [survivor, other["token_id"]]
            answers = await asyncio.gather(*(http.delete(f"/tokens/{t}") for t in pair))
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [200, 409], [a.text for a in answers]
            (survivor,) = [t for t, a in zip(pair, answers, strict=True) if a.status_code == 409]
            assert "last admin token" in next(a for a in answers if a.status_code == 409).text
        tokens = ok(await http.get("/tokens"))["tokens"]
    lasting = [
        t for t in tokens if t["role"] == "admin" and t["state"] == "active" and not t["expires_at"]
    ]
    assert [t["token_id"] for t in lasting] == [survivor]
    revokes = await audit(console, caller["token"], command="console.token.revoke")
    assert sorted(e["status"] for e in revokes) == [200] * 6 + [409] * 6
