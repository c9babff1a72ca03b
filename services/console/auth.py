"""API tokens (kept as sha256), roles, expiry, the bootstrap admin token, and the browser
sessions of the console's pages.

A caller proves who it is by `Authorization: Bearer <token>` or, in a browser, by the session
cookie that signing in with a token set (`POST /api/v1/session`); a bearer header wins when
both are sent. A session works only while its token does, and a cookie-authenticated request
that may change something must also carry the session's CSRF token (`X-CSRF-Token`).

Who called is left in the request's state (`caller`, or `presented` for a token or session
nobody knows) for the audit log (services/console/audit.py), whatever the answer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from libs.db.pool import Pool, advisory_key
from libs.settings import Settings
from services.console.models import CreatedToken, Role, Token

MIGRATIONS = Path(__file__).parent / "migrations"
BOOTSTRAP_NAME = "bootstrap"
ADMINS_LOCK = "lockgate.console.admins"
"""Held (transaction advisory lock) by whatever may take away an admin token."""
SESSION_COOKIE = "lockgate_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_REFUSED = (
    "CSRF token missing or wrong: send the X-CSRF-Token header that POST or GET "
    "/api/v1/session returned"
)
READS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods a session cookie alone may authenticate (any other needs the CSRF token too)."""
_SESSION_SEEN_SECONDS = 60
"""A session's last_seen_at is written at most this often (not on every request)."""
_CALLER_COLUMNS = (
    "t.token_id::text, t.name, t.role, t.revoked_at, t.expires_at, t.expires_at <= now() AS expired"
)
_LISTED = (
    "token_id::text, name, role, created_at, revoked_at, expires_at,"
    " CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
    " WHEN expires_at <= now() THEN 'expired' ELSE 'active' END AS state"
)


@dataclass(frozen=True)
class Caller:
    token_id: str
    name: str
    role: Role


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "lg_" + secrets.token_urlsafe(32)


async def bootstrap(pool: Pool, settings: Settings) -> None:
    """The first admin token: LOCKGATE_BOOTSTRAP_TOKEN if set, else generated and printed once."""
    given = settings.bootstrap_token.get_secret_value().strip() if settings.bootstrap_token else ""
    if given:
        await pool.execute(
            "INSERT INTO tokens (token_id, name, role, sha256) VALUES ($1, $2, 'admin', $3)"
            " ON CONFLICT (sha256) DO NOTHING",
            uuid.uuid4(),
            BOOTSTRAP_NAME,
            digest(given),
        )
        return
    secret = new_secret()
    async with pool.acquire() as conn, conn.transaction():
        # Console replicas starting together: one of them makes the token, the others wait
        # for its transaction and then see a token exists.
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", advisory_key("lockgate.console.bootstrap")
        )
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tokens)"):
            return
        await conn.execute(
            "INSERT INTO tokens (token_id, name, role, sha256) VALUES ($1, $2, 'admin', $3)",
            uuid.uuid4(),
            BOOTSTRAP_NAME,
            digest(secret),
        )
    print(  # shown once, on purpose, to whoever started the console
        f"lockgate console: bootstrap admin token (shown once): {secret}", file=sys.stderr
    )


def _pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


BEARER = HTTPBearer(auto_error=False, description="An API token: `lockgate tokens create`.")


def shown_prefix(secret: str) -> str:
    """What the audit log may say of a token nobody knows: its first characters only."""
    return f"unknown {secret[:6]}…" if secret else "anonymous"


COOKIE = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=(
        "A browser session: the cookie `POST /api/v1/session` sets. Requests other than "
        "GET, HEAD and OPTIONS also need its CSRF token in `X-CSRF-Token`."
    ),
)


