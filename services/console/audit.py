"""The audit log: who asked what of the API, with which content and which answer.

`AuditMiddleware` wraps the whole API (`/api/v1/...`). It records every request that is
not a read (any answer), and every read that was refused (401, 403, 422) or failed (5xx):
the caller (token id and name, `anonymous`, or `unknown lg_ab…` for a token nobody knows;
never a secret), role, method, path, the route's command, the request's content with
secrets removed, the status actually sent (an unexpected exception is recorded as the 500
it becomes), why a request failed, the correlation id and the time. The row is written
before the answer's last byte leaves, so a client holding an answer finds it in the log.
Routes that only judge input (`judges_only`: POST /api/v1/validate, called as a form is
typed) change nothing and answer 422 as their result: they are recorded only when refused
at the door (401, 403) or failed (5xx). Signing in (POST /api/v1/session) is a write like
any other; its `token` field is a secret, so never kept.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import structlog
from pydantic import JsonValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.db.pool import Pool
from libs.service.transient import Failure, classify
from services.console.models import AuditEntry, AuditLog

if TYPE_CHECKING:
    from services.console.auth import Caller

log = structlog.get_logger(__name__)

READS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSED_READS = frozenset({401, 403, 422})
REMOVED = "[removed]"
KEPT_BODY_BYTES = 64 * 1024 * 1024
"""A request body larger than this is recorded by its size only."""
KEPT_TEXT_CHARS = 2000
"""A longer text value is recorded by its length only (no megabytes in the log)."""
KEPT_DETAIL_BYTES = 4096
_SECRET_NAME = re.compile(
    r"secret|token|passw|credential|authori[sz]ation|signature|private|(^|[_-])key($|[_-])|apikey",
    re.IGNORECASE,
)
_CORRELATION = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def correlation_from(headers: Mapping[str, str]) -> str:
    """The caller's X-Correlation-Id if it is a plain token, else a new one."""
    given = headers.get("x-correlation-id", "")
    return given if _CORRELATION.fullmatch(given) else str(uuid.uuid4())


def storable(text: str) -> str:
    """Text PostgreSQL stores: no NUL, no lone surrogate."""
    return text.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


def _b64_size(text: str) -> int:
    """Bytes that a base64 text decodes to (without decoding it)."""
    return len(text.rstrip("=")) * 3 // 4


def redact(value: object, name: str = "") -> JsonValue:
    """`value` as kept in the audit log: secrets removed, base64 data and long text replaced
    by their size, text made storable. `name` is the field holding the value."""
    if name and _SECRET_NAME.search(name):
        return REMOVED
    if isinstance(value, dict):
        return {storable(str(k)): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item, name) for item in value]
    if isinstance(value, str):
        return _text(value, name)
    if value is None or isinstance(value, bool | int) or _finite(value):
        return value  # type: ignore[return-value]  # a JSON scalar, checked just above
    return storable(str(value))  # NaN and infinities are not JSON PostgreSQL takes


