"""What makes a Lockgate service process: handler tables, message pipeline, lifecycle."""

from libs.service.errors import Conflict, DomainError, InvalidInput, NotFound, Refused
from libs.service.handlers import Answer, HandlerContext, On, ServiceDefinition

__all__ = [
    "Answer",
    "Conflict",
    "DomainError",
    "HandlerContext",
    "InvalidInput",
    "NotFound",
    "On",
    "Refused",
    "ServiceDefinition",
]