def _refused(detail: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(
        401, detail, {"WWW-Authenticate": 'Bearer error="invalid_token"', **(headers or {})}
    )


def is_https(request: Request) -> bool:
    """Whether the browser reached the console over https: the request's own scheme, which
    uvicorn takes from X-Forwarded-Proto only when the proxy is one it trusts
    (--forwarded-allow-ips, FORWARDED_ALLOW_IPS; 127.0.0.1 by default)."""
    return request.url.scheme == "https"


def session_cookie(request: Request, secret: str) -> str:
    """The Set-Cookie value that gives the browser its session: never readable by scripts
    (HttpOnly), never sent by another site's page (SameSite=Strict), Secure over https; no
    Max-Age, so it ends with the browser too (the server ends it at its expires_at)."""
    secure = "; Secure" if is_https(request) else ""
    return f"{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/{secure}"


def cleared_cookie(request: Request) -> str:
    """The Set-Cookie value that makes the browser forget its session cookie."""
    secure = "; Secure" if is_https(request) else ""
    return f"{SESSION_COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/{secure}"


def _admitted(request: Request, row: asyncpg.Record, headers: dict[str, str] | None) -> Caller:
    """The caller a token's row names (kept for the audit log), unless the token was
    revoked or has expired: then 401 saying so."""
    found = Caller(row["token_id"], row["name"], row["role"])
    request.state.caller = found
    if row["revoked_at"] is not None:
        raise _refused(
            f"API token {found.name!r} was revoked at {row['revoked_at'].isoformat()}", headers
        )
    if row["expired"]:
        raise _refused(
            f"API token {found.name!r} expired at {row['expires_at'].isoformat()}: an admin "
            "makes a new one (lockgate tokens create)",
            headers,
        )
    return found


async def token_caller(request: Request, secret: str) -> Caller:
    """Who an API token's secret names: a known, unrevoked, unexpired token, else 401 naming
    why. Bearer headers and signing in (POST /api/v1/session) both come here."""
    row = await _pool(request).fetchrow(
        f"SELECT {_CALLER_COLUMNS} FROM tokens t WHERE t.sha256 = $1", digest(secret)
    )
    if row is None:
        request.state.presented = shown_prefix(secret)
        raise _refused("unknown API token")
    return _admitted(request, row, None)


@dataclass(frozen=True)
class Session:
    """A browser session: whose token it works for, its CSRF token and when it ends."""

    caller: Caller
    csrf_token: str
    expires_at: datetime


async def session_caller(request: Request, secret: str) -> Session:
    """The session a cookie's secret names, while it and its token work, else 401 naming why
    (and telling the browser to drop the cookie)."""
    drop = {"Set-Cookie": cleared_cookie(request)}
    row = await _pool(request).fetchrow(
        f"SELECT {_CALLER_COLUMNS}, s.csrf_token, s.expires_at AS session_expires_at,"
        " s.expires_at <= now() AS session_expired,"
        " s.last_seen_at < now() - make_interval(secs => $2) AS seen_long_ago"
        " FROM sessions s JOIN tokens t ON t.token_id = s.token_id WHERE s.sha256 = $1",
        digest(secret),
        float(_SESSION_SEEN_SECONDS),
    )
    if row is None:
        request.state.presented = "unknown session"
        raise _refused("unknown or ended session: sign in again (POST /api/v1/session)", drop)
    found = _admitted(request, row, drop)
    if row["session_expired"]:
        raise _refused(
            f"the session of {found.name!r} ended at {row['session_expires_at'].isoformat()}: "
            "sign in again (POST /api/v1/session)",
            drop,
        )
    if row["seen_long_ago"]:
        await _pool(request).execute(
            "UPDATE sessions SET last_seen_at = now() WHERE sha256 = $1", digest(secret)
        )
    return Session(found, row["csrf_token"], row["session_expires_at"])


def check_csrf(request: Request, session: Session) -> None:
    """A cookie-authenticated request that may change something carries the session's CSRF
    token, which another site's page cannot read; else 403."""
    if request.method in READS:
        return
    given = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise HTTPException(403, CSRF_REFUSED)


async def session(
    request: Request, cookie: Annotated[str | None, Depends(COOKIE)] = None
) -> Session:
    """The browser session of the request's cookie (a bearer header plays no part), its CSRF
    token checked for anything but a read; else 401 (403 for the CSRF token)."""
    if not cookie:
        raise HTTPException(
            401, "no session: sign in with POST /api/v1/session", {"WWW-Authenticate": "Bearer"}
        )
    found = await session_caller(request, cookie)
    check_csrf(request, found)
    return found


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
    cookie: Annotated[str | None, Depends(COOKIE)] = None,
) -> Caller:
    """Who calls: a valid, unrevoked, unexpired bearer token, else a working session cookie
    (with its CSRF token for anything but a read); else 401 naming why."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return await token_caller(request, credentials.credentials.strip())
    if cookie:
        return (await session(request, cookie)).caller
    raise HTTPException(
        401,
        "send an API token: Authorization: Bearer <token> (or sign in: POST /api/v1/session)",
        {"WWW-Authenticate": "Bearer"},
    )


async def viewer(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """Reads: any role."""
    return who


async def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """Writes: admin only, else 403."""
    if who.role != "admin":
        raise HTTPException(403, f"token {who.name!r} has role viewer: read only")
    return who


async def sign_in(request: Request, secret: str, hours: int) -> tuple[str, Session]:
    """A new browser session for the API token `secret` (401 naming why if the token does
    not work), lasting `hours` but never beyond the token's own expiry; returns the cookie's
    secret (only its sha256 is kept) and the session."""
    found = await token_caller(request, secret)
    cookie = "lgs_" + secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    pool = _pool(request)
    # Sessions that ended over a day ago are forgotten (until then a cookie gets "ended at").
    await pool.execute("DELETE FROM sessions WHERE expires_at < now() - interval '1 day'")
    ends = await pool.fetchval(
        "INSERT INTO sessions (sha256, token_id, csrf_token, expires_at)"
        " SELECT $1, token_id, $2, LEAST(now() + make_interval(hours => $3), expires_at)"
        " FROM tokens WHERE token_id = $4 RETURNING expires_at",
        digest(cookie),
        csrf,
        hours,
        uuid.UUID(found.token_id),
    )
    return cookie, Session(found, csrf, ends)


async def sign_out(pool: Pool, cookie: str) -> None:
    """End the browser session of this cookie's secret."""
    await pool.execute("DELETE FROM sessions WHERE sha256 = $1", digest(cookie))


