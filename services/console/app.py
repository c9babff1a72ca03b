"""The console API: every route of libs/contracts/api.py, tokens, browser sessions, audit,
health, and the console's pages (services/console/static/) on the same origin.

Stateless towards the services: each call becomes the route's command over RabbitMQ RPC;
the console's own schema holds only API tokens, browser sessions, dead letters and the audit
log.
"""

from __future__ import annotations

import inspect
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, cast

import asyncpg
import structlog
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError, create_model
from pydantic.fields import FieldInfo
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from libs.bus import Bus, RpcClient, RpcError
from libs.bus.codec import describe_validation_error, first_field
from libs.bus.rpc import BrokerUnavailable, RpcTimeout, ServiceUnavailable
from libs.contracts.api import FILLED_BY_CONSOLE, PREFIX, ROUTES, Route
from libs.db.migrations import migrate
from libs.db.pool import Pool, create_pool, ensure_database
from libs.observability import metrics
from libs.observability.http import RETRY_AFTER_SECONDS
from libs.service.clock import clock_from
from libs.service.transient import Failure, classify
from libs.settings import Settings
from services.console import alerts, audit, auth, content, dead_letters
from services.console.models import (
    AuditLog,
    CreatedToken,
    NewToken,
    Problem,
    SessionInfo,
    SignIn,
    TokenList,
    ValidateBody,
    Validity,
)

log = structlog.get_logger(__name__)
MIGRATIONS = auth.MIGRATIONS
PROBLEM = "application/problem+json"
STATUS_OF_ERROR = {
    "NotFound": 404,
    "Conflict": 409,
    "InvalidInput": 422,
    "InvalidMessage": 422,
    "QuotaExceeded": 413,
    "NotAnInstaller": 422,
    "Refused": 409,
}


class ApiError(Exception):
    """An error answered as problem details."""

    def __init__(self, status: int, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        # Input quoted in the detail or naming the field may hold a NUL or a lone surrogate,
        # which a Problem (a Contract) refuses: escaped, it is still answered.
        self.problem = Problem(
            title=title,
            status=status,
            detail=audit.storable(detail),
            field=None if field is None else audit.storable(field),
        )


@dataclass
class Console:
    """What the routes share once started."""

    settings: Settings
    pool: Pool
    bus: Bus
    rpc: RpcClient


def correlation_of(request: Request) -> str:
    """The request's correlation id (the audit middleware's, which the audit log records),
    else the caller's X-Correlation-Id if it is a plain token, else a new one."""
    chosen = getattr(request.state, "correlation_id", None)
    return chosen if isinstance(chosen, str) else audit.correlation_from(request.headers)


def _printable(text: str) -> str:
    """Text that UTF-8 can carry (generated input may hold lone surrogates)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def problem_response(problem: Problem, correlation_id: str | None = None) -> JSONResponse:
    headers = {"X-Correlation-Id": correlation_id} if correlation_id else None
    body = problem.model_dump()
    body["detail"] = _printable(problem.detail)
    body["field"] = None if problem.field is None else _printable(problem.field)
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM, headers=headers)


DEPENDENCY_FAILURES: tuple[type[Exception], ...] = (
    OSError,  # refused or reset connections, timeouts
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
"""Failures of the console's own database or broker calls, answered by `dependency_failed`."""

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{8,100}")
IDEMPOTENCY_HELP = (
    "A key unique to this intended change (8-100 letters, digits, '.', '_', ':', '-'; a UUID "
    "will do). Retrying the call with the same key, as the same caller, after a timeout or a "
    "lost connection returns the first call's answer instead of applying the change again."
)


def idempotency_of(caller: auth.Caller, given: str | None) -> str | None:
    """The caller's idempotency key, scoped to the caller's token; None when not given."""
    if given is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(given):
        raise ApiError(
            422,
            "Invalid input",
            f"Idempotency-Key {given[:120]!r} is not allowed: {IDEMPOTENCY_HELP}",
            "Idempotency-Key",
        )
    return f"{caller.token_id}:{given}"


async def _call(
    console: Console, route: Route, request: BaseModel, idempotency_key: str | None = None
) -> BaseModel:
    try:
        reply: BaseModel = await console.rpc.call(
            route.spec, request, timeout=route.timeout_seconds, idempotency_key=idempotency_key
        )
    except RpcError as error:
        body = error.body
        status = STATUS_OF_ERROR.get(body.error, 502)
        raise ApiError(status, body.error, body.message, body.field) from None
    except RpcTimeout as error:
        raise ApiError(504, "Service timeout", str(error)) from None
    except (ServiceUnavailable, BrokerUnavailable) as error:
        raise ApiError(503, "Service unavailable", str(error)) from None
    return reply


def _flat_fields(
    model: type[BaseModel], skip: list[str]
) -> dict[str, tuple[str | None, FieldInfo]]:
    """Query parameters of a model: its fields, a nested model's fields flattened (each with
    the name of the nested field it belongs to, or None)."""
    found: dict[str, tuple[str | None, FieldInfo]] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub, sub_info in annotation.model_fields.items():
                found[sub] = (name, sub_info)
        else:
            found[name] = (None, info)
    return found


def body_model_of(route: Route) -> type[BaseModel] | None:
    """The JSON body a route reads: its command's fields but the path's (None for GET and
    DELETE, whose fields are query parameters, and for writes with path fields only)."""
    if route.method in ("GET", "DELETE"):
        return None
    model = route.spec.request
    path_fields = route.path_fields
    skipped = [*path_fields, *FILLED_BY_CONSOLE]
    rest = {n: (i.annotation, i) for n, i in model.model_fields.items() if n not in skipped}
    if not rest:
        return None
    if len(rest) == len(model.model_fields):
        return model
    made: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{model.__name__}Body", __config__=model.model_config, **rest
    )
    return made


