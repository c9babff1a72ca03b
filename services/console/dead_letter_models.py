"""The dead-letter routes' requests and answers (services/console/dead_letters.py); light, so
the CLI can read them without the console's web stack."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, JsonValue

from libs.contracts.spec import Contract

State = Literal["waiting", "replayed"]
"""`waiting` in the store; `replayed` (published again, waits again only if dead-lettered)."""


class DeadLetterSummary(Contract):
    """One dead letter as listed: why it failed, where it came from, how often."""

    dead_letter_id: int = Field(description="Id in the dead-letter store (`lockgate dlq show ID`).")
    queue: str = Field(description="The queue it failed on, e.g. `scheduler.agent-checkins`.")
    dead_letter_queue: str = Field(description="The dead-letter queue it came through.")
    message_id: str = Field(description="The message's id (kept on replay).")
    message_type: str = Field(description="The message type (`ce-type`), empty if unknown.")
    handler: str = Field(description="The handler that refused or failed it, empty if none.")
    reason_class: str = Field(
        description="Why, as a class: the error's class (`InvalidMessage`, `NotFound`, ...) "
        "or `broker:<reason>` when the broker dead-lettered it (e.g. `broker:delivery_limit`)."
    )
    reason: str = Field(description="Why, in words (at most 2000 characters).")
    original_exchange: str = Field(
        description="The exchange it was first published to (empty: the default exchange)."
    )
    original_routing_key: str = Field(description="The routing key it was first published with.")
    attempts: int = Field(description="Times it was dead-lettered (a replay that fails adds one).")
    first_failed_at: AwareDatetime = Field(description="When it was first dead-lettered.")
    last_failed_at: AwareDatetime = Field(description="When it was last dead-lettered.")
    state: State = Field(
        description="`waiting` (in the store, not replayed) or `replayed` (published again; "
        "it waits again only if it is dead-lettered again)."
    )
    replayed_at: AwareDatetime | None = Field(description="When it was last replayed, if it was.")
    body_bytes: int = Field(description="Size of the body in bytes.")


class DeadLetter(DeadLetterSummary):
    """One dead letter in full: its headers, properties and body."""

    headers: dict[str, JsonValue] = Field(
        description="The message's own headers (`ce-*` and others), sent again on replay; the "
        "dead-letter headers are shown as the fields above instead."
    )
    properties: dict[str, JsonValue] = Field(
        description="AMQP properties sent again on replay (content type, correlation id, ...)."
    )
    body_text: str | None = Field(
        description="The body as text when it is UTF-8 (without NUL characters), else None."
    )
    body_base64: str = Field(description="The body, base64-encoded.")


class QueueCount(Contract):
    """Dead letters waiting for one queue."""

    queue: str = Field(description="The queue the messages failed on.")
    dead_letter_queue: str = Field(description="Its dead-letter queue.")
    waiting: int = Field(description="Dead letters of this queue waiting in the store.")


class DeadLetterList(Contract):
    """A page of dead letters, oldest id first, and how many wait per queue."""

    dead_letters: list[DeadLetterSummary] = Field(description="This page.")
    next_after: int | None = Field(
        description="Pass as `after` for the next page; None when this is the last page."
    )
    queues: list[QueueCount] = Field(
        description="Every queue with dead letters waiting (whatever the filters)."
    )


class ReplayAll(Contract):
    """Replay every waiting dead letter, or those of one queue."""

    queue: str | None = Field(
        default=None,
        max_length=300,
        description="Only this queue's (`scheduler.agent-checkins`, or its `.dlq`); None: all.",
    )


class ReplayFailure(Contract):
    """A dead letter that could not be replayed; it still waits."""

    dead_letter_id: int = Field(description="Its id.")
    error: str = Field(description="Why it could not be published again.")


class ReplayResult(Contract):
    """What a replay did."""

    replayed: list[int] = Field(
        description="Ids published again (confirmed by the broker) and marked replayed."
    )
    failed: list[ReplayFailure] = Field(
        description="Ids not replayed; a replay of many stops at the first broker failure."
    )


class PurgeResult(Contract):
    """What a purge removed."""

    purged: int = Field(description="Dead letters removed from the store (any state).")
