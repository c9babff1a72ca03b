"""The console's own resources: tokens, the audit log, problem details."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from libs.contracts.spec import Contract

Role = Literal["admin", "viewer"]
TokenState = Literal["active", "expired", "revoked"]


class NewToken(Contract):
    """Create an API token."""

    name: str = Field(min_length=1, max_length=100, description="Who or what uses it.")
    role: Role = Field(description="`admin` (everything) or `viewer` (read only).")
    expires_at: AwareDatetime | None = Field(
        default=None,
        description=(
            "When the token stops working (401 from then on); in the future. None: it works "
            "until revoked."
        ),
    )


class Token(Contract):
    """An API token (its secret is shown only once, at creation)."""

    token_id: str = Field(description="Token id.")
    name: str = Field(description="Who or what uses it.")
    role: Role = Field(description="`admin` or `viewer`.")
    created_at: AwareDatetime = Field(description="Creation time.")
    revoked_at: AwareDatetime | None = Field(description="When it was revoked, if it was.")
    expires_at: AwareDatetime | None = Field(
        default=None, description="When it stops (or stopped) working; None: never expires."
    )
    state: TokenState = Field(
        default="active", description="`active`, `expired` (past expires_at) or `revoked`."
    )


class CreatedToken(Token):
    """A new token with its secret: keep it, it is not shown again."""

    token: str = Field(description="The secret to send as `Authorization: Bearer <token>`.")


class TokenList(Contract):
    tokens: list[Token] = Field(description="Every token, newest first.")


class AuditEntry(Contract):
    """One write, or one refused request, through the API."""

    seq: int = Field(description="Order of the entry.")
    at: AwareDatetime = Field(description="When.")
    token_id: str | None = Field(
        default=None, description="The token's id; None when no known token was presented."
    )
    token_name: str = Field(
        description=(
            "Who: the token's name, `anonymous` (no token) or `unknown lg_ab…` (a token that "
            "does not exist, by its first characters only)."
        )
    )
    role: Role | None = Field(description="With which role; None for an unknown caller.")
    method: str = Field(description="HTTP method.")
    path: str = Field(description="HTTP path.")
    command: str | None = Field(description="The route's command, if any.")
    content: JsonValue = Field(
        default=None,
        description=(
            "What was asked: `{query, body}` as sent, with secrets (fields named like token, "
            "secret, password, key) replaced by `[removed]` and base64 data by its size."
        ),
    )
    status: int = Field(description="HTTP status sent (500 for an unexpected failure).")
    detail: str | None = Field(default=None, description="Why it failed, for a 4xx or 5xx.")
    correlation_id: str = Field(description="Correlation id (also the X-Correlation-Id header).")


class AuditLog(Contract):
    entries: list[AuditEntry] = Field(description="Newest first.")
    total: int = Field(description="Entries matching the filters, in all.")


class Problem(Contract):
    """An error (RFC 9457 problem details)."""

    type: str = Field(default="about:blank", description="Problem type URI.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status.")
    detail: str = Field(description="What went wrong, naming the field, value and allowed.")
    field: str | None = Field(default=None, description="The input field at fault, if any.")


class SignIn(Contract):
    """Sign in to the console's pages with an API token."""

    token: str = Field(
        min_length=1,
        max_length=1000,
        description="An API token (`lockgate tokens create`); only a cookie leaves the answer.",
    )


class SessionInfo(Contract):
    """The browser session (its secret is in the HttpOnly cookie `lockgate_session`, never
    in a body)."""

    name: str = Field(description="The name of the token the session works for.")
    role: Role = Field(description="`admin` (everything) or `viewer` (read only).")
    csrf_token: str = Field(
        description=(
            "Send it as the `X-CSRF-Token` header with every request but GET, HEAD and OPTIONS "
            "that the session cookie authenticates; else 403."
        )
    )
    expires_at: AwareDatetime = Field(
        description=(
            "When the session ends (401 from then on): LOCKGATE_CONSOLE_SESSION_HOURS after "
            "signing in, or the token's own expiry if sooner. Revoking the token ends it at once."
        )
    )


class ValidateBody(BaseModel):
    """A route's JSON body to judge as the route itself would, before it is sent.

    Not a `Contract`: their screening of text (no NUL, no lone surrogate) would refuse such
    text in `body` itself, where the route's own checks must judge it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(
        min_length=1, max_length=10, description="The route's HTTP method, e.g. `PUT`."
    )
    path: str = Field(
        min_length=1,
        max_length=500,
        description=(
            "The route's path template as in the OpenAPI document, without the `/api/v1` "
            "prefix, e.g. `/uploads/{upload_id}/description` (path parameters stay as written)."
        ),
    )
    body: JsonValue = Field(
        default_factory=dict, description="The JSON body the route would be sent."
    )
    partial: bool = Field(
        default=False,
        description=(
            "Judge only the fields present (a form being filled in): a missing required field "
            "is no error, and checks of the body as a whole wait until none is missing."
        ),
    )


class Validity(Contract):
    """The body would pass the route's input checks (the service may still refuse it)."""

    valid: Literal[True] = Field(
        description="Always true: a body that would be refused is answered 422, as the route would."
    )
