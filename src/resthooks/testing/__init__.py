"""Testing helpers that ship with resthooks: fakes and the store conformance suite.

Nothing here imports pytest; the pytest plugin builds on these.
"""

from ..network import NetworkPolicy
from ._clock import FakeClock
from ._conformance import STORE_CHECKS, check_store
from ._modes import DeliveryMode, no_delivery, run_schedule, synchronous
from ._receiver import Answer, HookReceiver, ReceivedDelivery, verify_signature
from ._transport import AsyncRecordingTransport, RecordingTransport

__all__ = [
    "LOOPBACK_POLICY",
    "STORE_CHECKS",
    "Answer",
    "AsyncRecordingTransport",
    "DeliveryMode",
    "FakeClock",
    "HookReceiver",
    "ReceivedDelivery",
    "RecordingTransport",
    "check_store",
    "no_delivery",
    "run_schedule",
    "synchronous",
    "verify_signature",
]

LOOPBACK_POLICY = NetworkPolicy(allow_networks=["127.0.0.0/8", "::1/128"])
"""A network policy that lets deliveries reach servers on loopback, for tests and
development. The default policy refuses loopback."""
