"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resthooks import Dispatcher, SystemClock, Timeouts
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport
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


@pytest.fixture(name="http_dispatcher")
def _http_dispatcher() -> Iterator[Callable[..., Dispatcher]]:
    """Build Dispatchers that deliver over real HTTP (Urllib3Transport, the system clock) to
    servers on loopback. Every real-HTTP test builds its Dispatcher here, so that what it
    takes to allow loopback is said once, in this fixture."""
    transports: list[Urllib3Transport] = []

    def make(**options: Any) -> Dispatcher:
        transport = Urllib3Transport()
        transports.append(transport)
        options.setdefault("timeouts", Timeouts(connect=1.0, total=1.0))
        options.setdefault("lease", 30.0)
        return Dispatcher(MemoryStore(), clock=SystemClock(), transport=transport, **options)

    yield make
    for transport in transports:
        transport.close()
