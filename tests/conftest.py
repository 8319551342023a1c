"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resthooks import Dispatcher, NetworkPolicy, SystemClock, Timeouts
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, RecordingTransport
from resthooks.transports import Urllib3Transport


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


@pytest.fixture(name="http_dispatcher")
def _http_dispatcher() -> Iterator[Callable[..., Dispatcher]]:
    """Build Dispatchers that deliver over real HTTP (Urllib3Transport, the system clock) to
    servers on loopback. Every real-HTTP test builds its Dispatcher here, so that what it
    takes to allow loopback is said once, in this fixture."""
    transports: list[Urllib3Transport] = []

    def make(**options: Any) -> Dispatcher:
        transport = Urllib3Transport(policy=LOOPBACK)
        transports.append(transport)
        options.setdefault("timeouts", Timeouts(connect=1.0, total=1.0))
        options.setdefault("lease", 30.0)
        options.setdefault("network_policy", LOOPBACK)
        return Dispatcher(MemoryStore(), clock=SystemClock(), transport=transport, **options)

    yield make
    for transport in transports:
        transport.close()
