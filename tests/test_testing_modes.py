"""Test settings for a host's Dispatcher (synchronous, no_delivery) and run_schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from resthooks import (
    ConfigurationError,
    Delivery,
    DeliveryState,
    Dispatcher,
    HookState,
    RetryPolicy,
    SystemClock,
    ValidationError,
)
from resthooks.stores import MemoryStore
from resthooks.testing import (
    LOOPBACK_POLICY,
    FakeClock,
    HookReceiver,
    RecordingTransport,
    no_delivery,
    run_schedule,
    synchronous,
)


def test_synchronous_emit_delivers_before_returning(
    resthooks_dispatcher: Dispatcher, resthooks_transport: RecordingTransport
) -> None:
    """In synchronous mode, emit has sent the request by the time it returns."""
    resthooks_dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    synchronous(resthooks_dispatcher)
    (delivery,) = resthooks_dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert len(resthooks_transport.requests) == 1
    assert resthooks_dispatcher.get_delivery(delivery.id, owner="acme").state is (
        DeliveryState.DELIVERED
    )


def test_synchronous_restores_on_exit(
    resthooks_dispatcher: Dispatcher, resthooks_transport: RecordingTransport
) -> None:
    """Leaving the with block puts back the Dispatcher's own after_emit."""
    seen: list[list[Delivery]] = []
    resthooks_dispatcher.after_emit = seen.append
    resthooks_dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    with synchronous(resthooks_dispatcher):
        resthooks_dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert seen == [], "synchronous replaced the hook while it was on"
    resthooks_dispatcher.emit("party/created", {"id": 2}, owner="acme")
    assert len(resthooks_transport.requests) == 1
    assert len(seen) == 1


def test_synchronous_leaves_transactional_emits_for_later(
    resthooks_dispatcher: Dispatcher, resthooks_transport: RecordingTransport
) -> None:
    """An emit given a connection is not delivered at once: it is not committed yet."""

    class Outbox(MemoryStore):
        def enqueue(self, *, connection: object | None = None, **kwargs: object) -> list[Delivery]:
            return super().enqueue(**kwargs)  # type: ignore[arg-type]

    dispatcher = Dispatcher(
        Outbox(), clock=resthooks_dispatcher.clock, transport=resthooks_transport
    )
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    with synchronous(dispatcher):
        dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=object())
        assert resthooks_transport.requests == []
        dispatcher.emit("party/created", {"id": 2}, owner="acme")
        assert len(resthooks_transport.requests) == 2, "the next delivery sends both"


def test_emit_without_hooks_does_not_call_after_emit(resthooks_dispatcher: Dispatcher) -> None:
    """after_emit is called only when the emit stored deliveries."""
    seen: list[list[Delivery]] = []
    resthooks_dispatcher.after_emit = seen.append
    assert resthooks_dispatcher.emit("party/created", {"id": 1}, owner="acme") == []
    assert seen == []


def test_no_delivery_sends_nothing_over_the_network(resthooks_clock: FakeClock) -> None:
    """With no_delivery, a hook pointing at a live receiver never gets a request."""
    dispatcher = Dispatcher(MemoryStore(), clock=resthooks_clock, network_policy=LOOPBACK_POLICY)
    with HookReceiver() as receiver:
        receiver.subscribe(dispatcher, "party/created", owner="acme")
        with no_delivery(dispatcher) as off:
            dispatcher.emit("party/created", {"id": 1}, owner="acme")
            assert dispatcher.deliver_due().delivered == 1
        assert receiver.deliveries == []
        assert off.transport is not None
        assert [r.body for r in off.transport.requests] == [
            b'{"event":"party/created","payload":[{"id":1}]}'
        ]
        # Restored: the real transport reaches the receiver again.
        dispatcher.emit("party/created", {"id": 2}, owner="acme")
        dispatcher.deliver_due()
        assert [d.payload for d in receiver.deliveries] == [[{"id": 2}]]


