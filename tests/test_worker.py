"""The worker: concurrent delivery, sleeping until work is due, isolation, stopping."""

from __future__ import annotations

import itertools
import logging
import threading
from datetime import datetime, timedelta

import pytest

from resthooks import (
    ConfigurationError,
    DeliveryState,
    Dispatcher,
    InvalidStateError,
    StoreError,
    Timeouts,
)
from resthooks.lifecycle import DeliveryDelivered, HookDead
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, RecordingTransport
from resthooks.transports import Request, Response, Urllib3Transport
from resthooks.worker import Worker

OWNER = "acme"
EVENT = "party/created"


class SleepLog(FakeClock):
    """A FakeClock that remembers every deadline the worker slept until."""

    def __init__(self) -> None:
        super().__init__()
        self.deadlines: list[datetime] = []

    def sleep_until(self, deadline: datetime, wake: threading.Event | None = None) -> None:
        self.deadlines.append(deadline)
        super().sleep_until(deadline, wake)


def run_in_thread(target, *args, **kwargs):
    result: dict[str, object] = {}

    def body() -> None:
        try:
            result["value"] = target(*args, **kwargs)
        except BaseException as exc:  # surfaced by the test
            result["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, result


def join(thread: threading.Thread, result: dict[str, object]) -> object:
    thread.join(30)
    assert not thread.is_alive(), "the worker did not stop"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


def test_run_until_idle_delivers_everything_due_over_real_http(make_loopback_dispatcher, receiver):
    """run_until_idle sends every due delivery, concurrently, and returns once nothing is due."""
    dispatcher = make_loopback_dispatcher()
    for n in range(30):
        dispatcher.subscribe(EVENT, receiver.url(f"/h{n}"), owner=OWNER)
    emitted = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)

    summary = dispatcher.run_until_idle(workers=8)

    assert summary.delivered == 30
    assert sorted(d.id for d in emitted) == sorted(d.webhook_id for d in receiver.deliveries)
    assert {k: v for k, v in dispatcher.stats().deliveries.items() if v} == {"delivered": 30}


def test_run_until_idle_leaves_retries_for_later_and_time_stands_still():
    """A retry due later ends run_until_idle; with a FakeClock it never moves time."""
    clock = FakeClock()
    transport = RecordingTransport(script=[500, 204])

    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=transport)
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    start = clock.now()

    first = dispatcher.run_until_idle(workers=2)
    assert (first.retried, first.delivered) == (1, 0)
    assert start == clock.now()

    clock.advance(5)
    second = dispatcher.run_until_idle(workers=2)
    assert (second.retried, second.delivered) == (0, 1)
    assert dispatcher.get_delivery(delivery.id, owner=OWNER).state == DeliveryState.DELIVERED


def test_worker_sleeps_exactly_until_each_retry_is_due(make_loopback_dispatcher, receiver):
    """With nothing in flight the loop sleeps until the next due delivery: no tick, no spin."""
    receiver.answer(500)
    clock = SleepLog()
    dispatcher = make_loopback_dispatcher(clock=clock)
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    t0 = clock.now()
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    stop = threading.Event()
    dispatcher.add_listener(lambda e: stop.set() if isinstance(e, HookDead) else None)

    summary = dispatcher.run(workers=4, stop=stop, poll_interval=3600)

    assert (summary.retried, summary.failed) == (5, 1)
    assert [t0 + timedelta(seconds=s) for s in (5, 65, 365, 1265, 2165)] == clock.deadlines


def test_emit_in_the_same_process_wakes_a_sleeping_worker(make_loopback_dispatcher, receiver):
    """An emit wakes the worker at once, although its poll interval is an hour."""
    dispatcher = make_loopback_dispatcher()
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    stop = threading.Event()
    delivered = threading.Event()
    dispatcher.add_listener(lambda e: delivered.set() if isinstance(e, DeliveryDelivered) else None)
    thread, result = run_in_thread(dispatcher.run, workers=2, stop=stop, poll_interval=3600)
    try:
        dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
        assert delivered.wait(30), "the emit did not wake the worker"
    finally:
        stop.set()
    summary = join(thread, result)
    assert summary.delivered == 1


