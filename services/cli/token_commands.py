"""`lockgate tokens ...`: API tokens of the console (admin only)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

import httpx
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from libs.contracts.api import PREFIX
from libs.settings import Settings
from services.cli.common import ApiFailure, Output, problem_text
from services.console.models import AuditLog, CreatedToken, TokenList

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

Reply = TypeVar("Reply", bound=BaseModel)


async def _request(
    settings: Settings,
    method: str,
    path: str,
    reply: type[Reply],
    *,
    json: Mapping[str, str] | None = None,
    params: Mapping[str, int] | None = None,
) -> Reply:
    """Call one of the console's own routes (tokens, audit); its answer read as `reply`."""
    token = settings.token.get_secret_value() if settings.token else ""
    async with httpx.AsyncClient(
        base_url=settings.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        try:
            response = await http.request(method, PREFIX + path, json=json, params=params)
        except httpx.TransportError as error:
            raise ApiFailure(f"cannot reach the console at {settings.url}: {error}") from None
    if response.status_code >= 400:
        raise ApiFailure(problem_text(response))
    return reply.model_validate_json(response.content)


async def cmd_create(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    created = await _request(
        settings, "POST", "/tokens", CreatedToken, json={"name": args.name, "role": args.role}
    )
    out.result(created, f"{created.token}\n(role {created.role}; shown once, keep it)")
    return 0


async def cmd_list(settings: Settings, out: Output, _: argparse.Namespace) -> int:
    found = await _request(settings, "GET", "/tokens", TokenList)
    lines = [
        f"{t.token_id}  {t.role:<6} {t.name}" + ("  (revoked)" if t.revoked_at else "")
        for t in found.tokens
    ]
    out.result(found, "\n".join(lines))
    return 0


async def cmd_revoke(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    found = await _request(settings, "DELETE", f"/tokens/{args.token_id}", TokenList)
    out.result(found, f"revoked {args.token_id}")
    return 0


async def cmd_audit(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    found = await _request(settings, "GET", "/audit", AuditLog, params={"limit": args.limit})
    lines = [  # times as the API wrote them
        f"{to_jsonable_python(e.at)}  {e.token_name:<12} {e.method:<6} {e.path}  {e.status}"
        for e in found.entries
    ]
    out.result(found, "\n".join(lines))
    return 0


def add_parsers(sub: Commands) -> None:
    tokens = sub.add_parser("tokens", help="API tokens (admin)")
    commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = commands.add_parser("create", help="create a token; its secret is shown once")
    create.add_argument("--role", choices=["admin", "viewer"], required=True)
    create.add_argument("--name", default="cli")
    create.set_defaults(handler=cmd_create)
    commands.add_parser("list", help="every token").set_defaults(handler=cmd_list)
    revoke = commands.add_parser("revoke", help="revoke a token")
    revoke.add_argument("token_id")
    revoke.set_defaults(handler=cmd_revoke)
    audit = sub.add_parser("audit", help="the audit log of writes through the API")
    audit.add_argument("--limit", type=int, default=100)
    audit.set_defaults(handler=cmd_audit)
