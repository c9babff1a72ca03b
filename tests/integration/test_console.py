"""The console HTTP API in front of the four real services, over real HTTP, RabbitMQ and
PostgreSQL: resources, tokens and roles, problem details, audit, a stopped service."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import os
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.bus import Bus
from libs.contracts.api import PREFIX, ROUTES
from libs.db.pool import drop_database, ensure_database
from libs.domain.content_urls import ContentLinks, signed_url
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval.handlers import SERVICE as APPROVAL
from services.catalog.handlers import SERVICE as CATALOG
from services.catalog.store.content import LocalContentStore
from services.reporting.handlers import SERVICE as REPORTING
from services.scheduler.handlers import SERVICE as SCHEDULER
from tests.integration.test_approval import delete_queues
from tests.integration.test_catalog_msrc import JAN
from tests.support.console import ConsoleUnderTest, running_console
from tests.support.infra import Infra
from tests.support.messages import checkin, eventually, publish_checkins
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

SERVICES = (CATALOG, APPROVAL, SCHEDULER, REPORTING)


class Api:
    def __init__(
        self, console: ConsoleUnderTest, processes: dict[str, ServiceProcess], bus: Bus
    ) -> None:
        self.console, self.processes, self.bus = console, processes, bus

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = (
            {} if token == "" else {"Authorization": f"Bearer {token or self.console.admin_token}"}
        )
        return httpx.AsyncClient(base_url=self.console.url + PREFIX, headers=headers, timeout=60)


@pytest.fixture
async def api(infra: Infra, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    url = f"{infra.database_url}_con{abs(hash(request.node.name)) % 100_000}"
    await ensure_database(url)
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=url, heartbeat_seconds=60, rpc_timeout_seconds=3
    )
    processes = {s.name: ServiceProcess(s, settings, http_port=0) for s in SERVICES}
    for process in processes.values():
        await process.start()
    try:
        async with running_console(settings) as console:
            yield Api(console, processes, bus)
    finally:
        for process in processes.values():
            await process.stop()
        await delete_queues(bus, SERVICES)
        await drop_database(url)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_the_seed_flow_through_the_api(api: Api) -> None:
    """Import, settings, groups, a rule, approval with a deadline, policies, reports."""
    async with api.client() as http:
        document = base64.b64encode(gzip.compress(JAN.read_bytes())).decode()
        imported = ok(await http.post("/catalog/imports", json={"content_gzip_b64": document}))
        assert imported["published"] > 0
        settings = ok(await http.get("/catalog/settings"))
        assert "Windows" in settings["available_products"]
        # Security updates go to Pilot by a rule; the ESU rollups, offered too, stay new.
        offered = {
            "products": ["Windows", "Microsoft Office", "ESU"],
            "classifications": ["Security Updates", "Update Rollups"],
        }
        ok(await http.put("/catalog/settings", json=offered))
        group = ok(await http.post("/groups", json={"name": "Pilot"}))
        assert group["path"] == ["All computers", "Pilot"]
        rule = ok(
            await http.post(
                "/rules",
                json={
                    "rule": {
                        "name": "pilot security",
                        "classifications": ["Security Updates"],
                        "groups": ["Pilot"],
                        "deadline": "one_week",
                    }
                },
            )
        )
        ran = ok(await http.post(f"/rules/{rule['rule_id']}/run"))
        assert ran["updates_approved"]

        async def listed() -> bool:
            found = ok(await http.get("/updates", params={"states": ["new"], "limit": 5}))
            return bool(found["updates"])

        await eventually(listed, timeout=30, what="approval to know the updates")
        new = ok(await http.get("/updates", params={"states": ["new"], "limit": 5}))
        kb = new["updates"][0]["kb"]
        approved = ok(
            await http.post(
                "/updates/approve",
                json={
                    "updates": [kb],
                    "groups": [
                        {
                            "group": "All computers",
                            "action": "required_install",
                            "deadline": {"kind": "custom", "at": "2030-01-01T18:00:00+01:00"},
                        }
                    ],
                },
            )
        )
        assert approved["explicit_changed"] == 1
        why = ok(await http.get("/groups/Pilot/approvals"))
        assert any(a["why"] == "inherited from All computers" for a in why["approvals"])
        policy = ok(
            await http.post(
                "/policies", json={"name": "Nights", "settings": {"scheduled_time": "22:00"}}
            )
        )
        ok(await http.post("/policies/Nights/assignments", json={"group": "Pilot"}))
        assert policy["settings"]["restart_delay_minutes"] == 15

        await publish_checkins(api.bus, [checkin("pc-api")])

        async def planned() -> bool:
            response = await http.get("/computers/pc-api/plan")
            return response.status_code == 200 and bool(response.json()["items"])

        await eventually(planned, timeout=30, what="the computer's plan")
        overview = ok(await http.get("/reports/overview", params={"limit": 10}))
        assert "new_updates_to_approve" in overview
        report = ok(await http.get(f"/reports/updates/{kb}"))
        assert report["update"]["kb"] == kb
        declined = ok(await http.post("/updates/decline", json={"updates": [kb]}))
        assert declined["declined"]
        audit = ok(await http.get("/audit", params={"limit": 100}))
        commands = [e["command"] for e in audit["entries"]]
        assert "approval.update.approve.v1" in commands
        assert all(e["token_name"] == "bootstrap" for e in audit["entries"])  # noqa: S105 - a name


async def test_tokens_and_roles(api: Api) -> None:
    async with api.client("") as anonymous:
        response = await anonymous.get("/groups")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["title"] == "Unauthorized"
    async with api.client("lg_not_a_token") as stranger:
        assert (await stranger.get("/groups")).status_code == 401
    async with api.client() as admin:
        viewer = ok(await admin.post("/tokens", json={"name": "auditor", "role": "viewer"}), 201)
        assert viewer["token"].startswith("lg_")
        listed = ok(await admin.get("/tokens"))
        assert all("token" not in t for t in listed["tokens"])
    async with api.client(viewer["token"]) as reader:
        ok(await reader.get("/groups"))
        refused = await reader.post("/groups", json={"name": "Nope"})
        assert refused.status_code == 403
        assert refused.json()["detail"]
    async with api.client() as admin:
        ok(await admin.delete(f"/tokens/{viewer['token_id']}"))
        tokens = ok(await admin.get("/tokens"))["tokens"]
        (bootstrap,) = [t for t in tokens if t["name"] == "bootstrap"]
        last = await admin.delete(f"/tokens/{bootstrap['token_id']}")
        assert last.status_code == 409, "never revoke the last admin token"
    async with api.client(viewer["token"]) as revoked:
        assert (await revoked.get("/groups")).status_code == 401


async def test_a_write_retried_with_its_idempotency_key_applies_once(api: Api) -> None:
    """A client that lost the answer (console or service restarted) retries with the same
    Idempotency-Key and gets the first answer; the change is made once."""
    key = {"Idempotency-Key": "retry-group-0001"}
    async with api.client() as http:
        first = ok(await http.post("/groups", json={"name": "Retried"}, headers=key))
        again = ok(await http.post("/groups", json={"name": "Retried"}, headers=key))
        assert again == first
        groups = ok(await http.get("/groups"))
        assert [g["group_id"] for g in groups["groups"] if g["name"] == "Retried"] == [
            first["group_id"]
        ]
        bad = await http.post("/groups", json={"name": "Other"}, headers={"Idempotency-Key": "x y"})
        assert bad.status_code == 422
        assert bad.json()["field"] == "Idempotency-Key"
        assert "'x y'" in bad.json()["detail"]


async def test_errors_are_problem_details_naming_the_field(api: Api) -> None:
    async with api.client() as http:
        bad_range = await http.post(
            "/policies", json={"name": "x", "settings": {"restart_delay_minutes": 99}}
        )
        assert bad_range.status_code == 422
        assert bad_range.headers["content-type"].startswith("application/problem+json")
        problem = bad_range.json()
        assert "restart_delay_minutes" in problem["detail"]
        assert "99" in problem["detail"]
        missing = await http.get("/groups/Nowhere/approvals")
        assert missing.status_code == 404
        assert missing.json()["field"] == "group"
        cycle_parent = ok(await http.post("/groups", json={"name": "A"}))
        ok(await http.post("/groups", json={"name": "B", "parent": "A"}))
        cycle = await http.put("/groups/A/parent", json={"parent": "B"})
        assert cycle.status_code == 409
        assert cycle.json()["field"] == "parent"
        assert cycle_parent["name"] == "A"
        bad_action = await http.post(
            "/updates/approve",
            json={"updates": ["1"], "groups": [{"group": "A", "action": "install"}]},
        )
        assert bad_action.status_code == 422
        assert "action" in bad_action.json()["detail"]


async def test_a_stopped_service_gives_504_and_the_others_still_answer(api: Api) -> None:
    await api.processes["reporting"].stop()
    async with api.client() as http:
        stopped = await http.get("/reports/overview")
        assert stopped.status_code == 504
        assert "reporting" in stopped.json()["detail"]
        ok(await http.get("/groups"))
        ok(await http.get("/catalog/settings"))
    async with httpx.AsyncClient(base_url=api.console.url) as plain:
        assert (await plain.get("/readyz")).status_code == 200
        scraped = (await plain.get("/metrics")).text
    # Requests are counted by route template, never by raw path (bounded labels).
    assert (
        'lockgate_http_requests_total{method="GET",route="/api/v1/reports/overview",status="504"}'
        in scraped
    )


async def test_openapi_document_lists_every_route(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.console.url) as plain:
        document = ok(await plain.get(f"{PREFIX}/openapi.json"))
    paths = document["paths"]
    for route in ROUTES:
        assert route.method.lower() in paths[PREFIX + route.path], route.path
    approve = paths[f"{PREFIX}/updates/approve"]["post"]
    assert approve["requestBody"]["content"]["application/json"]["schema"]


FUZZ_EXAMPLES = {"admin": 15, "viewer": 10}
"""Generated cases per operation in the fuzzing and stateful phases (the coverage phase
makes its own, about 2,200 in all), per run; the viewer's writes stop at the door, so it
needs fewer. Both runs together are about 4,000 requests; more would push make test past
its 25 minutes on two cores."""


def _fuzz_config(path: Path, known: dict[str, list[str]]) -> Path:
    """Half of the generated path parameters name things that exist (a group, an update, a
    policy, a rule), so requests reach the services' logic and not only their 404s."""
    lines = [
        f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n" for name, values in known.items()
    ]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in known]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _fuzz(
    api: Api, role: str, token: str, phases: str, *, env: dict[str, str], config: Path
) -> tuple[int, str]:
    """One schemathesis run against the running console with `token`."""
    done = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{api.console.url}{PREFIX}/openapi.json",
        "--checks",
        "not_a_server_error,viewer_never_writes",
        "--max-examples",
        str(FUZZ_EXAMPLES[role]),
        "--seed",
        "13",
        "--phases",
        phases,
        "--request-timeout",
        "30",
        "--workers",
        "2",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(config.parent / f"{role}.ndjson"),
        "-H",
        f"Authorization: Bearer {token}",
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.fuzz_hooks", **env},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await done.communicate()
    (config.parent / f"{role}.txt").write_bytes(output)
    return await done.wait(), output.decode(errors="replace")


