"""The worker listens for work itself on a store built with notify=True (LISTEN/NOTIFY)."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import support

from resthooks import SystemClock
from resthooks.lifecycle import DeliveryDelivered, LifecycleEvent
from resthooks.stores import WakesWorkers
from resthooks.testing import HookReceiver


def test_an_emit_in_another_process_wakes_a_worker_polling_hourly(
    pg_conninfo: str, new_schema: Callable[[], str], receiver: HookReceiver
) -> None:
    """A worker polling once an hour delivers, within seconds, what another store on the same
    database (another process's) enqueued: the worker waits on the store's wake-up."""
    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    worker_store = PostgresStore(pg_conninfo, schema=schema, notify=True)
    web_store = PostgresStore(pg_conninfo, schema=schema, notify=True)
    try:
        assert isinstance(worker_store, WakesWorkers)
        assert worker_store.notifies
        dispatcher = support.make_dispatcher(worker_store, clock=SystemClock())
        web = support.make_dispatcher(web_store, clock=SystemClock())
        web.subscribe("party/created", receiver.url(), owner="acme")
        delivered = threading.Event()

        def on_event(event: LifecycleEvent) -> None:
            if isinstance(event, DeliveryDelivered):
                delivered.set()

        dispatcher.add_listener(on_event)
        stop = threading.Event()
        worker = threading.Thread(
            target=dispatcher.run, kwargs={"workers": 2, "stop": stop, "poll_interval": 3600}
        )
        worker.start()
        try:
            time.sleep(1.5)  # the worker has polled once and is asleep for an hour
            (delivery,) = web.emit("party/created", {"id": 1}, owner="acme")
            assert delivered.wait(30), "the worker was not woken by the other store's NOTIFY"
        finally:
            stop.set()
            worker.join(30)
        assert not worker.is_alive()
        assert {delivery.id: 1} == receiver.webhook_ids()
        assert not [t for t in threading.enumerate() if t.name == "resthooks-listen"]
    finally:
        worker_store.close()
        web_store.close()


def test_a_store_without_notify_is_not_listened_to(pg_store: object) -> None:
    """Without notify=True the store sends no NOTIFY, so the worker does not listen."""
    assert isinstance(pg_store, WakesWorkers)
    assert not pg_store.notifies
