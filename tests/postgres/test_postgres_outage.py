"""PostgreSQL outages: the store and the worker come back by themselves, quickly.

Each test runs its own throwaway server (not the session's), which it stops and starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
import support
from support import make_dispatcher

from resthooks import StoreError
from resthooks.lifecycle import DeliveryDelivered

OWNER = "acme"
EVENT = "party/created"


@pytest.fixture(name="own_cluster")
def _own_cluster(pg_cluster: support.Cluster) -> Iterator[support.Cluster]:
    # pg_cluster first: it reports (skips or fails) when PostgreSQL is not installed.
    with support.start_cluster() as cluster:
        yield cluster


def wait_for(condition, timeout: float = 30.0) -> float:
    """Poll ``condition`` every 10 ms; the seconds it took (the test fails on timeout)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "the condition was not reached"
        time.sleep(0.01)
    return time.monotonic() - start


def emit_ok(dispatcher, n: int) -> bool:
    try:
        dispatcher.emit(EVENT, {"id": n}, owner=OWNER)
    except StoreError:
        return False
    return True


def test_a_restart_is_survived_and_recovery_follows_the_server(own_cluster, receiver):
    """The server stops under a running worker and comes back: emits fail with StoreError
    meanwhile, and resume (emit and delivery) as soon as the server is ready; nothing is lost.
    The times are printed (the fault suite records them; they are not asserted)."""
    from resthooks.stores.postgres import PostgresStore  # noqa: PLC0415

    store = PostgresStore(own_cluster.conninfo(), timeout=5)
    dispatcher = make_dispatcher(store)
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    delivered: list[str] = []
    dispatcher.add_listener(
        lambda e: delivered.append(e.delivery_id) if isinstance(e, DeliveryDelivered) else None
    )
    stop = threading.Event()
    worker = threading.Thread(
        target=dispatcher.run, kwargs={"stop": stop, "poll_interval": 0.5}, daemon=True
    )
    worker.start()
    try:
        for n in range(5):
            assert emit_ok(dispatcher, n)
        wait_for(lambda: len(delivered) == 5)

        own_cluster.halt()
        with pytest.raises(StoreError):
            dispatcher.emit(EVENT, {"id": "down"}, owner=OWNER)
        time.sleep(2.0)  # an outage long enough for the pool's own backoff to grow
        own_cluster.resume()
        ready = time.monotonic()
        emit_after = wait_for(lambda: emit_ok(dispatcher, 99))
        deliver_after = wait_for(lambda: len(delivered) == 6) + emit_after
        print(  # the fault suite's figure, under -s
            f"\nafter the server was ready: first emit {emit_after:.2f} s, "
            f"first delivery {deliver_after:.2f} s (since ready: {time.monotonic() - ready:.2f} s)"
        )
    finally:
        stop.set()
        worker.join(30)
        store.close()
    assert not worker.is_alive()
    assert len(set(delivered)) == 6


def test_a_worker_started_during_an_outage_waits_saying_so(own_cluster, receiver, caplog):
    """The store is made and the worker started while the server is down: nothing raises,
    the log says the store cannot be reached, and once the server is up the worker delivers
    what is emitted."""
    from resthooks.stores.postgres import PostgresStore  # noqa: PLC0415

    conninfo = own_cluster.conninfo()
    setup = PostgresStore(conninfo)  # a schema and a hook, before the outage
    make_dispatcher(setup).subscribe(EVENT, receiver.url(), owner=OWNER)
    setup.close()
    own_cluster.halt()

    with caplog.at_level(logging.WARNING, logger="resthooks"):
        store = PostgresStore(conninfo, timeout=2)
        dispatcher = make_dispatcher(store)
        delivered = threading.Event()
        dispatcher.add_listener(
            lambda e: delivered.set() if isinstance(e, DeliveryDelivered) else None
        )
        stop = threading.Event()
        worker = threading.Thread(
            target=dispatcher.run, kwargs={"stop": stop, "poll_interval": 0.5}, daemon=True
        )
        worker.start()
        try:
            time.sleep(1.5)
            assert worker.is_alive(), "the worker must wait for the server, not exit"
            own_cluster.resume()
            wait_for(lambda: emit_ok(dispatcher, 1))
            wait_for(delivered.is_set)
        finally:
            stop.set()
            worker.join(30)
            store.close()

    messages = [r.getMessage() for r in caplog.records]
    assert any("PostgreSQL cannot be reached" in m for m in messages)
    assert any(
        m.startswith("the store failed (StoreError: PostgreSQL cannot be reached") for m in messages
    )
    assert any(m.startswith("the store works again") for m in messages)