def test_modes_combine_and_restore_independently(resthooks_clock: FakeClock) -> None:
    """synchronous and no_delivery together deliver at once to the recording transport."""
    dispatcher = Dispatcher(MemoryStore(), clock=resthooks_clock)
    original = dispatcher.transport
    off = no_delivery(dispatcher)
    sync = synchronous(dispatcher)
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert off.transport is not None
    assert len(off.transport.requests) == 1
    off.restore()
    assert dispatcher.transport is original
    assert dispatcher.after_emit is not None, "restoring one mode leaves the other on"
    sync.restore()
    assert dispatcher.after_emit is None


def test_run_schedule_plays_the_whole_capsule_schedule(
    resthooks_dispatcher: Dispatcher,
    resthooks_transport: RecordingTransport,
    resthooks_clock: FakeClock,
) -> None:
    """A target that always fails gets 6 attempts over 36 min 5 s, then the hook is dead."""
    resthooks_transport.default = 500
    hook = resthooks_dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    start = resthooks_clock.now()
    resthooks_dispatcher.emit("party/created", {"id": 1}, owner="acme")

    summary = run_schedule(resthooks_dispatcher)

    assert (summary.retried, summary.failed, summary.attempts) == (5, 1, 6)
    assert timedelta(minutes=36, seconds=5) == resthooks_clock.now() - start
    assert resthooks_dispatcher.get_hook(hook.id, owner="acme").state is HookState.DEAD
    assert resthooks_dispatcher.store.next_due_at() is None


def test_run_schedule_with_nothing_pending_returns_an_empty_summary(
    resthooks_dispatcher: Dispatcher, resthooks_clock: FakeClock
) -> None:
    """Nothing to send: no attempt, and the clock does not move."""
    before = resthooks_clock.now()
    assert run_schedule(resthooks_dispatcher).attempts == 0
    assert before == resthooks_clock.now()


def test_run_schedule_needs_a_fake_clock() -> None:
    """A Dispatcher on the system clock is refused with a ConfigurationError."""
    dispatcher = Dispatcher(MemoryStore(), clock=SystemClock(), transport=RecordingTransport())
    with pytest.raises(ConfigurationError, match="FakeClock"):
        run_schedule(dispatcher)


def test_run_schedule_gives_up_after_max_rounds(resthooks_clock: FakeClock) -> None:
    """A schedule longer than max_rounds ends in an AssertionError, not a hang."""
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=resthooks_clock,
        transport=RecordingTransport(default=500),
        retry=RetryPolicy(delays=[1] * 50),
    )
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    with pytest.raises(AssertionError, match="still pending after 3 rounds"):
        run_schedule(dispatcher, max_rounds=3)


def test_a_receiver_needs_the_loopback_policy(resthooks_clock: FakeClock) -> None:
    """Without LOOPBACK_POLICY the default network policy refuses a receiver's URL."""
    dispatcher = Dispatcher(MemoryStore(), clock=resthooks_clock)
    with HookReceiver() as receiver, pytest.raises(ValidationError, match="target_url"):
        receiver.subscribe(dispatcher, "party/created", owner="acme")
    assert dispatcher.hooks(owner="acme") == []


def test_no_delivery_also_holds_for_the_worker(resthooks_clock: FakeClock) -> None:
    """The worker (run_until_idle) sends through the replaced transport too."""
    dispatcher = Dispatcher(MemoryStore(), clock=resthooks_clock, network_policy=LOOPBACK_POLICY)
    with HookReceiver() as receiver:
        receiver.subscribe(dispatcher, "party/created", owner="acme")
        off = no_delivery(dispatcher)
        dispatcher.emit("party/created", {"id": 1}, owner="acme")
        assert dispatcher.run_until_idle(workers=2).delivered == 1
        assert receiver.deliveries == []
        assert off.transport is not None
        assert len(off.transport.requests) == 1
