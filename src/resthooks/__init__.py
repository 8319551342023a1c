"""resthooks: an embeddable REST hooks (webhooks) engine.

Clients subscribe URLs to events; the host application emits events; resthooks delivers
``{"event": ..., "payload": [...]}`` to every subscribed URL, retries on Capsule's schedule,
removes a hook whose URL answers ``410 Gone`` and marks a hook dead when its retries run out.
"""

from __future__ import annotations

from typing import Any

from .batching import Batching
from .clock import Clock, SystemClock
from .dispatcher import DEFAULT_RETENTION, Dispatcher
from .encoding import encode_body, isoformat_z
from .errors import (
    AppError,
    ConfigurationError,
    DamagedRowError,
    DeliveryNotFound,
    HookLimitReached,
    HookNotFound,
    InvalidStateError,
    NotFound,
    PayloadError,
    ResthooksError,
    SchemaError,
    StoreError,
    SubscriptionExists,
    TransportError,
    TransportErrorKind,
    ValidationError,
)
from .events import CAPSULE_EVENTS, EventCatalogue
from .limits import Limits
from .model import (
    Attempt,
    Claim,
    Delivery,
    DeliveryState,
    Hook,
    HookState,
    OutboxStats,
    Outcome,
    OutcomeKind,
    QuarantinedDelivery,
    Stats,
    StoreProblem,
    VacuumReport,
)
from .network import NetworkPolicy
from .outcomes import DeliverySummary, HookEffect, RecordResult, Verdict
from .retry import CAPSULE_SCHEDULE, RetryPolicy
from .signing import generate_secret, sign
from .transports import Timeouts
from .verification import VerificationError, verify

__all__ = [
    "CAPSULE_EVENTS",
    "CAPSULE_SCHEDULE",
    "DEFAULT_RETENTION",
    "AppError",
    "Attempt",
    "Batching",
    "Claim",
    "Clock",
    "ConfigurationError",
    "DamagedRowError",
    "Delivery",
    "DeliveryNotFound",
    "DeliveryState",
    "DeliverySummary",
    "Dispatcher",
    "EventCatalogue",
    "Hook",
    "HookEffect",
    "HookLimitReached",
    "HookNotFound",
    "HookState",
    "InvalidStateError",
    "Limits",
    "NetworkPolicy",
    "NotFound",
    "OutboxStats",
    "Outcome",
    "OutcomeKind",
    "PayloadError",
    "QuarantinedDelivery",
    "RecordResult",
    "ResthooksError",
    "RetryPolicy",
    "SchemaError",
    "Stats",
    "StoreError",
    "StoreProblem",
    "SubscriptionExists",
    "SystemClock",
    "Timeouts",
    "TransportError",
    "TransportErrorKind",
    "VacuumReport",
    "ValidationError",
    "Verdict",
    "VerificationError",
    "encode_body",
    "generate_secret",
    "isoformat_z",
    "sign",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - read lazily, on demand

        return version("resthooks")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