def test_stop_lets_attempts_in_flight_finish_and_leaves_the_rest_pending(
    make_loopback_dispatcher, receiver
):
    """On stop, attempts in flight finish and are recorded; nothing new starts; none in flight."""
    receiver.hold()
    dispatcher = make_loopback_dispatcher(max_in_flight_per_host=2)
    for n in range(5):
        dispatcher.subscribe(EVENT, receiver.url(f"/h{n}"), owner=OWNER)
    emitted = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    stop = threading.Event()
    thread, result = run_in_thread(dispatcher.run, workers=4, stop=stop, grace=30)
    receiver.wait_for(1, timeout=30)  # a new host: one attempt at first (slow start)
    stop.set()
    receiver.release()
    summary = join(thread, result)

    states = [dispatcher.get_delivery(d.id, owner=OWNER) for d in emitted]
    assert summary.delivered == 1
    assert len(receiver.deliveries) == 1
    assert _count(states) == {DeliveryState.DELIVERED: 1, DeliveryState.PENDING: 4}
    assert all(d.attempts == 0 for d in states if d.state is DeliveryState.PENDING)

    # Nothing was lost: a later run delivers the rest.
    assert dispatcher.run_until_idle().delivered == 4


def test_stop_releases_claims_that_were_never_sent(make_loopback_dispatcher, receiver):
    """A claim waiting for a thread when the worker stops is released, unsent, attempts 0."""
    receiver.hold()
    dispatcher = make_loopback_dispatcher()
    for n in range(2):
        dispatcher.subscribe(EVENT, receiver.url(f"/h{n}"), owner=OWNER)
    emitted = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    stop = threading.Event()
    # One thread: one delivery is sent, the other waits in the worker's batch.
    thread, result = run_in_thread(dispatcher.run, workers=1, stop=stop, grace=30)
    receiver.wait_for(1, timeout=30)
    stop.set()
    receiver.release()
    summary = join(thread, result)

    states = _count(dispatcher.get_delivery(d.id, owner=OWNER) for d in emitted)
    assert states == {DeliveryState.DELIVERED: 1, DeliveryState.PENDING: 1}
    assert summary.delivered == 1
    assert len(receiver.deliveries) == 1


def test_stop_after_the_grace_period_releases_attempts_still_running(
    make_loopback_dispatcher, black_hole
):
    """Attempts still running when the grace period ends are released: none stays in flight."""
    dispatcher = make_loopback_dispatcher(timeouts=Timeouts(connect=5, total=20))
    for n in range(3):
        dispatcher.subscribe(EVENT, black_hole.url(f"/h{n}"), owner=OWNER)
    emitted = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    stop = threading.Event()
    thread, result = run_in_thread(dispatcher.run, workers=4, stop=stop, grace=0.1)
    # One attempt in flight (a new host gets one), the other two claims waiting for it.
    assert black_hole.accepted.acquire(timeout=30)
    stop.set()
    summary = join(thread, result)

    deliveries = [dispatcher.get_delivery(d.id, owner=OWNER) for d in emitted]
    assert summary.attempts == 0
    assert [d.state for d in deliveries] == [DeliveryState.PENDING] * 3
    assert [d.attempts for d in deliveries] == [0, 0, 0]
    assert dispatcher.stats().deliveries["in_flight"] == 0


def test_a_worker_runs_once_at_a_time():
    """Running a worker that is already running is refused with InvalidStateError."""

    gate = threading.Event()
    entered = threading.Event()

    def handler(request):
        entered.set()
        gate.wait(30)
        return 204

    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport(handler))
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    worker = dispatcher.worker(workers=1)
    thread, result = run_in_thread(worker.run_until_idle)
    assert entered.wait(30)
    with pytest.raises(InvalidStateError):
        worker.run_until_idle()
    gate.set()
    assert join(thread, result).delivered == 1


def test_a_run_stopped_another_way_leaves_no_stop_watcher_behind():
    """A run given a stop Event that is never set, ended by Worker.stop, leaves no thread."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
    worker = dispatcher.worker(workers=1, poll_interval=0.01)
    never_set = threading.Event()
    thread, result = run_in_thread(worker.run, never_set)
    watchers = []
    for _ in range(300):
        watchers = [t for t in threading.enumerate() if t.name == "resthooks-stop"]
        if watchers:
            break
        threading.Event().wait(0.01)
    assert watchers, "run() with a stop Event watches it"
    worker.stop()
    join(thread, result)
    for watcher in watchers:
        watcher.join(10)
    assert [w for w in watchers if w.is_alive()] == []
    assert not never_set.is_set()


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"workers": 0}, "workers"),
        ({"workers": True}, "workers"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": float("inf")}, "poll_interval"),
        ({"grace": -1}, "grace"),
    ],
)
def test_bad_worker_options_are_refused(dispatcher, options, word):
    """A bad worker option is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=word):
        Worker(dispatcher, **options)


