"""Lockgate's messages: pydantic models, their specs, the envelope and the registry."""

from libs.contracts.envelope import Envelope
from libs.contracts.names import Exchange, dead_letter_queue_name, queue_name
from libs.contracts.registry import REGISTRY, Registry, UnknownMessageType
from libs.contracts.spec import AgentEventSpec, CommandSpec, Contract, EventSpec

__all__ = [
    "REGISTRY",
    "AgentEventSpec",
    "CommandSpec",
    "Contract",
    "Envelope",
    "EventSpec",
    "Exchange",
    "Registry",
    "UnknownMessageType",
    "dead_letter_queue_name",
    "queue_name",
]
