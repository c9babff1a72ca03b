"""`lockgate tokens ...`: API tokens of the console (admin only)."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
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
    json: Mapping[str, str | None] | None = None,
    params: Mapping[str, int | str] | None = None,
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


_LIFETIME = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def lifetime(text: str) -> timedelta:
    """`--expires-in`: a number and a unit, m(inutes), h(ours), d(ays) or w(eeks)."""
    found = _LIFETIME.fullmatch(text.strip().lower())
    if found is None or int(found.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a lifetime: give a positive number and a unit, m, h, d or w "
            "(30d, 12h, 90m, 2w)"
        )
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def moment(text: str) -> datetime:
    """`--expires-at`: an ISO 8601 time with its UTC offset."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time with its offset: give ISO 8601, e.g. 2027-01-31T18:00+01:00"
        )
    return parsed


def _expiry(args: argparse.Namespace) -> str | None:
    if args.expires_in is not None:
        expires: datetime | None = datetime.now(UTC) + args.expires_in
    else:
        expires = args.expires_at
    return None if expires is None else expires.isoformat()


async def cmd_create(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    created = await _request(
        settings,
        "POST",
        "/tokens",
        CreatedToken,
        json={"name": args.name, "role": args.role, "expires_at": _expiry(args)},
    )
    until = f"expires {created.expires_at.isoformat()}" if created.expires_at else "no expiry"
    out.result(created, f"{created.token}\n(role {created.role}; {until}; shown once, keep it)")
    return 0


async def cmd_list(settings: Settings, out: Output, _: argparse.Namespace) -> int:
    found = await _request(settings, "GET", "/tokens", TokenList)
    lines = []
    for t in found.tokens:
        until = f"  expires {to_jsonable_python(t.expires_at)}" if t.expires_at else ""
        state = "" if t.state == "active" else f"  ({t.state})"
        lines.append(f"{t.token_id}  {t.role:<6} {t.name}{until}{state}")
    out.result(found, "\n".join(lines))
    return 0


async def cmd_revoke(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    found = await _request(settings, "DELETE", f"/tokens/{args.token_id}", TokenList)
    out.result(found, f"revoked {args.token_id}")
    return 0


CONTENT_SHOWN = 300
"""Characters of an entry's content shown per line (--json has all of it)."""


async def cmd_audit(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    params: dict[str, int | str] = {"limit": args.limit, "offset": args.offset}
    for name in ("actor", "path_prefix", "status", "command"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    found = await _request(settings, "GET", "/audit", AuditLog, params=params)
    lines = []
    for e in found.entries:  # times as the API wrote them
        lines.append(
            f"{to_jsonable_python(e.at)}  {e.token_name:<12} {e.role or '-':<6} {e.method:<6}"
            f" {e.path}  {e.status}  {e.command or ''}  {e.correlation_id}"
        )
        if e.content is not None:
            shown = json.dumps(e.content, ensure_ascii=False, separators=(",", ":"))
            cut = "…" if len(shown) > CONTENT_SHOWN else ""
            lines.append(f"    content {shown[:CONTENT_SHOWN]}{cut}")
        if e.detail:
            lines.append(f"    why {e.detail}")
    lines.append(f"{len(found.entries)} of {found.total} entries")
    out.result(found, "\n".join(lines))
    return 0


def add_parsers(sub: Commands) -> None:
    tokens = sub.add_parser("tokens", help="API tokens (admin)")
    commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = commands.add_parser("create", help="create a token; its secret is shown once")
    create.add_argument("--role", choices=["admin", "viewer"], required=True)
    create.add_argument("--name", default="cli")
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires-in", type=lifetime, help="it stops working after this long: 30d, 12h, 90m, 2w"
    )
    expiry.add_argument("--expires-at", type=moment, help="it stops working then (ISO 8601)")
    create.set_defaults(handler=cmd_create)
    commands.add_parser("list", help="every token").set_defaults(handler=cmd_list)
    revoke = commands.add_parser("revoke", help="revoke a token")
    revoke.add_argument("token_id")
    revoke.set_defaults(handler=cmd_revoke)
    audit = sub.add_parser(
        "audit", help="the audit log: writes and refused requests, with what they asked"
    )
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--offset", type=int, default=0)
    audit.add_argument("--actor", help="only this token's entries (its name or id)")
    audit.add_argument("--path", dest="path_prefix", help="only paths starting so")
    audit.add_argument("--status", type=int, help="only answers with this HTTP status")
    audit.add_argument("--command", help="only this command, e.g. approval.update.approve.v1")
    audit.set_defaults(handler=cmd_audit)
