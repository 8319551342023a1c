"""The worker never dies: store failures of any kind, damaged rows, quarantine."""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import timedelta

import pytest

from resthooks import DamagedRowError, DeliveryState, StoreError, SystemClock
from resthooks.lifecycle import DeliveryDelivered, DeliveryQuarantined
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock

OWNER = "acme"
EVENT = "party/created"


def run_until(dispatcher, done, *, timeout=30.0, **options):
    """Run the worker in a thread until ``done()`` holds (checked on every lifecycle event
    and every 50 ms), then stop it and return its summary."""
    stop = threading.Event()
    result: dict[str, object] = {}

    def body() -> None:
        try:
            result["summary"] = dispatcher.run(stop=stop, **options)
        except BaseException as exc:  # surfaced below
            result["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    ok = False
    for _ in range(int(timeout / 0.05)):
        if done() or not thread.is_alive():
            ok = done()
            break
        threading.Event().wait(0.05)
    stop.set()
    thread.join(30)
    assert not thread.is_alive(), "the worker did not stop"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    assert ok, "the condition was not reached"
    return result["summary"]


def damage(path, sql, *params):
    """Change the file behind the store's back, as a disk fault or a hand edit would."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


@pytest.fixture(name="sqlite_path")
def _sqlite_path(tmp_path):
    return str(tmp_path / "hooks.db")


def test_one_damaged_row_is_quarantined_and_the_others_go_out(
    make_loopback_dispatcher, receiver, sqlite_path
):
    """A delivery whose next_attempt_at no datetime can hold is moved aside, reported once
    (log, lifecycle event, stats), and the 99 others are delivered."""
    store = SQLiteStore(sqlite_path)
    dispatcher = make_loopback_dispatcher(store=store, clock=SystemClock())
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    deliveries = [dispatcher.emit(EVENT, {"id": i}, owner=OWNER)[0] for i in range(100)]
    damage(sqlite_path, "UPDATE resthooks_deliveries SET next_attempt_at = ? WHERE seq = 50", 2**62)
    events: list[object] = []
    dispatcher.add_listener(events.append)

    summary = run_until(
        dispatcher, lambda: sum(isinstance(e, DeliveryDelivered) for e in events) >= 99
    )

    assert summary.delivered == 99
    quarantined = [e for e in events if isinstance(e, DeliveryQuarantined)]
    assert len(quarantined) == 1
    assert quarantined[0].delivery_id in {d.id for d in deliveries}
    assert "OverflowError" in quarantined[0].reason
    stats = dispatcher.stats()
    assert stats.quarantined == 1
    assert stats.deliveries["delivered"] == 99
    assert stats.deliveries["pending"] + stats.deliveries["in_flight"] == 0
    store.close()


def test_a_damaged_due_time_does_not_break_the_idle_sleep(
    make_loopback_dispatcher, receiver, sqlite_path, caplog
):
    """next_due_at() (the worker's idle sleep) meets a due time past year 9999: the row is
    quarantined, the worker sleeps and later delivers what is emitted."""
    store = SQLiteStore(sqlite_path)
    dispatcher = make_loopback_dispatcher(store=store, clock=SystemClock())
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    [bad] = dispatcher.emit(EVENT, {"id": 0}, owner=OWNER)
    damage(
        sqlite_path, "UPDATE resthooks_deliveries SET due_at = ?, next_attempt_at = ?", 2**62, 2**62
    )
    events: list[object] = []
    dispatcher.add_listener(events.append)
    emitted = threading.Event()

    def later() -> bool:
        if not emitted.is_set() and any(isinstance(e, DeliveryQuarantined) for e in events):
            emitted.set()
            dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
        return any(isinstance(e, DeliveryDelivered) for e in events)

    with caplog.at_level(logging.WARNING, logger="resthooks"):
        summary = run_until(dispatcher, later, poll_interval=0.2)

    assert summary.delivered == 1
    assert [bad.id] == [e.delivery_id for e in events if isinstance(e, DeliveryQuarantined)]
    assert not [r for r in caplog.records if "store failed" in r.getMessage()]
    assert store.stats().quarantined == 1
    store.close()


def test_a_delivery_whose_hook_is_missing_is_quarantined_not_reclaimed(
    make_loopback_dispatcher, receiver, sqlite_path
):
    """A due delivery without a hook could never be sent and would be claimed again at every
    lease expiry: it is moved aside at its first claim."""
    store = SQLiteStore(sqlite_path)
    clock = FakeClock()
    dispatcher = make_loopback_dispatcher(store=store, clock=clock)
    hook = dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    [orphan] = dispatcher.emit(EVENT, {"id": 0}, owner=OWNER)
    damage(sqlite_path, "DELETE FROM resthooks_hooks WHERE id = ?", hook.id)

    assert dispatcher.deliver_due().attempts == 0
    clock.advance(timedelta(hours=1))
    assert dispatcher.deliver_due().attempts == 0

    [entry] = store.take_quarantined() or [None]  # already taken by the Dispatcher
    assert entry is None
    assert store.stats().quarantined == 1
    assert store.get_delivery(orphan.id) is None
    store.close()


def test_reads_of_a_damaged_row_raise_a_typed_error(sqlite_path):
    """Listing or showing a damaged delivery raises DamagedRowError (a StoreError), never a
    bare OverflowError or ValueError."""
    store = SQLiteStore(sqlite_path)
    dispatcher = make_dispatcher_plain(store)
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 0}, owner=OWNER)
    damage(sqlite_path, "UPDATE resthooks_deliveries SET state = 'exploded'")

    with pytest.raises(DamagedRowError) as info:
        dispatcher.get_delivery(delivery.id, owner=OWNER)
    assert info.value.table == "deliveries"
    with pytest.raises(StoreError):
        dispatcher.deliveries(owner=OWNER)
    store.close()


def make_dispatcher_plain(store):
    from resthooks import Dispatcher  # noqa: PLC0415
    from resthooks.testing import RecordingTransport  # noqa: PLC0415

    return Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())


class BrokenStore(MemoryStore):
    """A MemoryStore whose chosen method raises ``error`` its first ``times`` calls: a store
    with a bug, or a driver error that escaped it."""

    def __init__(self, method: str, error: Exception, times: int) -> None:
        super().__init__()
        self.method = method
        self.error = error
        self.times = times
        self.asked = threading.Event()  # the broken method was called at least once

    def _maybe_fail(self, name: str) -> None:
        if name == self.method:
            self.asked.set()
        if name == self.method and self.times:
            self.times -= 1
            raise self.error

    def claim_due(self, **kwargs):
        self._maybe_fail("claim_due")
        return super().claim_due(**kwargs)

    def next_due_at(self):
        self._maybe_fail("next_due_at")
        return super().next_due_at()

    def record(self, outcomes, *, now):
        self._maybe_fail("record")
        return super().record(outcomes, now=now)


@pytest.mark.parametrize("method", ["claim_due", "next_due_at", "record"])
@pytest.mark.parametrize(
    "error",
    [OverflowError("date value out of range"), KeyError("seq"), IndexError("tuple index")],
    ids=["OverflowError", "KeyError", "IndexError"],
)
def test_any_store_error_in_any_step_is_logged_once_and_the_loop_goes_on(
    make_loopback_dispatcher, receiver, caplog, method, error
):
    """Whatever a store raises, wherever the loop calls it (claim, the idle sleep's
    next_due_at, record), the worker logs it once with its cause, backs off and delivers."""
    store = BrokenStore(method, error, times=3)
    dispatcher = make_loopback_dispatcher(store=store, clock=SystemClock())
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    delivered = threading.Event()
    dispatcher.add_listener(lambda e: delivered.set() if isinstance(e, DeliveryDelivered) else 0)
    if method != "next_due_at":
        dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    else:
        # Only an idle worker asks next_due_at: emit once it has asked (it is idle then),
        # however long the worker took to start.
        def emit_when_idle() -> None:
            if store.asked.wait(30):
                dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)

        threading.Thread(target=emit_when_idle, daemon=True).start()

    def store_works_again() -> bool:
        return any("works again" in r.getMessage() for r in list(caplog.records))

    with caplog.at_level(logging.WARNING, logger="resthooks"):
        # Done once delivered and the loop has got through a whole round again, in whichever
        # order the two come (the delivery can land before the third failed try).
        summary = run_until(
            dispatcher, lambda: delivered.is_set() and store_works_again(), poll_interval=0.5
        )

    assert summary.delivered == 1
    failures = [r for r in caplog.records if "the store failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert failures[0].exc_info[1] is error
    assert type(error).__name__ in failures[0].getMessage()
    [recovered] = [r.getMessage() for r in caplog.records if "works again" in r.getMessage()]
    assert recovered.startswith("the store works again after 3 failed tries")
    assert store.stats().deliveries["in_flight"] == 0
    assert DeliveryState.DELIVERED is dispatcher.deliveries(owner=OWNER)[0].state


def test_outcomes_the_store_refused_are_recorded_later_not_sent_twice(
    make_loopback_dispatcher, receiver
):
    """When record() fails, the worker keeps the outcome and records it on a later round
    (while its claim lasts): the receiver got the delivery once."""
    store = BrokenStore("record", StoreError("database is locked"), times=3)
    dispatcher = make_loopback_dispatcher(store=store, clock=SystemClock())
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    delivered = threading.Event()
    dispatcher.add_listener(lambda e: delivered.set() if isinstance(e, DeliveryDelivered) else 0)

    run_until(dispatcher, delivered.is_set, poll_interval=1.0)

    assert [delivery.id] == [d.webhook_id for d in receiver.deliveries]


def test_run_until_idle_raises_a_typed_error_for_a_bare_exception():
    """run_until_idle (``worker --once``) stops at a store failure, as a StoreError."""
    from resthooks import Dispatcher  # noqa: PLC0415
    from resthooks.testing import RecordingTransport  # noqa: PLC0415

    store = BrokenStore("claim_due", KeyError("seq"), times=1)
    dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
    with pytest.raises(StoreError) as info:
        dispatcher.run_until_idle()
    assert isinstance(info.value.__cause__, KeyError)


class AlwaysFull(MemoryStore):
    """A store whose claims fail until ``healed`` is set (a full disk, for the log's sake)."""

    def __init__(self) -> None:
        super().__init__()
        self.healed = threading.Event()

    def claim_due(self, **kwargs):
        if not self.healed.is_set():
            raise StoreError("claiming deliveries: the disk is full; nothing was written")
        return super().claim_due(**kwargs)


def test_a_long_outage_is_one_log_line_a_minute(caplog):
    """Ten minutes of a failing store (on a FakeClock): the first failure with its
    traceback, then one line a minute with the count, then one line when it works again."""
    from resthooks import Dispatcher  # noqa: PLC0415
    from resthooks.testing import RecordingTransport  # noqa: PLC0415

    clock = FakeClock()
    store = AlwaysFull()
    dispatcher = Dispatcher(store, clock=clock, transport=RecordingTransport())
    start = clock.now()

    stop = threading.Event()
    original = store.claim_due

    def claim_due(**kwargs):
        if clock.now() - start >= timedelta(minutes=10):
            store.healed.set()
            stop.set()
        return original(**kwargs)

    store.claim_due = claim_due  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="resthooks"):
        dispatcher.run(stop=stop, poll_interval=5.0)

    lines = [r for r in caplog.records if r.name == "resthooks"]
    assert lines[0].getMessage().startswith("the store failed (StoreError: claiming")
    assert lines[0].exc_info is not None
    still = [r for r in lines if "still failing" in r.getMessage()]
    assert len(still) in (9, 10)
    assert all(r.exc_info is None for r in still)
    assert lines[-1].getMessage().startswith("the store works again after")
    assert len(lines) == 2 + len(still)
