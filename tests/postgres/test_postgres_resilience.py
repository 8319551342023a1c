"""PostgreSQL: damaged rows are quarantined, the worker keeps going."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql
from support import make_dispatcher

from resthooks import DamagedRowError, SystemClock
from resthooks.lifecycle import DeliveryDelivered, DeliveryQuarantined
from resthooks.testing import FakeClock, RecordingTransport

OWNER = "acme"
EVENT = "party/created"


def damage(store, conninfo, statement, *params):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(s=sql.Identifier(store.schema)), params)


def test_a_time_past_year_9999_is_quarantined_and_the_rest_delivered(
    pg_store, pg_conninfo, receiver
):
    """PostgreSQL holds timestamps Python cannot: such a row is moved aside at its first
    claim, reported once, and the 19 others go out."""
    dispatcher = make_dispatcher(pg_store, clock=SystemClock())
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    deliveries = [dispatcher.emit(EVENT, {"id": i}, owner=OWNER)[0] for i in range(20)]
    damage(
        pg_store,
        pg_conninfo,
        "UPDATE {s}.deliveries SET next_attempt_at = 'infinity' WHERE id = %s",
        deliveries[7].id,
    )
    events: list[object] = []
    dispatcher.add_listener(events.append)
    stop = threading.Event()
    dispatcher.add_listener(
        lambda e: (
            stop.set() if sum(isinstance(x, DeliveryDelivered) for x in events) >= 19 else None
        )
    )
    thread = threading.Thread(target=dispatcher.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()

    [quarantined] = [e for e in events if isinstance(e, DeliveryQuarantined)]
    assert quarantined.delivery_id == deliveries[7].id
    assert "datetime" in quarantined.reason
    stats = pg_store.stats()
    assert stats.quarantined == 1
    assert stats.deliveries["delivered"] == 19
    assert stats.deliveries["in_flight"] == 0
    assert stats.deliveries["pending"] == 0


def test_an_unreadable_due_time_does_not_break_next_due_at(pg_store, pg_conninfo):
    """next_due_at() (the idle sleep) meets due_at = infinity: quarantined, not raised."""
    dispatcher = make_dispatcher(pg_store, clock=FakeClock(), transport=RecordingTransport())
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [bad] = dispatcher.emit(EVENT, {"id": 0}, owner=OWNER)
    damage(pg_store, pg_conninfo, "UPDATE {s}.deliveries SET due_at = 'infinity'")

    assert pg_store.next_due_at() is None
    [entry] = pg_store.take_quarantined()
    assert entry.delivery_id == bad.id
    assert pg_store.stats().quarantined == 1


def test_a_delivery_without_its_hook_is_quarantined(pg_store, pg_conninfo):
    """A due delivery whose hook row is gone is moved aside instead of being claimed (and
    lost to the JOIN) at every lease expiry."""
    dispatcher = make_dispatcher(pg_store, clock=FakeClock(), transport=RecordingTransport())
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [orphan] = dispatcher.emit(EVENT, {"id": 0}, owner=OWNER)
    damage(pg_store, pg_conninfo, "DELETE FROM {s}.hooks WHERE id = %s", hook.id)
    damage(pg_store, pg_conninfo, "UPDATE {s}.deliveries SET state = 'exploded'")

    with pytest.raises(DamagedRowError) as info:
        dispatcher.get_delivery(orphan.id, owner=OWNER)
    assert info.value.table == "deliveries"
    assert dispatcher.deliver_due().attempts == 0
    assert pg_store.stats().quarantined == 1
    assert pg_store.get_delivery(orphan.id) is None


def test_check_finds_broken_invariants_on_postgres(pg_store, pg_conninfo):
    """check() on a healthy store finds nothing; a pending delivery without a due time and a
    quarantined row are each named."""
    dispatcher = make_dispatcher(pg_store, clock=FakeClock(), transport=RecordingTransport())
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    first, second = (dispatcher.emit(EVENT, {"id": i}, owner=OWNER)[0] for i in range(2))
    assert pg_store.check() == []

    damage(pg_store, pg_conninfo, "UPDATE {s}.deliveries SET due_at = NULL WHERE id = %s", first.id)
    damage(pg_store, pg_conninfo, "UPDATE {s}.hooks SET state = 'dead' WHERE id = %s", hook.id)
    damage(
        pg_store,
        pg_conninfo,
        "UPDATE {s}.deliveries SET next_attempt_at = 'infinity', due_at = 'infinity' WHERE id = %s",
        second.id,
    )
    pg_store.next_due_at()  # quarantines the second

    kinds = {p.kind for p in pg_store.check()}
    assert {"pending_without_due_time", "quarantined"} <= kinds