def _finite(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _text(value: str, name: str) -> str:
    if name.lower().endswith("_b64") or name.lower() == "b64":
        return f"[base64: {_b64_size(value)} bytes, not kept]"
    if len(value) > KEPT_TEXT_CHARS:
        return f"[text: {len(value)} characters, not kept]"
    return storable(value)


def hidden_values(value: object, name: str = "", *, secret: bool = False) -> set[str]:
    """The texts `redact` removes from `value` (an error's detail may quote them)."""
    secret = secret or bool(name and _SECRET_NAME.search(name))
    if isinstance(value, dict):
        return {t for k, v in value.items() for t in hidden_values(v, str(k), secret=secret)}
    if isinstance(value, list):
        return {t for item in value for t in hidden_values(item, name, secret=secret)}
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        if secret or (isinstance(value, str) and _text(value, name) != storable(value)):
            return {text}
    return set()


def without(detail: str, hidden: set[str]) -> str:
    """`detail` with every hidden text (and any start of one it quotes) removed."""
    for text in sorted(hidden, key=len, reverse=True):
        if len(text) >= 3:  # shorter ones are no secret, and would mangle the detail
            detail = detail.replace(text, REMOVED)
            if len(text) > 8:  # an error may quote a long value cut short
                detail = re.sub(re.escape(text[:8]) + r"[^'\"\s]*", REMOVED, detail)
    return detail


@dataclass(frozen=True)
class Content:
    """A request's content as kept, and the texts taken out of it."""

    kept: JsonValue
    hidden: set[str]


def request_content(query_string: bytes, body: bytes | None, body_size: int) -> Content:
    """What a request asked: its query parameters and JSON body, redacted (None if neither).

    A body that is not JSON, or too large to keep, is recorded by its size only.
    """
    content: dict[str, JsonValue] = {}
    hidden: set[str] = set()
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    if pairs:
        query: dict[str, JsonValue] = {}
        for key, value in pairs:
            hidden |= hidden_values(value, key)
            kept = redact(value, key)
            if key in query:  # a repeated parameter is a list
                earlier = query[key]
                query[key] = [*earlier, kept] if isinstance(earlier, list) else [earlier, kept]
            else:
                query[storable(key)] = kept
        content["query"] = query
    if body_size:
        if body is None:
            content["body"] = f"[{body_size} bytes, not kept]"
        else:
            try:
                parsed = json.loads(body)
                content["body"] = redact(parsed)
                hidden |= hidden_values(parsed)
            except (ValueError, RecursionError):
                content["body"] = f"[{body_size} bytes, not JSON, not kept]"
    return Content(content or None, hidden)


def should_record(method: str, status: int, *, judges_only: bool = False) -> bool:
    """Writes always; reads when refused or failed; a route that only judges input (and
    whose 422 is its answer, not a refusal) when refused at the door (401, 403) or failed."""
    if judges_only:
        return status in (401, 403) or status >= 500
    return method not in READS or status in REFUSED_READS or status >= 500


@dataclass
class _Exchange:
    """One request as it passes: its body (while small enough) and its answer's start."""

    body: bytearray = field(default_factory=bytearray)
    body_size: int = 0
    body_kept: bool = True
    status: int | None = None
    problem: bytearray = field(default_factory=bytearray)
    recorded: bool = False


class AuditMiddleware:
    """Records the API's writes and refusals (see the module's description)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str,
        commands: Mapping[tuple[str, str], str],
        judges_only: Collection[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.commands = commands
        """(method, route path template) -> the command the route sends."""
        self.judges_only = frozenset(judges_only)
        """(method, route path template) of routes that change nothing, only judge input
        (POST /api/v1/validate, called as a form is typed): see `should_record`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self.prefix + "/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        correlation_id = correlation_from(headers)
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        method = str(scope["method"])
        seen = _Exchange()

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request" and method not in READS:
                chunk: bytes = message.get("body", b"")
                seen.body_size += len(chunk)
                if seen.body_kept and seen.body_size <= KEPT_BODY_BYTES:
                    seen.body.extend(chunk)
                else:
                    seen.body_kept, seen.body = False, bytearray()
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = int(message["status"])
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"x-correlation-id" not in names:
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"x-correlation-id", correlation_id.encode()),
                    ]
            elif message["type"] == "http.response.body" and seen.status is not None:
                if seen.status >= 400 and len(seen.problem) < KEPT_DETAIL_BYTES:
                    seen.problem.extend(message.get("body", b"")[:KEPT_DETAIL_BYTES])
                if not message.get("more_body", False) and not seen.recorded:
                    seen.recorded = True
                    await self._record(scope, seen, seen.status, correlation_id)
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except Exception:
            if not seen.recorded:
                seen.recorded = True
                await self._record(scope, seen, 500, correlation_id, "unexpected failure")
            raise

    async def _record(
        self, scope: Scope, seen: _Exchange, status: int, correlation_id: str, why: str = ""
    ) -> None:
        method = str(scope["method"])
        template = getattr(scope.get("route"), "path", None)
        if not should_record(method, status, judges_only=(method, template) in self.judges_only):
            return
        state = scope.get("state", {})
        who: Caller | None = state.get("caller")
        content = request_content(
            scope.get("query_string", b""),
            bytes(seen.body) if seen.body_kept else None,
            seen.body_size,
        )
        detail = (why or _detail(seen.problem)) if status >= 400 else None
        if detail is not None:
            detail = without(detail, content.hidden)
        if who is not None:
            name: str = who.name
        else:
            presented = state.get("presented")
            if presented is None:
                headers = dict(scope.get("headers", []))
                given = headers.get(b"authorization", b"").decode("latin-1").split(" ", 1)
                presented = (
                    f"unchecked {given[-1].strip()[:6]}…" if given[-1].strip() else "anonymous"
                )
            name = str(presented)
        try:
            pool: Pool = scope["app"].state.pool
            await recorded_despite_outages(
                pool,
                "INSERT INTO audit (token_id, token_name, role, method, path, command, content,"
                " status, detail, correlation_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)",
                uuid.UUID(who.token_id) if who else None,
                storable(name),
                who.role if who else None,
                method,
                storable(str(scope["path"]))[:2000],
                self.commands.get((method, template)) if template else None,
                None if content.kept is None else json.dumps(content.kept),
                status,
                None if detail is None else storable(detail)[:2000],
                correlation_id,
            )
        except Exception:  # the answer is decided already: say loudly it went unrecorded
            log.exception(
                "audit_write_failed",
                method=method,
                path=scope["path"],
                status=status,
                correlation_id=correlation_id,
            )


