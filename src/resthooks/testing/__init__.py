"""Testing helpers that ship with resthooks: fakes and the store conformance suite.

Nothing here imports pytest; the pytest plugin builds on these.
"""

from ._clock import FakeClock
from ._conformance import STORE_CHECKS, check_store
from ._transport import RecordingTransport

__all__ = ["STORE_CHECKS", "FakeClock", "RecordingTransport", "check_store"]