def command_of(route: Route, data: Mapping[str, object]) -> BaseModel:
    """The route's command from its path, query and body values, else 422 naming the field
    (the checks of the command as a whole, once FastAPI has checked each part)."""
    try:
        command: BaseModel = route.spec.request.model_validate(data)
    except ValidationError as error:
        raise ApiError(
            422,
            "Invalid input",
            describe_validation_error(error, route.spec.type),
            first_field(error),
        ) from None
    return command


def invalid_input(errors: Sequence[Any]) -> Problem:
    """The problem for input FastAPI refused (`RequestValidationError.errors()`): the first
    five errors, each naming its field, the value sent and what is allowed."""
    parts = []
    for item in errors[:5]:
        field = ".".join(str(p) for p in item["loc"] if p not in ("body", "query", "path"))
        parts.append(f"field {field!r} = {str(item.get('input'))[:80]!r}: {item['msg']}")
    first = errors[0]["loc"] if errors else ()
    named = ".".join(str(p) for p in first if p not in ("body", "query", "path"))
    return Problem(  # a field may be named by a NUL or a lone surrogate the client sent
        title="Invalid input",
        status=422,
        detail=audit.storable("; ".join(parts)),
        field=audit.storable(named) if named else None,
    )


def _endpoint(
    route: Route, console: Callable[[], Console], body_model: type[BaseModel] | None
) -> Callable[..., Awaitable[BaseModel]]:
    """A FastAPI endpoint for one route, its signature built from the command's model (and
    `body_model`, the route's `body_model_of`)."""
    model = route.spec.request
    path_fields = route.path_fields
    params = [
        inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
        inspect.Parameter(
            "caller",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[auth.Caller, Depends(auth.admin if route.writes else auth.viewer)],
        ),
    ]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
        for name in path_fields
    ]
    if route.writes:
        params.append(
            inspect.Parameter(
                "idempotency_key",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    str | None, Header(alias="Idempotency-Key", description=IDEMPOTENCY_HELP)
                ],
                default=None,
            )
        )
    query: dict[str, tuple[str | None, FieldInfo]] = {}
    if route.method in ("GET", "DELETE"):
        query = _flat_fields(model, path_fields)
        for name, (_, info) in query.items():
            default = None if not info.is_required() else ...
            annotation = cast(type, info.annotation)  # a field's type (or typing form), never None
            params.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=Annotated[annotation | None, Query(description=info.description)]
                    if default is None
                    else Annotated[annotation, Query(description=info.description)],
                    default=default if default is None else inspect.Parameter.empty,
                )
            )
    elif body_model is not None:
        # A body whose every field has a default may be left out (POST /rules/{rule}/run).
        optional = not any(info.is_required() for info in body_model.model_fields.values())
        params.append(
            inspect.Parameter(
                "body",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=body_model | None if optional else body_model,
                default=None if optional else inspect.Parameter.empty,
            )
        )

    async def endpoint(**kwargs: object) -> BaseModel:
        # FastAPI passes what the signature below declares.
        kwargs.pop("request")
        caller = cast(auth.Caller, kwargs.pop("caller"))  # also in the request's state (audit)
        given = cast(str | None, kwargs.pop("idempotency_key", None))
        idempotency_key = idempotency_of(caller, given)
        data: dict[str, object] = {name: kwargs.pop(name) for name in path_fields}
        body = cast(BaseModel | None, kwargs.pop("body", None))
        if body is not None:
            data.update(body.model_dump(exclude_unset=True))
        data.update(
            {
                name: f"token:{caller.name}"
                for name in FILLED_BY_CONSOLE
                if name in model.model_fields
            }
        )
        nested: dict[str, dict[str, object]] = {}
        for name, value in kwargs.items():
            if value is None:
                continue
            parent, _ = query[name]
            if parent is None:
                data[name] = value
            else:
                data.setdefault(parent, nested.setdefault(parent, {}))
                nested[parent][name] = value
        return await _call(console(), route, command_of(route, data), idempotency_key)

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        params, return_annotation=route.spec.reply
    )
    endpoint.__name__ = route.name
    return endpoint