@pytest.mark.timeout(900)  # ~5,000 requests: minutes, more on a loaded machine
async def test_schemathesis_finds_no_server_error(api: Api, tmp_path: Path) -> None:
    """Property-based requests generated from the OpenAPI document, for every operation
    (tokens included) and stateful sequences that follow what one answer gives the next: no
    5xx, for an admin and for a viewer, and a viewer never gets a 2xx for a write."""
    async with api.client() as http:
        document = base64.b64encode(gzip.compress(JAN.read_bytes())).decode()
        ok(await http.post("/catalog/imports", json={"content_gzip_b64": document}))
        ok(await http.post("/groups", json={"name": "Pilot"}))
        nights = {"name": "Nights", "settings": {"scheduled_time": "22:00"}}
        ok(await http.post("/policies", json=nights))
        rule = {
            "name": "pilot security",
            "classifications": ["Security Updates"],
            "groups": ["Pilot"],
            "deadline": "one_week",
        }
        rule_id = ok(await http.post("/rules", json={"rule": rule}))["rule_id"]
        updates = ok(await http.get("/catalog/updates", params={"limit": 3}))["updates"]
        fuzzer = ok(await http.post("/tokens", json={"name": "fuzz-admin", "role": "admin"}), 201)
        viewer = ok(await http.post("/tokens", json={"name": "fuzz-viewer", "role": "viewer"}), 201)
        listed = ok(await http.get("/tokens"))["tokens"]
    (bootstrap,) = [t["token_id"] for t in listed if t["name"] == "bootstrap"]
    keep = ",".join([bootstrap, fuzzer["token_id"], viewer["token_id"]])
    known = {
        "group": ["Pilot", "All computers"],
        "update": [u["kb"] or u["update_id"] for u in updates] + [updates[0]["update_id"]],
        "policy": ["Nights"],
        "rule": [rule_id],
    }
    config = _fuzz_config(tmp_path / "schemathesis.toml", known)
    code, text = await _fuzz(
        api,
        "admin",
        fuzzer["token"],
        "examples,coverage,fuzzing,stateful",
        env={"LOCKGATE_FUZZ_KEEP_TOKENS": keep},
        config=config,
    )
    assert code == 0, text[-6000:]
    code, text = await _fuzz(
        api,
        "viewer",
        viewer["token"],
        "examples,fuzzing",
        env={"LOCKGATE_FUZZ_READ_ONLY": "1", "LOCKGATE_FUZZ_KEEP_TOKENS": keep},
        config=config,
    )
    assert code == 0, text[-6000:]
    async with api.client() as http:
        tokens = {t["name"]: t for t in ok(await http.get("/tokens"))["tokens"]}
        assert tokens["fuzz-admin"]["state"] == tokens["fuzz-viewer"]["state"] == "active"
        # The console's own record agrees: nothing answered 5xx, the viewer changed nothing.
        for status in (500, 502, 503, 504):
            assert ok(await http.get("/audit", params={"status": status}))["total"] == 0
        for status in (200, 201):
            by_viewer = {"actor": "fuzz-viewer", "status": str(status)}
            assert ok(await http.get("/audit", params=by_viewer))["total"] == 0
        refused = ok(await http.get("/audit", params={"actor": "fuzz-viewer", "status": 403}))
        assert refused["total"] > 0, "the viewer's refused writes are recorded"


