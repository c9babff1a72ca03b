"""What makes a Lockgate service process: handler tables, message pipeline, lifecycle."""

from libs.service.errors import Conflict, DomainError, InvalidInput, NotFound, Refused
from libs.service.handlers import (
    Answer,
    Every,
    HandlerContext,
    On,
    ReadCopy,
    ServiceDefinition,
    TaskContext,
)

__all__ = [
    "Answer",
    "Conflict",
    "DomainError",
    "Every",
    "HandlerContext",
    "InvalidInput",
    "NotFound",
    "On",
    "ReadCopy",
    "Refused",
    "ServiceDefinition",
    "TaskContext",
]