def _count(deliveries) -> dict[DeliveryState, int]:
    counts: dict[DeliveryState, int] = {}
    for d in deliveries:
        counts[d.state] = counts.get(d.state, 0) + 1
    return counts


class FlakyStore(MemoryStore):
    """A MemoryStore whose claim_due fails the first ``failures`` times."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def claim_due(self, **kwargs):
        if self.failures:
            self.failures -= 1
            raise StoreError("database is locked")
        return super().claim_due(**kwargs)


def test_a_running_worker_outlives_a_store_error(make_loopback_dispatcher, receiver, caplog):
    """run() logs a StoreError once, backs off (0.25 s first) and carries on;
    run_until_idle raises."""
    store = FlakyStore(failures=2)
    clock = FakeClock()
    dispatcher = make_loopback_dispatcher(store=store, clock=clock)
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    with pytest.raises(StoreError):
        dispatcher.run_until_idle()
    stop = threading.Event()
    dispatcher.add_listener(lambda e: stop.set() if isinstance(e, DeliveryDelivered) else None)

    with caplog.at_level(logging.ERROR, logger="resthooks"):
        summary = dispatcher.run(stop=stop, poll_interval=7)

    assert summary.delivered == 1
    assert [r.getMessage() for r in caplog.records] == [
        "the store failed (StoreError: database is locked); the worker keeps going and tries "
        "again in 0.25 s"
    ]
    [attempt] = dispatcher.attempts(delivery.id, owner=OWNER)
    assert attempt.started_at - delivery.created_at == timedelta(seconds=0.25)


# -- one thread: the loop makes the attempts itself ----------------------------------------------


class NotingTransport(Urllib3Transport):
    """The real transport, noting which thread sent each request and the worker's heartbeat
    at that moment."""

    def __init__(self) -> None:
        super().__init__(policy=LOOPBACK_POLICY)
        self.threads: list[int] = []
        self.heartbeats: list[datetime | None] = []
        self.worker: Worker | None = None

    def send(self, request: Request) -> Response:
        self.threads.append(threading.get_ident())
        self.heartbeats.append(self.worker.heartbeat if self.worker is not None else None)
        return super().send(request)


def test_one_thread_sends_on_the_loop_thread_and_a_short_grace_on_a_thread_of_its_own(
    make_loopback_dispatcher, receiver
):
    """With workers=1 the attempts run on the thread that runs the worker (nothing is handed
    between threads); with a grace shorter than the attempt deadline they run on a thread the
    worker can leave behind."""
    for grace, on_caller in ((None, True), (0.5, False)):
        transport = NotingTransport()
        dispatcher = make_loopback_dispatcher(transport=transport)
        dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
        dispatcher.emit_many([(EVENT, {"id": n}, OWNER) for n in range(5)])

        summary = dispatcher.worker(workers=1, grace=grace).run_until_idle()

        assert summary.delivered == 5
        assert len(transport.threads) == 5
        assert (set(transport.threads) == {threading.get_ident()}) is on_caller, grace


def test_one_thread_moves_the_heartbeat_after_every_attempt(make_loopback_dispatcher, receiver):
    """The loop busy with attempts is not a stuck loop: the heartbeat moves after each one,
    so a run of attempts longer than the deadline does not look stale to check_health."""
    transport = NotingTransport()
    dispatcher = make_loopback_dispatcher(transport=transport)
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    dispatcher.emit_many([(EVENT, {"id": n}, OWNER) for n in range(6)])
    transport.worker = worker = dispatcher.worker(workers=1)

    assert worker.run_until_idle().delivered == 6

    seen = transport.heartbeats
    assert None not in seen
    assert all(a < b for a, b in itertools.pairwise(seen)), seen  # type: ignore[operator]


def test_one_thread_goes_round_again_without_sleeping_after_its_attempts(
    make_loopback_dispatcher, receiver
):
    """A running one-thread worker claims again as soon as its attempts are recorded: a
    backlog larger than one claim is sent without waiting for the poll interval."""
    dispatcher = make_loopback_dispatcher()
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    dispatcher.emit_many([(EVENT, {"id": n}, OWNER) for n in range(12)])
    delivered = threading.Semaphore(0)
    dispatcher.add_listener(
        lambda e: delivered.release() if isinstance(e, DeliveryDelivered) else None
    )
    stop = threading.Event()
    thread, result = run_in_thread(dispatcher.run, workers=1, stop=stop, poll_interval=3600)
    try:
        for n in range(12):
            assert delivered.acquire(timeout=30), f"only {n} of 12 delivered"
    finally:
        stop.set()
    assert join(thread, result).delivered == 12  # type: ignore[attr-defined]
