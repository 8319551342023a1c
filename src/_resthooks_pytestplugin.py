"""resthooks' pytest plugin: fixtures for testing code that emits events.

pytest loads this module in every session of an environment where resthooks is installed
(through the ``pytest11`` entry point named ``resthooks``), so it lives outside the
``resthooks`` package and imports nothing of it until a test asks for one of its fixtures:
importing ``resthooks`` would pull in urllib3 and ssl for sessions that never use it. It
defines fixtures only: no hooks, no autouse fixture, no option.

Fixtures (documented in ``docs/testing.md``):

- ``resthooks_clock``: a :class:`resthooks.testing.FakeClock`.
- ``resthooks_transport``: a :class:`resthooks.testing.RecordingTransport`.
- ``resthooks_dispatcher``: a :class:`resthooks.Dispatcher` on a
  :class:`resthooks.stores.MemoryStore`, using the two above.
- ``hook_receiver``: a started :class:`resthooks.testing.HookReceiver`, closed after the test;
  the test fails if the receiver's server hit an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from resthooks import Dispatcher
    from resthooks.testing import FakeClock, HookReceiver, RecordingTransport


@pytest.fixture(name="resthooks_clock")
def _resthooks_clock() -> FakeClock:
    """A FakeClock at 2026-01-01T00:00:00Z that moves only when told to."""
    from resthooks.testing import FakeClock  # noqa: PLC0415 - imported only when used

    return FakeClock()


@pytest.fixture(name="resthooks_transport")
def _resthooks_transport() -> RecordingTransport:
    """A RecordingTransport: answers 204, records every request, sends nothing."""
    from resthooks.testing import RecordingTransport  # noqa: PLC0415 - imported only when used

    return RecordingTransport()


@pytest.fixture(name="resthooks_dispatcher")
def _resthooks_dispatcher(
    resthooks_clock: FakeClock, resthooks_transport: RecordingTransport
) -> Iterator[Dispatcher]:
    """A Dispatcher on a MemoryStore, with ``resthooks_clock`` and ``resthooks_transport``."""
    from resthooks import Dispatcher  # noqa: PLC0415 - imported only when used
    from resthooks.stores import MemoryStore  # noqa: PLC0415 - imported only when used

    store = MemoryStore()
    yield Dispatcher(store, clock=resthooks_clock, transport=resthooks_transport)
    store.close()


@pytest.fixture(name="hook_receiver")
def _hook_receiver() -> Iterator[HookReceiver]:
    """A HookReceiver listening on loopback for the duration of the test."""
    from resthooks.testing import HookReceiver  # noqa: PLC0415 - imported only when used

    with HookReceiver() as receiver:
        yield receiver
    if receiver.errors:
        raise AssertionError(f"the hook receiver's server failed: {receiver.errors!r}")