async def dependency_failed(request: Request, error: Exception) -> JSONResponse:
    """A database or broker failure: 503 with Retry-After when it is an outage or a lost
    race (libs/service/transient.py), so clients retry; anything else stays a 500."""
    if classify(error) is Failure.OWN:
        log.error("unexpected_failure", path=request.url.path, error=repr(error)[:500])
        status, title = 500, "Internal Server Error"
        detail = "an unexpected failure; the console's log has it under this correlation id"
    else:
        log.warning("dependency_unavailable", path=request.url.path, error=repr(error)[:300])
        status, title = 503, "Service unavailable"
        detail = (
            f"the console's database or broker does not answer now ({type(error).__name__}); "
            "try again shortly"
        )
    response = problem_response(
        Problem(title=title, status=status, detail=detail), correlation_of(request)
    )
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def create_app(settings: Settings) -> FastAPI:
    """The console application; it migrates its schema and connects on startup.

    Raises ContentSigningKeyMissing (before anything starts) when content URLs cannot be
    checked: no LOCKGATE_CONTENT_SIGNING_KEY outside a loopback development setup.
    """
    links = settings.content_links()
    state: dict[str, Console] = {}

    def console() -> Console:
        return state["console"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_database(settings.database_url)
        await migrate(settings.database_url, "console", MIGRATIONS)
        pool = await create_pool(
            settings.database_url,
            "console",
            command_timeout=settings.database_command_timeout_seconds,
            connect_timeout=settings.database_connect_timeout_seconds,
        )
        bus = await Bus.connect(settings.amqp_url, name="lockgate-console")
        rpc = RpcClient(bus, source="lockgate/console", timeout=settings.rpc_timeout_seconds)
        state["console"] = Console(settings, pool, bus, rpc)
        app.state.pool = pool
        await auth.bootstrap(pool, settings)
        try:
            yield
        finally:
            await bus.close()
            await pool.close()

    app = FastAPI(
        title="Lockgate console API",
        version="1",
        description="Operators' API: each call is a command to the service that owns it.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return problem_response(error.problem, correlation_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(error.status_code).phrase
        response = problem_response(
            Problem(title=title, status=error.status_code, detail=str(error.detail)),
            correlation_of(request),
        )
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # The audit middleware has recorded this 500 on the exception's way out.
        log.error("unexpected_failure", path=request.url.path, error=repr(error)[:500])
        return problem_response(
            Problem(
                title="Internal Server Error",
                status=500,
                detail="an unexpected failure; the console's log has it under this correlation id",
            ),
            correlation_of(request),
        )

    for failure in DEPENDENCY_FAILURES:
        app.add_exception_handler(failure, dependency_failed)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return problem_response(invalid_input(error.errors()), correlation_of(request))

    bodies: dict[tuple[str, str], tuple[Route, type[BaseModel] | None]] = {
        (route.method, route.path): (route, body_model_of(route)) for route in ROUTES
    }
    for route, body_model in bodies.values():
        app.add_api_route(
            PREFIX + route.path,
            _endpoint(route, console, body_model),
            methods=[route.method],
            response_model=route.spec.reply,
            summary=route.spec.summary,
            tags=[route.tag],
            name=route.name,
            responses={code: {"model": Problem} for code in (401, 403, 404, 409, 422, 503, 504)},
        )
    _console_routes(app, console)
    _validation_route(app, bodies)
    dead_letters.mount(app, console)
    alerts.mount(app, lambda: console().rpc)
    commands: dict[tuple[str, str], str] = {
        (route.method, PREFIX + route.path): route.spec.type for route in ROUTES
    }
    commands.update(CONSOLE_COMMANDS)
    commands["POST", alerts.PATH] = alerts.COMMAND
    app.add_middleware(
        audit.AuditMiddleware,
        prefix=PREFIX,
        commands=commands,
        judges_only=frozenset({("POST", f"{PREFIX}/validate")}),
    )
    content.mount(
        app,
        links,
        Path(settings.content_dir),
        clock_from(settings.clock_speed, settings.clock_epoch).now,
    )
    _pages(app)
    return app


CONSOLE_COMMANDS = {
    ("POST", f"{PREFIX}/session"): "console.session.start",
    ("DELETE", f"{PREFIX}/session"): "console.session.end",
    ("POST", f"{PREFIX}/validate"): "console.validate",
    ("POST", f"{PREFIX}/tokens"): "console.token.create",
    ("DELETE", f"{PREFIX}/tokens/{{token_id}}"): "console.token.revoke",
    ("POST", f"{PREFIX}/dead-letters/{{dead_letter_id}}/replay"): "console.dead-letter.replay",
    ("POST", f"{PREFIX}/dead-letters/replay"): "console.dead-letter.replay-many",
    ("DELETE", f"{PREFIX}/dead-letters/{{dead_letter_id}}"): "console.dead-letter.purge",
    ("DELETE", f"{PREFIX}/dead-letters"): "console.dead-letter.purge-many",
}
"""The console's own writes, named in the audit log as a route's command would be."""


def _console_routes(app: FastAPI, console: Callable[[], Console]) -> None:
    """Tokens, audit and health: the console's own resources."""

    @app.post(f"{PREFIX}/tokens", tags=["access"], response_model=CreatedToken, status_code=201)
    async def create_token(
        body: NewToken, _: Annotated[auth.Caller, Depends(auth.admin)]
    ) -> CreatedToken:
        try:
            return await auth.create_token(console().pool, body.name, body.role, body.expires_at)
        except auth.TokenExpiryInPast as error:
            raise ApiError(422, "Invalid input", str(error), "expires_at") from None

    @app.get(f"{PREFIX}/tokens", tags=["access"], response_model=TokenList)
    async def list_tokens(_: Annotated[auth.Caller, Depends(auth.admin)]) -> TokenList:
        return TokenList(tokens=await auth.tokens(console().pool))

    @app.delete(f"{PREFIX}/tokens/{{token_id}}", tags=["access"], response_model=TokenList)
    async def revoke_token(
        token_id: str, _: Annotated[auth.Caller, Depends(auth.admin)]
    ) -> TokenList:
        try:
            revoked = await auth.revoke(console().pool, token_id)
        except auth.LastAdmin as error:
            raise ApiError(409, "Conflict", str(error), "token_id") from None
        if not revoked:
            raise ApiError(
                404, "NotFound", f"token {token_id!r} does not exist or is revoked", "token_id"
            )
        return TokenList(tokens=await auth.tokens(console().pool))

    def session_info(session: auth.Session) -> SessionInfo:
        who = session.caller
        return SessionInfo(
            name=who.name,
            role=who.role,
            csrf_token=session.csrf_token,
            expires_at=session.expires_at,
        )

    unauthorized: dict[int | str, dict[str, Any]] = {401: {"model": Problem}}

    @app.post(
        f"{PREFIX}/session", tags=["access"], response_model=SessionInfo, responses=unauthorized
    )
    async def sign_in(body: SignIn, request: Request, response: Response) -> SessionInfo:
        """Sign in to the console's pages with an API token: the answer sets the session
        cookie (HttpOnly, SameSite=Strict) and gives the CSRF token that writes need."""
        hours = console().settings.console_session_hours
        secret, session = await auth.sign_in(request, body.token.strip(), hours)
        response.headers.append("Set-Cookie", auth.session_cookie(request, secret))
        response.headers["Cache-Control"] = "no-store"
        return session_info(session)

    @app.get(
        f"{PREFIX}/session", tags=["access"], response_model=SessionInfo, responses=unauthorized
    )
    async def current_session(
        session: Annotated[auth.Session, Depends(auth.session)], response: Response
    ) -> SessionInfo:
        """The browser session of the cookie sent (its CSRF token again), else 401."""
        response.headers["Cache-Control"] = "no-store"
        return session_info(session)

    @app.delete(
        f"{PREFIX}/session",
        tags=["access"],
        status_code=204,
        response_class=Response,
        responses={code: {"model": Problem} for code in (401, 403)},
    )
    async def sign_out(
        session: Annotated[auth.Session, Depends(auth.session)], request: Request
    ) -> Response:
        """Sign out: the session ends and the browser drops its cookie."""
        del session  # checked: a working session, with its CSRF token
        cookie = request.cookies.get(auth.SESSION_COOKIE, "")
        await auth.sign_out(console().pool, cookie)
        return Response(status_code=204, headers={"Set-Cookie": auth.cleared_cookie(request)})

    @app.get(f"{PREFIX}/audit", tags=["access"], response_model=AuditLog)
    async def audit_log(
        _: Annotated[auth.Caller, Depends(auth.viewer)],
        *,
        offset: Annotated[int, Query(ge=0, le=2_000_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        actor: Annotated[
            str | None,
            Query(max_length=200, description="Only this token's entries (its name or id)."),
        ] = None,
        path_prefix: Annotated[
            str | None,
            Query(max_length=500, description="Only paths starting so (e.g. /api/v1/updates)."),
        ] = None,
        status: Annotated[
            int | None, Query(ge=100, le=599, description="Only answers with this status.")
        ] = None,
        command: Annotated[
            str | None, Query(max_length=200, description="Only this command's entries.")
        ] = None,
    ) -> AuditLog:
        return await audit.entries(
            console().pool,
            offset=offset,
            limit=limit,
            actor=actor,
            path_prefix=path_prefix,
            status=status,
            command=command,
        )

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(route).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, bool]:
        return {"alive": True}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        broker = await console().bus.check()
        database = False
        try:
            database = bool(await console().pool.fetchval("SELECT true"))
        except Exception:  # noqa: BLE001 - not ready is the answer
            database = False
        ready = broker and database
        return JSONResponse(
            {"broker": broker, "database": database}, status_code=200 if ready else 503
        )


PATH_PLACEHOLDER = "placeholder"
"""What path parameters hold while a body is judged on its own (every one is plain text)."""


def judge(route: Route, body_model: type[BaseModel], body: object, *, partial: bool) -> None:
    """Check `body` as the route would, else ApiError with the problem the route would
    answer: first as FastAPI checks the route's body (each field), then as the command as a
    whole (`command_of`), path parameters filled with a placeholder. `partial`: missing
    fields are no error, and the whole is judged only once none is missing."""
    try:
        # What FastAPI does with the parsed JSON body (fastapi/_compat: ModelField.validate).
        parsed = body_model.model_validate(body, from_attributes=True)
    except ValidationError as error:
        errors = [
            {**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)
        ]
        if partial:
            errors = [item for item in errors if item["type"] != "missing"]
        if errors:
            problem = invalid_input(errors)
            raise ApiError(problem.status, problem.title, problem.detail, problem.field) from None
        return
    data: dict[str, object] = dict.fromkeys(route.path_fields, PATH_PLACEHOLDER)
    data.update(parsed.model_dump(exclude_unset=True))
    command_of(route, data)


def _validation_route(
    app: FastAPI, bodies: Mapping[tuple[str, str], tuple[Route, type[BaseModel] | None]]
) -> None:
    """POST /api/v1/validate: a route's body judged before it is sent (forms as typed)."""

    @app.post(
        f"{PREFIX}/validate",
        tags=["access"],
        response_model=Validity,
        responses={code: {"model": Problem} for code in (401, 403, 404, 422)},
    )
    async def validate(
        body: ValidateBody, _: Annotated[auth.Caller, Depends(auth.viewer)]
    ) -> Validity:
        """Judge a JSON body as the route `method` `path` would (same 422 problem, same
        `detail` and `field`), changing nothing; viewers may ask too. The service behind the
        route may still refuse a valid body (a name taken, a group that does not exist)."""
        method = body.method.upper()
        path = body.path.removeprefix(PREFIX) if body.path.startswith(f"{PREFIX}/") else body.path
        found = bodies.get((method, path))
        if found is None:
            raise ApiError(
                404,
                "NotFound",
                f"no route {method[:10]!r} {path[:200]!r}: give a method and a path template of "
                f"{PREFIX}/openapi.json without the {PREFIX} prefix, e.g. PUT "
                "/uploads/{upload_id}/description",
                "path",
            )
        route, body_model = found
        if body_model is None:
            raise ApiError(
                422,
                "Invalid input",
                f"{method} {PREFIX}{path} reads no JSON body (its fields are path or query "
                "parameters): nothing to judge",
                "path",
            )
        judge(route, body_model, body.body, partial=body.partial)
        return Validity(valid=True)


STATIC = Path(__file__).parent / "static"
"""The console's pages (index.html, css/, js/), packaged with the code (pyproject.toml)."""
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated on every load (ETag / Last-Modified): one release's scripts never run
    # under another's page.
    "Cache-Control": "no-cache",
}
"""Headers of every page and file of the console's pages: scripts and styles only from the
console itself (no inline script), never framed, no referrer."""


class _Pages(StaticFiles):
    """services/console/static/ with the pages' headers; scripts as text/javascript
    (ES modules need a JavaScript type, whatever the system's MIME table says)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if str(full_path).endswith((".js", ".mjs")):
            response.headers["Content-Type"] = "text/javascript; charset=utf-8"
        response.headers.update(PAGE_HEADERS)
        return response


def _pages(app: FastAPI) -> None:
    """`/` (index.html) and `/static/...` (files only, no directory listing)."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> Response:
        page = STATIC / "index.html"
        if not page.is_file():
            raise StarletteHTTPException(404, "the console's pages are not installed")
        return FileResponse(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    app.mount("/static", _Pages(directory=STATIC, check_dir=False), name="static")
