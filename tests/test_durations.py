"""One rule for "a number of seconds", everywhere resthooks takes one (issue 14's 1e12 delay)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

import pytest

from resthooks import (
    ConfigurationError,
    Dispatcher,
    ResthooksError,
    RetryPolicy,
    Timeouts,
    ValidationError,
)
from resthooks._durations import MAX_SECONDS
from resthooks.stores import MemoryStore
from resthooks.testing import Answer, FakeClock, RecordingTransport
from resthooks.transports import Response, Urllib3Transport

OWNER = "acme"
EVENT = "party/created"

# Every public entry point that takes seconds, with the field its error must name.
ENTRY_POINTS: dict[str, tuple[str, Callable[[object], object]]] = {
    "RetryPolicy.delays": ("delays", lambda v: RetryPolicy(delays=[5, v])),  # type: ignore[list-item]
    "RetryPolicy.timeout_penalty": ("timeout_penalty", lambda v: RetryPolicy(timeout_penalty=v)),  # type: ignore[arg-type]
    "RetryPolicy.max_retry_after": ("max_retry_after", lambda v: RetryPolicy(max_retry_after=v)),  # type: ignore[arg-type]
    "Timeouts.connect": ("connect", lambda v: Timeouts(connect=v, total=20)),  # type: ignore[arg-type]
    "Timeouts.total": ("total", lambda v: Timeouts(connect=1, total=v)),  # type: ignore[arg-type]
    "Dispatcher.lease": ("lease", lambda v: Dispatcher(MemoryStore(), lease=v)),  # type: ignore[arg-type]
    "Dispatcher.secret_grace": (
        "secret_grace",
        lambda v: Dispatcher(MemoryStore(), secret_grace=v),  # type: ignore[arg-type]
    ),
    "Dispatcher.purge": (
        "older_than",
        lambda v: Dispatcher(MemoryStore(), clock=FakeClock()).purge(older_than=v),  # type: ignore[arg-type]
    ),
    "Dispatcher.worker.poll_interval": (
        "poll_interval",
        lambda v: Dispatcher(MemoryStore()).worker(poll_interval=v),  # type: ignore[arg-type]
    ),
    "Dispatcher.worker.grace": (
        "grace",
        lambda v: Dispatcher(MemoryStore()).worker(grace=v),  # type: ignore[arg-type]
    ),
    "Urllib3Transport.pool_idle_timeout": (
        "pool_idle_timeout",
        lambda v: Urllib3Transport(pool_idle_timeout=v),  # type: ignore[arg-type]
    ),
    "FakeClock.advance": ("delta", lambda v: FakeClock().advance(v)),  # type: ignore[arg-type]
    "Answer.delay": ("delay", lambda v: Answer(delay=v)),  # type: ignore[arg-type]
}
BAD = [1e12, MAX_SECONDS * 2, math.inf, -math.inf, math.nan, -1, "5", None, True, [5]]


@pytest.mark.parametrize("value", BAD, ids=repr)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_duration_is_checked_by_the_one_rule(entry: str, value: object) -> None:
    """Each entry point refuses what is not a finite number of seconds that fits a datetime,
    with a typed resthooks error naming its field (never a bare ValueError or TypeError)."""
    field, call = ENTRY_POINTS[entry]
    if value is None and entry == "Dispatcher.worker.grace":
        call(value)  # None means the default there: the attempt deadline
        return
    with pytest.raises(ResthooksError, match=field) as info:
        call(value)
    assert isinstance(info.value, (ConfigurationError, ValidationError))


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_the_longest_duration_is_accepted(entry: str) -> None:
    """MAX_SECONDS itself (about 100 years) is still a duration (above it is refused)."""
    _, call = ENTRY_POINTS[entry]
    if entry == "Timeouts.connect":
        Timeouts(connect=MAX_SECONDS, total=MAX_SECONDS)
        return
    if entry == "Dispatcher.lease":
        Dispatcher(MemoryStore(), lease=MAX_SECONDS)
        return
    call(MAX_SECONDS)


def test_a_retry_policy_of_1e12_seconds_is_refused() -> None:
    """Issue 14: RetryPolicy(delays=[1e12]) was accepted, and its delivery, due at a time
    past the end of datetime, was sent 1,461 times in 3 s. It is now refused at once."""
    with pytest.raises(ConfigurationError, match="delays"):
        RetryPolicy(delays=[1e12])


def test_the_longest_delay_schedules_one_retry_not_a_storm() -> None:
    """A retry MAX_SECONDS away is due then, and nothing is sent again before it."""
    clock = FakeClock()
    transport = RecordingTransport(script=[Response(status=500)])
    dispatcher = Dispatcher(
        MemoryStore(), clock=clock, transport=transport, retry=RetryPolicy(delays=[MAX_SECONDS])
    )
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    start = clock.now()

    assert dispatcher.deliver_due().retried == 1
    for _ in range(3):
        assert dispatcher.deliver_due().attempts == 0
    assert dispatcher.run_until_idle(workers=2).attempts == 0

    due = dispatcher.get_delivery(delivery.id, owner=OWNER).next_attempt_at
    assert start + timedelta(seconds=MAX_SECONDS) == due
    assert len(transport.requests) == 1
