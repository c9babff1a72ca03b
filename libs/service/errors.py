"""Errors a handler raises when a message is wrong and will stay wrong if retried."""

from __future__ import annotations


class DomainError(Exception):
    """The message cannot be applied: an event is dead-lettered, a command gets this error.

    The message names the field, the value and what is allowed; retrying cannot help.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Refused(DomainError):
    """A command is refused, but what its handler wrote before refusing is kept.

    For refusals that must clean up (an upload over quota deletes its partial content):
    the transaction commits, then the caller gets this error. Events raising it are
    handled like any DomainError (rolled back and dead-lettered).
    """


class InvalidInput(DomainError):
    """A field holds a value that is not allowed."""


class NotFound(DomainError):
    """The thing the message names does not exist."""


class Conflict(DomainError):
    """The message contradicts the current state (e.g. a cycle, a duplicate name)."""
