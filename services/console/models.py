"""The console's own resources: tokens, the audit log, problem details."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from libs.contracts.spec import Contract

Role = Literal["admin", "viewer"]


class NewToken(Contract):
    """Create an API token."""

    name: str = Field(min_length=1, max_length=100, description="Who or what uses it.")
    role: Role = Field(description="`admin` (everything) or `viewer` (read only).")


class Token(Contract):
    """An API token (its secret is shown only once, at creation)."""

    token_id: str = Field(description="Token id.")
    name: str = Field(description="Who or what uses it.")
    role: Role = Field(description="`admin` or `viewer`.")
    created_at: AwareDatetime = Field(description="Creation time.")
    revoked_at: AwareDatetime | None = Field(description="When it was revoked, if it was.")


class CreatedToken(Token):
    """A new token with its secret: keep it, it is not shown again."""

    token: str = Field(description="The secret to send as `Authorization: Bearer <token>`.")


class TokenList(Contract):
    tokens: list[Token] = Field(description="Every token, newest first.")


class AuditEntry(Contract):
    """One write through the API."""

    seq: int = Field(description="Order of the entry.")
    at: AwareDatetime = Field(description="When.")
    token_name: str = Field(description="Who (the token's name).")
    role: Role = Field(description="With which role.")
    method: str = Field(description="HTTP method.")
    path: str = Field(description="HTTP path.")
    command: str | None = Field(description="The command it sent, if any.")
    status: int = Field(description="HTTP status answered.")
    correlation_id: str = Field(description="Correlation id (also the X-Correlation-Id header).")


class AuditLog(Contract):
    entries: list[AuditEntry] = Field(description="Newest first.")
    total: int = Field(description="Entries in all.")


class Problem(Contract):
    """An error (RFC 9457 problem details)."""

    type: str = Field(default="about:blank", description="Problem type URI.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status.")
    detail: str = Field(description="What went wrong, naming the field, value and allowed.")
    field: str | None = Field(default=None, description="The input field at fault, if any.")
