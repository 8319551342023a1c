"""Fixtures shared by the project's own tests."""

from __future__ import annotations

import pytest

from resthooks import Dispatcher, NetworkPolicy
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, RecordingTransport


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="transport")
def _transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture(name="store")
def _store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture(name="dispatcher")
def _dispatcher(store: MemoryStore, clock: FakeClock, transport: RecordingTransport) -> Dispatcher:
    return Dispatcher(store, clock=clock, transport=transport)


# Loopback is refused by the default NetworkPolicy: a test that delivers to a local server
# through the real transport opts in with this policy (or the fixture below).
LOOPBACK = LOOPBACK_POLICY


@pytest.fixture(name="loopback_policy")
def _loopback_policy() -> NetworkPolicy:
    return LOOPBACK
