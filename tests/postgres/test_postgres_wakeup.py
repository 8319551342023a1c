"""Workers listen for work on PostgreSQL (LISTEN/NOTIFY): another process's emits with
notify=True, and outbox emits at their host's commit, never before it and never on rollback."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest
import support

from resthooks import ConfigurationError, Dispatcher, SystemClock
from resthooks.lifecycle import DeliveryDelivered, LifecycleEvent
from resthooks.stores import WakesWorkers

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore

HOURLY = 3600.0  # a worker polling this rarely delivers within seconds only if woken
WAIT = 30.0  # generous: a loaded CI machine, not a timing threshold


def _delivered_event(dispatcher: Dispatcher) -> threading.Event:
    delivered = threading.Event()

    def on_event(event: LifecycleEvent) -> None:
        if isinstance(event, DeliveryDelivered):
            delivered.set()

    dispatcher.add_listener(on_event)
    return delivered


def _asleep(worker: object) -> object:
    """Wait until the worker has gone round its loop and is asleep; its heartbeat then."""
    deadline = time.monotonic() + WAIT
    beat = getattr(worker, "heartbeat", None)
    while beat is None:
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
        beat = getattr(worker, "heartbeat", None)
    while True:  # asleep: the heartbeat stops moving
        time.sleep(0.5)
        now = getattr(worker, "heartbeat", None)
        if now == beat:
            return beat
        assert time.monotonic() < deadline, "the worker never fell asleep"
        beat = now


@contextmanager
def _running(dispatcher: Dispatcher) -> Iterator[object]:
    """A thread worker polling hourly, running until the block ends."""
    worker = dispatcher.worker(workers=2, poll_interval=HOURLY)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()


def test_an_emit_in_another_process_wakes_a_worker_polling_hourly(
    pg_conninfo: str, new_schema: Callable[[], str], receiver: support.Receiver
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
        delivered = _delivered_event(dispatcher)
        with _running(dispatcher) as worker:
            _asleep(worker)
            (delivery,) = web.emit("party/created", {"id": 1}, owner="acme")
            assert delivered.wait(WAIT), "the worker was not woken by the other store's NOTIFY"
        assert {delivery.id: 1} == receiver.counts
        assert not [t for t in threading.enumerate() if t.name == "resthooks-listen"]
    finally:
        worker_store.close()
        web_store.close()


def test_an_outbox_emit_wakes_the_worker_at_the_commit_not_before(
    pg_store: PostgresStore, pg_conninfo: str, receiver: support.Receiver
) -> None:
    """An emit through the host's connection does not wake the in-process worker while the
    host's transaction is open (its loop does not go round); the commit does (PostgreSQL
    delivers the NOTIFY sent inside the transaction), and a worker polling hourly delivers
    at once. The store is built with the defaults."""
    import psycopg

    assert pg_store.notify is None
    assert pg_store.notifies, "a worker listens on a default store"
    dispatcher = support.make_dispatcher(pg_store, clock=SystemClock())
    dispatcher.subscribe("party/created", receiver.url(), owner="acme")
    delivered = _delivered_event(dispatcher)
    with _running(dispatcher) as worker, psycopg.connect(pg_conninfo) as conn:
        beat = _asleep(worker)
        (made,) = dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=conn)
        time.sleep(1.0)  # a wake-up now would have sent the loop round by then
        assert beat == getattr(worker, "heartbeat", None), "woken before the commit"
        assert not delivered.is_set()
        conn.commit()
        assert delivered.wait(WAIT), "the commit did not wake the worker"
    assert {made.id: 1} == receiver.counts


def test_a_rolled_back_outbox_emit_notifies_nothing_and_delivers_nothing(
    pg_conninfo: str, new_schema: Callable[[], str], receiver: support.Receiver
) -> None:
    """PostgreSQL drops the NOTIFY of a rolled-back transaction: a listener hears nothing and
    nothing is delivered; the same emit committed is heard (the notification is sent at the
    commit, not at the emit)."""
    import psycopg

    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    host = PostgresStore(pg_conninfo, schema=schema)
    probe = PostgresStore(pg_conninfo, schema=schema)
    try:
        dispatcher = support.make_dispatcher(host)
        dispatcher.subscribe("party/created", receiver.url(), owner="acme")
        assert probe.wait_for_work(0.05) is False  # listening from now on
        with psycopg.connect(pg_conninfo) as conn:
            dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=conn)
            assert probe.wait_for_work(0.5) is False, "notified before the commit"
            conn.rollback()
        assert probe.wait_for_work(0.5) is False, "a rollback notified"
        assert dispatcher.deliver_due().attempts == 0
        assert receiver.total == 0
        with psycopg.connect(pg_conninfo) as conn:
            (made,) = dispatcher.emit("party/created", {"id": 2}, owner="acme", connection=conn)
            conn.commit()
        assert probe.wait_for_work(WAIT) is True
        assert dispatcher.deliver_due().delivered == 1
        assert {made.id: 1} == receiver.counts
    finally:
        host.close()
        probe.close()


def test_notify_false_sends_nothing_and_is_not_listened_to(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """With notify=False no emit notifies (not even through the outbox) and a worker on
    the store polls instead of listening."""
    import psycopg

    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    quiet = PostgresStore(pg_conninfo, schema=schema, notify=False)
    probe = PostgresStore(pg_conninfo, schema=schema)
    try:
        assert isinstance(quiet, WakesWorkers)
        assert not quiet.notifies
        dispatcher = support.make_dispatcher(quiet)
        dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        assert probe.wait_for_work(0.05) is False
        with psycopg.connect(pg_conninfo) as conn:
            assert dispatcher.emit("party/created", {}, owner="acme", connection=conn)
            conn.commit()
        assert dispatcher.emit("party/created", {}, owner="acme")
        assert probe.wait_for_work(0.5) is False
    finally:
        quiet.close()
        probe.close()


def test_a_store_on_the_hosts_connections_is_not_listened_to(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """A store given only the host's connections cannot listen: a worker on it polls."""
    import psycopg

    from resthooks.stores.postgres import PostgresStore

    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        store = PostgresStore(lambda: conn, schema=new_schema())
        assert not store.notifies


