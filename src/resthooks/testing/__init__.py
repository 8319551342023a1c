"""Testing helpers that ship with resthooks: fakes and the store conformance suite.

Nothing here imports pytest; the pytest plugin builds on these.
"""

from ._clock import FakeClock
from ._conformance import STORE_CHECKS, check_store
from ._modes import DeliveryMode, allow_loopback, no_delivery, run_schedule, synchronous
from ._receiver import Answer, HookReceiver, ReceivedDelivery, verify_signature
from ._transport import RecordingTransport

__all__ = [
    "STORE_CHECKS",
    "Answer",
    "DeliveryMode",
    "FakeClock",
    "HookReceiver",
    "ReceivedDelivery",
    "RecordingTransport",
    "allow_loopback",
    "check_store",
    "no_delivery",
    "run_schedule",
    "synchronous",
    "verify_signature",
]