AUDIT_WAIT_SECONDS = 15.0
"""How long an audit write waits out a database outage (a failover) before giving up."""


async def recorded_despite_outages(pool: Pool, query: str, *args: object) -> None:
    """Run the audit insert, again with capped backoff while the database is away (an
    outage per libs/service/transient.py), up to AUDIT_WAIT_SECONDS: a change made during a
    failover must still say who made it. The answer waits meanwhile; any other failure, or
    an outage that lasts, is raised."""
    deadline = time.monotonic() + AUDIT_WAIT_SECONDS
    delay = 0.2
    while True:
        try:
            await pool.execute(query, *args)
        except Exception as error:
            if classify(error) is Failure.OWN or time.monotonic() + delay > deadline:
                raise
            log.warning("audit_write_waiting", error=f"{type(error).__name__}: {error}"[:200])
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            return


def _detail(problem: bytearray) -> str | None:
    """The `detail` of a problem-details answer, if it was one."""
    try:
        parsed = json.loads(bytes(problem))
    except (ValueError, RecursionError):
        return None
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    return detail if isinstance(detail, str) else None


async def entries(
    pool: Pool,
    *,
    offset: int,
    limit: int,
    actor: str | None = None,
    path_prefix: str | None = None,
    status: int | None = None,
    command: str | None = None,
) -> AuditLog:
    """The log, newest first, filtered by actor (token name or id), path prefix, status and
    command (each None: any)."""
    where = (
        "($1::text IS NULL OR token_name = $1 OR token_id::text = $1)"
        " AND ($2::text IS NULL OR starts_with(path, $2))"
        " AND ($3::int IS NULL OR status = $3)"
        " AND ($4::text IS NULL OR command = $4)"
    )
    filters = (
        None if actor is None else storable(actor),
        None if path_prefix is None else storable(path_prefix),
        status,
        None if command is None else storable(command),
    )
    rows = await pool.fetch(
        "SELECT seq, at, token_id::text, token_name, role, method, path, command, content,"
        f" status, detail, correlation_id FROM audit WHERE {where}"
        " ORDER BY seq DESC OFFSET $5 LIMIT $6",
        *filters,
        offset,
        limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM audit WHERE {where}", *filters)
    found = []
    for row in rows:
        values = dict(row)
        content = values.pop("content")
        found.append(AuditEntry(**values, content=None if content is None else json.loads(content)))
    return AuditLog(entries=found, total=total)