@pytest.mark.parametrize("notify", [0, "yes", 1.0])
def test_notify_must_be_a_bool_or_none(notify: object, pg_conninfo: str) -> None:
    """A notify that is neither True, False nor None is refused, naming the option."""
    from resthooks.stores.postgres import PostgresStore

    with pytest.raises(ConfigurationError, match=r"^notify: "):
        PostgresStore(pg_conninfo, schema="never_made", notify=notify)  # type: ignore[arg-type]


def test_an_async_outbox_emit_wakes_the_async_worker_at_the_commit(
    pg_store: PostgresStore, pg_conninfo: str, receiver: support.Receiver
) -> None:
    """The asyncio face: an emit through the host's psycopg AsyncConnection wakes an async
    worker polling hourly when the host commits, not before."""
    import psycopg

    from resthooks.aio import AsyncDispatcher

    dispatcher = support.make_dispatcher(pg_store, clock=SystemClock())
    hooks = AsyncDispatcher(dispatcher)
    dispatcher.subscribe("party/created", receiver.url(), owner="acme")
    delivered = _delivered_event(dispatcher)

    async def main() -> tuple[str, bool, bool]:
        worker = hooks.worker(concurrency=4, poll_interval=HOURLY)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            beat = await asyncio.to_thread(_asleep, worker)
            async with await psycopg.AsyncConnection.connect(pg_conninfo) as conn:
                (made,) = await hooks.emit(
                    "party/created", {"id": 1}, owner="acme", connection=conn
                )
                await asyncio.sleep(1.0)
                early = worker.heartbeat != beat or delivered.is_set()
                await conn.commit()
            woken = await asyncio.to_thread(delivered.wait, WAIT)
        finally:
            stop.set()
            await asyncio.wait_for(task, WAIT)
            await hooks.transport.aclose()
        return made.id, early, woken

    made_id, early, woken = asyncio.run(main())
    assert not early, "woken before the commit"
    assert woken, "the commit did not wake the async worker"
    assert {made_id: 1} == receiver.counts
    assert not [t for t in threading.enumerate() if t.name == "resthooks-listen"]
