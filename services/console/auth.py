"""API tokens (kept as sha256), roles, expiry and the bootstrap admin token.

Who called is left in the request's state (`caller`, or `presented` for a token nobody
knows) for the audit log (services/console/audit.py), whatever the answer.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from libs.db.pool import Pool, advisory_key
from libs.settings import Settings
from services.console.models import CreatedToken, Role, Token

MIGRATIONS = Path(__file__).parent / "migrations"
BOOTSTRAP_NAME = "bootstrap"
ADMINS_LOCK = "lockgate.console.admins"
"""Held (transaction advisory lock) by whatever may take away an admin token."""
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


def _refused(detail: str) -> HTTPException:
    return HTTPException(401, detail, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
) -> Caller:
    """Who calls: a valid, unrevoked, unexpired bearer token, else 401 naming why."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "send an API token: Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
        )
    secret = credentials.credentials.strip()
    row = await _pool(request).fetchrow(
        "SELECT token_id::text, name, role, revoked_at, expires_at,"
        " expires_at <= now() AS expired FROM tokens WHERE sha256 = $1",
        digest(secret),
    )
    if row is None:
        request.state.presented = shown_prefix(secret)
        raise _refused("unknown API token")
    found = Caller(row["token_id"], row["name"], row["role"])
    request.state.caller = found
    if row["revoked_at"] is not None:
        raise _refused(f"API token {found.name!r} was revoked at {row['revoked_at'].isoformat()}")
    if row["expired"]:
        raise _refused(
            f"API token {found.name!r} expired at {row['expires_at'].isoformat()}: an admin "
            "makes a new one (lockgate tokens create)"
        )
    return found


async def viewer(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """Reads: any role."""
    return who


async def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """Writes: admin only, else 403."""
    if who.role != "admin":
        raise HTTPException(403, f"token {who.name!r} has role viewer: read only")
    return who


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
