"""Retry-After on 429 and 503, and the penalty after a timeout: rules of the RetryPolicy."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from resthooks import ConfigurationError, Dispatcher, RetryPolicy, TransportError
from resthooks.lifecycle import DeliveryDelivered
from resthooks.stores import MemoryStore
from resthooks.testing import Answer, FakeClock, RecordingTransport
from resthooks.transports import Response

OWNER = "acme"
EVENT = "party/created"


def _first_retry(answer, **policy):
    """Seconds between the first attempt and the retry it schedules."""
    clock = FakeClock()
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=clock,
        transport=RecordingTransport(script=[answer]),
        retry=RetryPolicy(**policy),
    )
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    start = clock.now()
    assert dispatcher.deliver_due().retried == 1
    delivery = dispatcher.get_delivery(delivery.id, owner=OWNER)
    assert delivery.attempts == 1
    return (delivery.next_attempt_at - start).total_seconds()


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_delays_the_retry(status):
    """429/503 with Retry-After: 120 retries no sooner than 120 s (the schedule says 5 s)."""
    assert _first_retry(Response(status=status, headers={"retry-after": "120"})) == 120.0


def test_retry_after_http_date():
    """Retry-After as an HTTP date is read relative to the Dispatcher's clock."""
    answer = Response(status=503, headers={"retry-after": "Thu, 01 Jan 2026 00:10:00 GMT"})
    assert _first_retry(answer) == 600.0


def test_retry_after_is_capped():
    """A Retry-After beyond max_retry_after (default 1 h) is cut to it."""
    assert _first_retry(Response(status=429, headers={"retry-after": "86400"})) == 3600.0
    answer = Response(status=429, headers={"retry-after": "86400"})
    assert _first_retry(answer, max_retry_after=600) == 600.0


@pytest.mark.parametrize(
    "answer",
    [
        Response(status=429, headers={"retry-after": "1"}),  # sooner than the schedule
        Response(status=429, headers={"retry-after": "later, please"}),  # not understood
        Response(status=500, headers={"retry-after": "120"}),  # only 429 and 503 count
    ],
)
def test_the_schedule_wins_otherwise(answer):
    """A Retry-After shorter than the schedule, unreadable, or on another status changes nothing."""
    assert _first_retry(answer) == 5.0


def test_a_timeout_is_penalised_and_a_refused_connection_is_not():
    """After a timeout the next attempt is 60 s away (Svix); after a connection error, 5 s."""
    assert _first_retry(TransportError("timeout", "timed out")) == 60.0
    assert _first_retry(TransportError("connection", "refused")) == 5.0
    assert _first_retry(TransportError("timeout", "timed out"), timeout_penalty=10) == 10.0


def test_the_schedule_still_counts_an_attempt_delayed_by_retry_after():
    """Attempts delayed by Retry-After count: six failures in all kill the hook."""
    clock = FakeClock()
    answer = Response(status=429, headers={"retry-after": "7200"})
    dispatcher = Dispatcher(
        MemoryStore(), clock=clock, transport=RecordingTransport(script=[answer])
    )
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    t0 = clock.now()
    for _ in range(6):
        dispatcher.deliver_due()
        due = dispatcher.get_delivery(delivery.id, owner=OWNER).next_attempt_at
        if due is not None:
            clock.set(due)
    times = [a.started_at - t0 for a in dispatcher.attempts(delivery.id, owner=OWNER)]
    assert [timedelta(hours=h) for h in range(6)] == times
    assert dispatcher.get_delivery(delivery.id, owner=OWNER).state.value == "failed"


def test_the_worker_waits_as_retry_after_asks(make_loopback_dispatcher, receiver):
    """Over real HTTP, the worker's next attempt comes exactly when Retry-After allowed."""
    receiver.answer(Answer(status=429, headers={"Retry-After": "120"}), 200)
    clock = FakeClock()
    dispatcher = make_loopback_dispatcher(clock=clock)
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    t0 = clock.now()
    stop = threading.Event()
    dispatcher.add_listener(lambda e: stop.set() if isinstance(e, DeliveryDelivered) else None)

    summary = dispatcher.run(workers=2, stop=stop, poll_interval=30)

    assert (summary.retried, summary.delivered) == (1, 1)
    attempts = dispatcher.attempts(delivery.id, owner=OWNER)
    assert [((a.started_at - t0).total_seconds(), a.status) for a in attempts] == [
        (0, 429),
        (120, 200),
    ]


@pytest.mark.parametrize("option", ["timeout_penalty", "max_retry_after"])
@pytest.mark.parametrize("value", [-1, float("inf"), "60", True])
def test_bad_policy_options_are_refused(option, value):
    """timeout_penalty and max_retry_after must be finite seconds >= 0."""
    with pytest.raises(ConfigurationError, match=option):
        RetryPolicy(**{option: value})


def test_the_dispatcher_no_longer_takes_retry_rules():
    """The retry rules live in RetryPolicy only: the Dispatcher refuses them as options."""
    with pytest.raises(TypeError, match="timeout_penalty"):
        Dispatcher(MemoryStore(), timeout_penalty=10)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="retry must be a RetryPolicy"):
        Dispatcher(MemoryStore(), retry={"delays": [1]})  # type: ignore[arg-type]