class TokenExpiryInPast(ValueError):
    """A new token's expires_at is not in the future."""


async def create_token(
    pool: Pool, name: str, role: Role, expires_at: datetime | None = None
) -> CreatedToken:
    """A new token; its secret is returned once and only its sha256 kept."""
    secret = new_secret()
    row = await pool.fetchrow(
        "INSERT INTO tokens (token_id, name, role, sha256, expires_at)"
        " SELECT $1, $2, $3, $4, $5 WHERE $5::timestamptz IS NULL OR $5 > now()"
        f" RETURNING {_LISTED}",
        uuid.uuid4(),
        name,
        role,
        digest(secret),
        expires_at,
    )
    if row is None:
        raise TokenExpiryInPast(
            f"expires_at = {expires_at.isoformat() if expires_at else None!r} is not in the "
            "future: give a time to come, or none for a token that does not expire"
        )
    return CreatedToken(**dict(row), token=secret)


async def tokens(pool: Pool) -> list[Token]:
    rows = await pool.fetch(f"SELECT {_LISTED} FROM tokens ORDER BY created_at DESC")
    return [Token(**dict(row)) for row in rows]


class LastAdmin(Exception):
    """Revoking this token would leave no admin token that keeps working: nobody could
    administer any more."""


async def revoke(pool: Pool, token_id: str) -> bool:
    """Revoke a token (False: no such active token); never the last admin token that does
    not expire, even when revokes run at once: they queue on one advisory lock, so each
    counts the admins the one before it left."""
    try:
        as_id = uuid.UUID(token_id)
    except ValueError:
        return False
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(ADMINS_LOCK))
        row = await conn.fetchrow(
            "SELECT role, expires_at FROM tokens WHERE token_id = $1 AND revoked_at IS NULL",
            as_id,
        )
        if row is None:
            return False
        if row["role"] == "admin" and row["expires_at"] is None:
            others = await conn.fetchval(
                "SELECT count(*) FROM tokens WHERE role = 'admin' AND revoked_at IS NULL"
                " AND expires_at IS NULL AND token_id <> $1",
                as_id,
            )
            if others == 0:
                raise LastAdmin(
                    f"token {token_id} is the last admin token that does not expire; create "
                    "another admin token without an expiry first"
                )
        await conn.execute("UPDATE tokens SET revoked_at = now() WHERE token_id = $1", as_id)
    return True