@pytest.fixture
async def content_console(
    infra: Infra, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[ConsoleUnderTest, ContentLinks, bytes, str]]:
    """The console alone (no service answers RPC) over a content directory holding one file
    of 3 MiB: content downloads need neither a service nor the database."""
    url = f"{infra.database_url}_cnt{abs(hash(request.node.name)) % 100_000}"
    await ensure_database(url)
    data = random.Random(15).randbytes(3 * 1024 * 1024 + 17)
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    store = LocalContentStore(tmp_path / "content")
    sha256, _ = store.put(source)
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=url, content_dir=str(tmp_path / "content")
    )
    try:
        async with running_console(settings) as console:
            links = settings.content_links()
            links = ContentLinks(key=links.key, base_url=console.url, days=links.days)
            yield console, links, data, sha256
    finally:
        await drop_database(url)


async def test_content_downloads_in_full_and_resumes_by_range(
    content_console: tuple[ConsoleUnderTest, ContentLinks, bytes, str],
) -> None:
    _, links, data, sha256 = content_console
    url = signed_url(links, sha256, "Tool Setup 1.0.msi", "pc-0042", datetime.now(UTC)).url
    async with httpx.AsyncClient(timeout=60) as http:
        full = await http.get(url)
        assert full.status_code == 200, full.text
        assert full.content == data
        assert hashlib.sha256(full.content).hexdigest() == sha256
        assert full.headers["etag"] == f'"{sha256}"'
        assert full.headers["accept-ranges"] == "bytes"
        assert full.headers["content-length"] == str(len(data))
        assert full.headers["content-type"] == "application/x-msi"
        assert full.headers["cache-control"].startswith("public, max-age=")
        assert "Tool%20Setup%201.0.msi" in full.headers["content-disposition"]

        # An interrupted download resumes where it stopped.
        cut = 1_234_567
        rest = await http.get(url, headers={"Range": f"bytes={cut}-", "If-Range": f'"{sha256}"'})
        assert rest.status_code == 206
        assert rest.headers["content-range"] == f"bytes {cut}-{len(data) - 1}/{len(data)}"
        assert rest.headers["content-length"] == str(len(data) - cut)
        assert hashlib.sha256(data[:cut] + rest.content).hexdigest() == sha256
        middle = await http.get(url, headers={"Range": "bytes=10-19"})
        assert (middle.status_code, middle.content) == (206, data[10:20])
        tail = await http.get(url, headers={"Range": "bytes=-5"})
        assert (tail.status_code, tail.content) == (206, data[-5:])
        changed = await http.get(url, headers={"Range": "bytes=10-19", "If-Range": '"other"'})
        assert (changed.status_code, len(changed.content)) == (200, len(data))

        beyond = await http.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(data)}"
        cached = await http.get(url, headers={"If-None-Match": f'"{sha256}"'})
        assert (cached.status_code, cached.content) == (304, b"")
        head = await http.head(url)
        assert (head.status_code, head.headers["content-length"]) == (200, str(len(data)))


