"""Reaching a dead hook the way the engine does, for the tests that need one.

A hook dies in one place only: when the Dispatcher's RetryPolicy gives up on one of its
deliveries and the store records that outcome. Tests get their dead hooks by that same path.
"""

from __future__ import annotations

from typing import Any

from resthooks.model import Delivery, Hook
from resthooks.testing import RecordingTransport, run_schedule


def run_out_of_retries(dispatcher: Any, hook: Hook) -> Delivery:
    """Make ``hook`` dead: an event for it fails every attempt until the RetryPolicy gives up.

    The Dispatcher (or its asyncio face) must have a :class:`RecordingTransport`, which answers
    500 meanwhile, and a FakeClock, which :func:`run_schedule` moves through the schedule.
    Every other delivery due meanwhile is attempted too. Returns the delivery that failed.
    """
    transport = dispatcher.transport
    assert isinstance(transport, RecordingTransport), "the transport must be a RecordingTransport"
    previous = transport.default
    transport.default = 500
    try:
        made = dispatcher.emit(hook.event, {"why": "the retries run out"}, owner=hook.owner)
        run_schedule(dispatcher)
    finally:
        transport.default = previous
    (delivery,) = [d for d in made if d.hook_id == hook.id]
    assert dispatcher.store.get_hook(hook.id).state.value == "dead", "the hook must be dead now"
    return delivery
