"""The console's pages' server side over real HTTP, RabbitMQ and PostgreSQL: signing in with
an API token (an HttpOnly, SameSite=Strict session cookie), the cookie on every API route
with its CSRF token for writes, sessions ending with their token, signing out, judging a
form's body as its route would (POST /api/v1/validate), and the pages with their security
headers. The approval service answers, so a cookie write really changes something."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from libs.bus import Bus
from libs.contracts.api import PREFIX
from libs.db.pool import drop_database, ensure_database
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.approval.handlers import SERVICE as APPROVAL
from services.console.app import STATIC
from services.console.auth import CSRF_REFUSED, SESSION_COOKIE
from tests.integration.test_approval import delete_queues
from tests.support.console import ConsoleUnderTest, running_console
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class SignedIn:
    """A browser's session: its cookie's secret and what signing in answered."""

    secret: str
    set_cookie: str
    info: dict[str, Any]

    @property
    def csrf(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.info["csrf_token"]}


class Browser:
    """Requests as the console's pages send them: the session cookie, never a bearer token
    (the cookie is sent by hand: no client-side cookie jar decides anything here)."""

    def __init__(self, console: ConsoleUnderTest) -> None:
        self.console = console

    def client(
        self, session: SignedIn | None = None, token: str | None = None
    ) -> httpx.AsyncClient:
        headers = {"Cookie": f"{SESSION_COOKIE}={session.secret}"} if session else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(base_url=self.console.url + PREFIX, headers=headers, timeout=30)

    def admin(self) -> httpx.AsyncClient:
        return self.client(token=self.console.admin_token)

    async def sign_in(self, token: str, **headers: str) -> SignedIn:
        async with self.client() as http:
            answer = await http.post("/session", json={"token": token}, headers=headers)
        info = ok(answer)
        set_cookie = answer.headers["set-cookie"]
        name, _, rest = set_cookie.partition("=")
        assert name == SESSION_COOKIE
        return SignedIn(rest.split(";", 1)[0], set_cookie, info)

    async def new_token(self, name: str, role: str, **extra: str) -> dict[str, Any]:
        async with self.admin() as http:
            created: dict[str, Any] = ok(
                await http.post("/tokens", json={"name": name, "role": role, **extra}), 201
            )
        return created

    async def audit(self, **filters: str | int) -> list[dict[str, Any]]:
        async with self.admin() as http:
            found = ok(await http.get("/audit", params={"limit": 1000, **filters}))
        entries: list[dict[str, Any]] = found["entries"]
        return entries


@pytest.fixture
async def browser(infra: Infra, bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    url = f"{infra.database_url}_ses{abs(hash(request.node.name)) % 100_000}"
    await ensure_database(url)
    settings = Settings(
        amqp_url=infra.amqp_url, database_url=url, heartbeat_seconds=60, rpc_timeout_seconds=5
    )
    approval = ServiceProcess(APPROVAL, settings, http_port=0)
    await approval.start()
    try:
        async with running_console(settings) as console:
            yield Browser(console)
    finally:
        await approval.stop()
        await delete_queues(bus, (APPROVAL,))
        await drop_database(url)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    return problem


async def test_signing_in_sets_an_httponly_strict_cookie_that_authenticates(
    browser: Browser,
) -> None:
    before = datetime.now(UTC)
    session = await browser.sign_in(browser.console.admin_token)
    assert session.secret.startswith("lgs_")
    flags = [part.strip() for part in session.set_cookie.split(";")[1:]]
    assert sorted(flags) == ["HttpOnly", "Path=/", "SameSite=Strict"], "no Secure over http"
    assert session.info["name"] == "bootstrap"
    assert session.info["role"] == "admin"
    assert len(session.info["csrf_token"]) >= 32
    ends = datetime.fromisoformat(session.info["expires_at"])
    assert before + timedelta(hours=12) <= ends <= datetime.now(UTC) + timedelta(hours=12)

    # Over https (X-Forwarded-Proto from a proxy uvicorn trusts: 127.0.0.1) it is Secure.
    secure = await browser.sign_in(browser.console.admin_token, **{"X-Forwarded-Proto": "https"})
    assert "Secure" in [part.strip() for part in secure.set_cookie.split(";")]

    async with browser.client(session) as http:
        again = await http.get("/session")
        assert ok(again) == session.info
        assert "set-cookie" not in again.headers
        assert again.headers["cache-control"] == "no-store"
        ok(await http.get("/groups"))
        ok(await http.get("/audit", params={"limit": 1}))

        missing = refused(await http.post("/groups", json={"name": "NoHeader"}), 403)
        assert missing["detail"] == CSRF_REFUSED
        wrong = await http.post(
            "/groups", json={"name": "WrongHeader"}, headers={"X-CSRF-Token": "x" * 43}
        )
        assert refused(wrong, 403)["detail"] == CSRF_REFUSED
        other = await http.post("/groups", json={"name": "Other"}, headers=secure.csrf)
        assert refused(other, 403)["detail"] == CSRF_REFUSED, "another session's token"

        made = ok(await http.post("/groups", json={"name": "ByCookie"}, headers=session.csrf))
        assert made["name"] == "ByCookie"
        names = [g["name"] for g in ok(await http.get("/groups"))["groups"]]
        assert "ByCookie" in names
        assert not {"NoHeader", "WrongHeader", "Other"} & set(names)
        viewer = ok(
            await http.post("/tokens", json={"name": "v", "role": "viewer"}, headers=session.csrf),
            201,
        )

    # A bearer header wins over the cookie: the viewer's token, with the admin's session.
    async with browser.client(session, token=viewer["token"]) as http:
        both = await http.post("/groups", json={"name": "Both"}, headers=session.csrf)
        assert "role viewer" in refused(both, 403)["detail"]

    (signed_in, *_) = await browser.audit(command="console.session.start")
    assert signed_in["token_name"] == "bootstrap"  # noqa: S105 - a name
    assert signed_in["status"] == 200
    assert signed_in["content"] == {"body": {"token": "[removed]"}}
    csrf_refusals = await browser.audit(status=403, path_prefix=f"{PREFIX}/groups")
    assert {e["token_name"] for e in csrf_refusals} == {"bootstrap", "v"}
    everything = str(await browser.audit())
    for secret in (browser.console.admin_token, session.secret, session.info["csrf_token"]):
        assert secret not in everything


async def test_a_viewer_session_reads_and_judges_but_never_writes(browser: Browser) -> None:
    viewer = await browser.new_token("reader", "viewer")
    session = await browser.sign_in(viewer["token"])
    assert session.info["role"] == "viewer"
    async with browser.client(session) as http:
        ok(await http.get("/groups"))
        write = await http.post("/groups", json={"name": "Nope"}, headers=session.csrf)
        assert refused(write, 403)["detail"] == "token 'reader' has role viewer: read only"
        tokens = await http.post(
            "/tokens", json={"name": "x", "role": "admin"}, headers=session.csrf
        )
        assert refused(tokens, 403)["detail"] == "token 'reader' has role viewer: read only"
        judged = await http.post(
            "/validate",
            json={"method": "POST", "path": "/groups", "body": {"name": "Fine"}},
            headers=session.csrf,
        )
        assert ok(judged) == {"valid": True}
        names = [g["name"] for g in ok(await http.get("/groups"))["groups"]]
        assert "Nope" not in names
        assert "Fine" not in names


async def test_a_session_ends_with_its_token(browser: Browser) -> None:
    """Revoked: the next request is refused; expiring: the session never outlives it."""
    doomed = await browser.new_token("doomed", "admin")
    revoked = await browser.sign_in(doomed["token"])
    async with browser.admin() as http:
        ok(await http.delete(f"/tokens/{doomed['token_id']}"))
    async with browser.client(revoked) as http:
        gone = await http.get("/groups")
        assert "was revoked at" in refused(gone, 401)["detail"]
        assert gone.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=; Max-Age=0")
        assert "was revoked at" in refused(await http.get("/session"), 401)["detail"]

    soon = datetime.now(UTC) + timedelta(seconds=3)
    brief = await browser.new_token("brief", "admin", expires_at=soon.isoformat())
    expiring = await browser.sign_in(brief["token"])
    assert datetime.fromisoformat(expiring.info["expires_at"]) == soon, "never beyond the token"
    async with browser.client(expiring) as http:
        ok(await http.get("/groups"))
        await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
        ended = await http.get("/groups")
        assert "expired at" in refused(ended, 401)["detail"]

    async with browser.client() as http:
        unknown = await http.post("/session", json={"token": "lg_nobody_knows_this"})
        assert refused(unknown, 401)["detail"] == "unknown API token"
        assert "set-cookie" not in unknown.headers
        again = await http.post("/session", json={"token": doomed["token"]})
        assert "was revoked at" in refused(again, 401)["detail"]
    (stranger,) = await browser.audit(
        command="console.session.start", status=401, actor="unknown lg_nob…"
    )
    assert stranger["content"] == {"body": {"token": "[removed]"}}


async def test_signing_out_ends_the_session(browser: Browser) -> None:
    session = await browser.sign_in(browser.console.admin_token)
    async with browser.client(session) as http:
        forged = await http.delete("/session")
        assert refused(forged, 403)["detail"] == CSRF_REFUSED
        ok(await http.get("/session"))
        out = await http.delete("/session", headers=session.csrf)
        assert out.status_code == 204, out.text
        assert out.headers["set-cookie"] == (
            f"{SESSION_COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/"
        )
        ended = refused(await http.get("/session"), 401)
        assert ended["detail"] == "unknown or ended session: sign in again (POST /api/v1/session)"
        assert refused(await http.get("/groups"), 401)["detail"] == ended["detail"]
    async with browser.client() as http:
        none = refused(await http.get("/session"), 401)
        assert none["detail"] == "no session: sign in with POST /api/v1/session"
    async with browser.admin() as http:
        # A bearer token is no browser session: nothing to show or end.
        assert (await http.get("/session")).status_code == 401
        assert (await http.delete("/session")).status_code == 401
    ended_rows = await browser.audit(command="console.session.end")
    assert sorted(e["status"] for e in ended_rows) == [204, 401, 403]
    (signed_out,) = [e for e in ended_rows if e["status"] == 204]
    assert signed_out["token_name"] == "bootstrap"  # noqa: S105 - a name


INVALID = [
    # FastAPI's check of the body, field by field.
    ("POST", "/policies", "/policies", {"name": "x", "settings": {"restart_delay_minutes": 99}}),
    ("PUT", "/groups/{group}/name", "/groups/Pilot/name", {"name": "a/b"}),
    ("PUT", "/uploads/{upload_id}/description", "/uploads/u-1/description", {"title": 5}),
    ("POST", "/groups", "/groups", {"name": "G", "colour": "blue"}),
    ("POST", "/groups", "/groups", []),
    ("PUT", "/groups/{group}/name", "/groups/Pilot/name", {"name": "x", "a\u0000": 1}),
    # The check of the command as a whole (text PostgreSQL cannot store).
    ("PUT", "/groups/{group}/parent", "/groups/Pilot/parent", {"parent": "a\u0000b"}),
]


async def test_validate_judges_a_body_as_its_route_would(browser: Browser) -> None:
    session = await browser.sign_in(browser.console.admin_token)
    async with browser.admin() as bearer, browser.client(session) as http:
        ok(await bearer.post("/groups", json={"name": "Pilot"}))
        for method, template, path, body in INVALID:
            real = refused(await bearer.request(method, path, json=body), 422)
            judged = await http.post(
                "/validate",
                json={"method": method, "path": template, "body": body},
                headers=session.csrf,
            )
            assert refused(judged, 422) == real, (method, template)
            assert real["detail"]
        method, _, path, body = INVALID[0]
        named = refused(await bearer.request(method, path, json=body), 422)
        assert named["field"] == "settings.restart_delay_minutes"
        assert "99" in named["detail"]

        valid = {"method": "POST", "path": "/groups", "body": {"name": "Judged"}}
        assert ok(await http.post("/validate", json=valid, headers=session.csrf)) == {"valid": True}
        prefixed = {**valid, "method": "post", "path": f"{PREFIX}/groups"}
        assert ok(await http.post("/validate", json=prefixed, headers=session.csrf))["valid"]
        assert "Judged" not in [g["name"] for g in ok(await http.get("/groups"))["groups"]]

        # A form being filled in: only the fields present are judged.
        started = {
            "method": "POST",
            "path": "/policies",
            "body": {"settings": {"scheduled_time": "22:00"}},
        }
        whole = refused(await http.post("/validate", json=started, headers=session.csrf), 422)
        assert whole["field"] == "name"
        assert "Field required" in whole["detail"]
        partial = {**started, "partial": True}
        assert ok(await http.post("/validate", json=partial, headers=session.csrf))["valid"]
        typo = {**partial, "body": {"settings": {"restart_delay_minutes": 99}}}
        wrong = refused(await http.post("/validate", json=typo, headers=session.csrf), 422)
        assert wrong["field"] == "settings.restart_delay_minutes"

        nowhere = {"method": "PUT", "path": "/nowhere", "body": {}}
        lost = refused(await http.post("/validate", json=nowhere, headers=session.csrf), 404)
        assert lost["field"] == "path"
        assert "/nowhere" in lost["detail"]
        # Text a problem cannot hold as it stands (a NUL; a lone surrogate, which httpx would
        # not encode, as its JSON escape) is answered all the same, escaped.
        for unstorable, status in (
            (r'{"method": "P\u0000", "path": "/x\u0000", "body": {}}', 404),
            (r'{"method": "PUT", "path": "/x\ud800", "body": {}}', 422),
        ):
            odd = await http.post(
                "/validate",
                content=unstorable,
                headers={**session.csrf, "Content-Type": "application/json"},
            )
            assert refused(odd, status)["field"] == ("path" if status == 404 else None)
        read = {"method": "GET", "path": "/groups", "body": {}}
        bodiless = refused(await http.post("/validate", json=read, headers=session.csrf), 422)
        assert "reads no JSON body" in bodiless["detail"]
        forged = await http.post("/validate", json=valid)
        assert refused(forged, 403)["detail"] == CSRF_REFUSED
    async with browser.client() as anonymous:
        assert (await anonymous.post("/validate", json=valid)).status_code == 401

    # Judging changes nothing and is not a refusal: only the door's refusals are recorded.
    recorded = await browser.audit(command="console.validate")
    assert sorted(e["status"] for e in recorded) == [401, 403]


async def test_the_pages_are_served_with_their_security_headers(browser: Browser) -> None:
    async with httpx.AsyncClient(base_url=browser.console.url, timeout=30) as http:
        index = await http.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert "<html" in index.text.lower()
        assert index.content == (STATIC / "index.html").read_bytes()
        expected = {
            "content-security-policy": CSP,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
            "cache-control": "no-cache",
        }
        assert {name: index.headers.get(name) for name in expected} == expected
        assert (await http.head("/")).status_code == 200

        script = sorted(STATIC.rglob("*.js"))[0].relative_to(STATIC).as_posix()
        served = await http.get(f"/static/{script}")
        assert served.status_code == 200
        assert served.headers["content-type"] == "text/javascript; charset=utf-8"
        assert {name: served.headers.get(name) for name in expected} == expected
        etag = served.headers["etag"]
        cached = await http.get(f"/static/{script}", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.headers["content-security-policy"] == CSP

        for listing in ("/static/", "/static/js", "/static/js/", "/static/nothing.js"):
            assert (await http.get(listing)).status_code == 404, listing
        escape = await http.get("/static/%2e%2e/app.py")
        assert escape.status_code == 404
        assert "import" not in escape.text

        document = ok(await http.get(f"{PREFIX}/openapi.json"))
    assert set(document["paths"][f"{PREFIX}/session"]) == {"get", "post", "delete"}
    assert "post" in document["paths"][f"{PREFIX}/validate"]
    assert "/" not in document["paths"]