async def test_content_refusals_name_why(
    content_console: tuple[ConsoleUnderTest, ContentLinks, bytes, str],
) -> None:
    _, links, _, sha256 = content_console
    now = datetime.now(UTC)
    url = signed_url(links, sha256, "tool.msi", "pc-0042", now).url
    old = signed_url(links, sha256, "tool.msi", "pc-0042", now - timedelta(days=30)).url
    unknown = signed_url(links, "0" * 64, "tool.msi", "pc-0042", now).url
    async with httpx.AsyncClient(timeout=60) as http:
        refusals = {
            "expired": await http.get(old),
            "not_for_this_computer": await http.get(url.replace("pc-0042", "pc-0043")),
            "unknown": await http.get(unknown),
        }
        statuses = {why: response.status_code for why, response in refusals.items()}
        assert statuses == {"expired": 410, "not_for_this_computer": 403, "unknown": 404}
        for why, response in refusals.items():
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["cache-control"] == "no-store"
            problem = response.json()
            assert (problem["title"], problem["type"]) == (why, f"urn:lockgate:content:{why}")
            assert problem["detail"]
        unsigned = await http.get(url.split("?", 1)[0])
        assert unsigned.status_code == 403
        renamed = await http.get(url.replace("/tool.msi?", "/other.msi?"))
        assert renamed.json()["title"] == "not_for_this_computer"
