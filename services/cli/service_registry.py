"""Where the CLI finds each service's handler table (composition root); the table also names
the service's migrations."""

from __future__ import annotations

import importlib

from libs.contracts.asyncapi import Subscription
from libs.contracts.names import queue_name
from libs.service.handlers import ServiceDefinition
from libs.settings import SERVICE_NAMES, ServiceName


def definition(service: ServiceName) -> ServiceDefinition:
    module = importlib.import_module(f"services.{service}.handlers")
    found: ServiceDefinition = module.SERVICE
    return found


def subscriptions() -> list[Subscription]:
    """Who receives which event, read from every service's handler table."""
    return [
        Subscription(service, queue_name(service, route.queue), route.spec.type)
        for service in SERVICE_NAMES
        for route in definition(service).handled_events
    ]
