"""The CloudEvents envelope every Lockgate message carries, independent of the transport."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from libs.contracts.spec import Contract

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"


def source_of(service: str) -> str:
    """The CloudEvents `source` of everything a Lockgate service emits."""
    return f"lockgate/{service}"


class Envelope(Contract):
    """CloudEvents 1.0 context attributes, carried as AMQP properties and `ce-*` headers."""

    id: str = Field(description="Unique message id; also the AMQP message_id and dedupe key.")
    source: str = Field(description="Who emitted it, e.g. `lockgate/catalog`.")
    type: str = Field(description="Message type with its major version, e.g. `x.y.v1`.")
    time: AwareDatetime = Field(description="When the message was created (UTC).")
    subject: str | None = Field(
        default=None, description="What the message is about, e.g. a computer id."
    )
    specversion: Literal["1.0"] = Field(default="1.0", description="CloudEvents version.")
    correlation_id: str | None = Field(
        default=None, description="Id of the request that caused this message, carried onwards."
    )

    @classmethod
    def new(
        cls,
        *,
        source: str,
        type: str,  # noqa: A002 - the CloudEvents attribute is called type
        subject: str | None = None,
        correlation_id: str | None = None,
        now: datetime | None = None,
    ) -> Envelope:
        """A fresh envelope with a random id, stamped now."""
        return cls(
            id=str(uuid.uuid4()),
            source=source,
            type=type,
            time=now or datetime.now(UTC),
            subject=subject,
            correlation_id=correlation_id,
        )

    def headers(self) -> dict[str, str]:
        """The `ce-*` headers of this envelope (CloudEvents binary mode)."""
        headers = {
            "ce-id": self.id,
            "ce-source": self.source,
            "ce-type": self.type,
            "ce-time": self.time.astimezone(UTC).isoformat(),
            "ce-specversion": self.specversion,
        }
        if self.subject is not None:
            headers["ce-subject"] = self.subject
        return headers
