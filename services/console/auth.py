"""API tokens (kept as sha256), roles, the bootstrap admin token and the audit log."""

from __future__ import annotations

import hashlib
import secrets
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from libs.db.pool import Pool, advisory_key
from libs.settings import Settings
from services.console.models import AuditEntry, AuditLog, CreatedToken, Role, Token

MIGRATIONS = Path(__file__).parent / "migrations"
BOOTSTRAP_NAME = "bootstrap"


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


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
) -> Caller:
    """Who calls: a valid, unrevoked bearer token, else 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "send an API token: Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
        )
    row = await _pool(request).fetchrow(
        "SELECT token_id::text, name, role FROM tokens WHERE sha256 = $1 AND revoked_at IS NULL",
        digest(credentials.credentials.strip()),
    )
    if row is None:
        raise HTTPException(401, "unknown or revoked API token", {"WWW-Authenticate": "Bearer"})
    return Caller(row["token_id"], row["name"], row["role"])


async def viewer(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """Reads: any role."""
    return who


async def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """Writes: admin only, else 403."""
    if who.role != "admin":
        raise HTTPException(403, f"token {who.name!r} has role viewer: read only")
    return who


async def create_token(pool: Pool, name: str, role: Role) -> CreatedToken:
    secret = new_secret()
    row = await pool.fetchrow(
        "INSERT INTO tokens (token_id, name, role, sha256) VALUES ($1, $2, $3, $4)"
        " RETURNING token_id::text, name, role, created_at, revoked_at",
        uuid.uuid4(),
        name,
        role,
        digest(secret),
    )
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    return CreatedToken(**dict(row), token=secret)


async def tokens(pool: Pool) -> list[Token]:
    rows = await pool.fetch(
        "SELECT token_id::text, name, role, created_at, revoked_at FROM tokens"
        " ORDER BY created_at DESC"
    )
    return [Token(**dict(row)) for row in rows]


class LastAdmin(Exception):
    """Revoking this token would leave no admin token: nobody could administer any more."""


async def revoke(pool: Pool, token_id: str) -> bool:
    """Revoke a token (False: no such active token); never the last admin token."""
    try:
        as_id = uuid.UUID(token_id)
    except ValueError:
        return False
    admins = await pool.fetch(
        "SELECT token_id FROM tokens WHERE role = 'admin' AND revoked_at IS NULL"
    )
    if [row["token_id"] for row in admins] == [as_id]:
        raise LastAdmin(f"token {token_id} is the last admin token; create another first")
    found = await pool.fetchval(
        "UPDATE tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL"
        " RETURNING true",
        as_id,
    )
    return bool(found)


async def audit(
    pool: Pool,
    who: Caller,
    request: Request,
    *,
    command: str | None,
    status: int,
    correlation_id: str,
) -> None:
    """Record one write: who, what, when, with which outcome and correlation id."""
    await pool.execute(
        "INSERT INTO audit (token_id, token_name, role, method, path, command, status,"
        " correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        uuid.UUID(who.token_id),
        who.name,
        who.role,
        request.method,
        request.url.path,
        command,
        status,
        correlation_id,
    )


async def audit_log(pool: Pool, offset: int, limit: int) -> AuditLog:
    rows = await pool.fetch(
        "SELECT seq, at, token_name, role, method, path, command, status, correlation_id"
        " FROM audit ORDER BY seq DESC OFFSET $1 LIMIT $2",
        offset,
        limit,
    )
    total = await pool.fetchval("SELECT count(*) FROM audit")
    return AuditLog(entries=[AuditEntry(**dict(row)) for row in rows], total=total)
