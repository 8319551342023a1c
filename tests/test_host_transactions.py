"""Emitting for later and after a host's commit: Dispatcher.validate_emit and committed, and
what wakes a worker after an outbox emit on SQLite."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from resthooks import Dispatcher, SystemClock, ValidationError
from resthooks.stores import SQLiteStore
from resthooks.testing import RecordingTransport, synchronous


@pytest.mark.parametrize("bad", [None, 5, "msg_1", [object()], {"a": 1}])
def test_committed_refuses_what_is_not_deliveries(dispatcher: Dispatcher, bad: object) -> None:
    """Dispatcher.committed with anything but the deliveries of an emit: ValidationError
    naming deliveries, and no worker is woken."""
    with pytest.raises(ValidationError, match="deliveries"):
        dispatcher.committed(bad)  # type: ignore[arg-type]


def test_committed_runs_the_synchronous_mode(
    dispatcher: Dispatcher, transport: RecordingTransport
) -> None:
    """committed() after a host's commit delivers in synchronous mode; an empty list does
    nothing."""
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    made = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    with synchronous(dispatcher):
        dispatcher.committed([])
        assert transport.requests == []
        dispatcher.committed(made)
    assert len(transport.requests) == 1


def test_validate_emit_stores_nothing_and_returns_the_body(dispatcher: Dispatcher) -> None:
    """validate_emit returns the body emit would send and stores nothing."""
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    body = dispatcher.validate_emit("party/created", {"id": 1}, owner="acme")
    assert body == b'{"event":"party/created","payload":[{"id":1}]}'
    assert dispatcher.stats().deliveries["pending"] == 0
    with pytest.raises(ValidationError, match="owner"):
        dispatcher.validate_emit("party/created", {}, owner="")


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30  # generous: a loaded machine, not a timing threshold
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_sqlite_outbox_emit_waits_for_committed_to_wake_the_worker(
    tmp_path: Path, transport: RecordingTransport
) -> None:
    """SQLite cannot say when the host's transaction commits: an emit through the host's
    connection does not wake the in-process worker (its loop does not go round while the
    transaction is open, so it neither claims nothing nor waits on the host's write lock),
    and committed(), called by the host after its commit, wakes it: a worker polling hourly
    delivers at once."""
    db = tmp_path / "hooks.db"
    with SQLiteStore(db) as store:
        dispatcher = Dispatcher(store, clock=SystemClock(), transport=transport)
        dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        worker = dispatcher.worker(workers=1, poll_interval=3600)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        host = sqlite3.connect(db, isolation_level=None)
        try:
            _wait(lambda: worker.heartbeat is not None, "the worker to start")
            beat = worker.heartbeat
            time.sleep(0.5)
            assert beat == worker.heartbeat, "the worker should be asleep"
            host.execute("BEGIN IMMEDIATE")
            made = dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=host)
            time.sleep(0.5)  # a wake-up now would have sent the loop round by then
            assert beat == worker.heartbeat, "woken before the commit"
            host.execute("COMMIT")
            dispatcher.committed(made)
            _wait(lambda: len(transport.requests) == 1, "the delivery")
        finally:
            stop.set()
            thread.join(30)
            host.close()
        assert not thread.is_alive()
    assert [d.id for d in made] == [r.headers["webhook-id"] for r in transport.requests]
