"""Operations: stats, redeliver, revive and purge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from resthooks import (
    DeliveryNotFound,
    DeliveryState,
    Dispatcher,
    HookNotFound,
    HookState,
    InvalidStateError,
    ValidationError,
)
from resthooks.retry import RetryPolicy
from resthooks.testing import RecordingTransport


@pytest.fixture(name="dispatcher")
def _both_faces(any_face: Dispatcher) -> Dispatcher:
    """This module's contract tests run against both faces: sync and asyncio."""
    return any_face


OWNER = "acme"
EVENT = "party/created"


@pytest.fixture(name="failing")
def _failing(store, clock):
    """A Dispatcher whose receiver always answers 500 and that gives up after one attempt."""
    return Dispatcher(
        store, clock=clock, transport=RecordingTransport(default=500), retry=RetryPolicy([])
    )


def test_stats_by_owner(dispatcher, clock):
    """stats counts hooks and deliveries by state, per owner or in all, and the oldest open."""
    dispatcher.subscribe(EVENT, "https://example.com/a", owner=OWNER)
    dispatcher.subscribe(EVENT, "https://example.com/b", owner="other")
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.deliver_due()
    clock.advance(10)
    dispatcher.emit(EVENT, {"id": 2}, owner="other")

    mine = dispatcher.stats(owner=OWNER)
    everyone = dispatcher.stats()

    assert (
        mine.hooks["active"],
        mine.deliveries["delivered"],
        mine.deliveries["pending"],
        mine.oldest_pending_at,
    ) == (1, 1, 0, None)
    assert (2, 1, 1, clock.now()) == (
        everyone.hooks["active"],
        everyone.deliveries["delivered"],
        everyone.deliveries["pending"],
        everyone.oldest_pending_at,
    )
    with pytest.raises(ValidationError, match="owner"):
        dispatcher.stats(owner="")


def test_redeliver_a_cancelled_delivery_keeps_its_id(dispatcher, failing, transport, clock):
    """A cancelled delivery of a live hook is queued again and sent with the same webhook-id."""
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    failing.emit(EVENT, {"id": 0}, owner=OWNER)
    clock.advance(1)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    # The older delivery fails for good first: the hook dies and this one is cancelled.
    assert failing.deliver_due(batch_size=1).failed == 1
    dispatcher.store.revive_hook(hook.id, now=clock.now())
    assert dispatcher.get_delivery(delivery.id, owner=OWNER).state == DeliveryState.CANCELLED

    again = dispatcher.redeliver(delivery.id, owner=OWNER)

    assert (delivery.id, DeliveryState.PENDING, 0) == (again.id, again.state, again.attempts)
    assert dispatcher.deliver_due().delivered == 1
    assert [delivery.id] == [r.headers["webhook-id"] for r in transport.requests]


def test_redeliver_a_failed_delivery_after_reviving_its_hook(failing, clock):
    """A failed delivery of a dead hook needs a revive first; then it is sent again."""
    hook = failing.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = failing.emit(EVENT, {"id": 1}, owner=OWNER)
    failing.deliver_due()

    with pytest.raises(InvalidStateError, match="dead"):
        failing.redeliver(delivery.id, owner=OWNER)
    failing.revive(hook.id, owner=OWNER)
    again = failing.redeliver(delivery.id, owner=OWNER)

    assert again.state == DeliveryState.PENDING
    assert len(failing.attempts(delivery.id, owner=OWNER)) == 1  # the log is kept


@pytest.mark.parametrize("state", ["pending", "delivered"])
def test_redeliver_refuses_a_delivery_that_is_not_failed_or_cancelled(dispatcher, state):
    """Only failed or cancelled deliveries can be redelivered; nothing changes otherwise."""
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    if state == "delivered":
        dispatcher.deliver_due()

    with pytest.raises(InvalidStateError, match=state):
        dispatcher.redeliver(delivery.id, owner=OWNER)
    assert state == dispatcher.get_delivery(delivery.id, owner=OWNER).state.value


def test_redeliver_errors_for_unknown_ids_and_removed_hooks(dispatcher):
    """Unknown or foreign deliveries are DeliveryNotFound; a removed hook is HookNotFound."""
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.unsubscribe(hook.id, owner=OWNER)

    with pytest.raises(DeliveryNotFound):
        dispatcher.redeliver("msg_nope", owner=OWNER)
    with pytest.raises(DeliveryNotFound):
        dispatcher.redeliver(delivery.id, owner="someone else")
    with pytest.raises(HookNotFound):
        dispatcher.redeliver(delivery.id, owner=OWNER)
    with pytest.raises(ValidationError, match="delivery_id"):
        dispatcher.redeliver(42, owner=OWNER)


def test_revive_leaves_failed_deliveries_alone_unless_asked(failing, clock):
    """revive makes a dead hook active; its failed deliveries are resent only if asked."""
    hook = failing.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [a] = failing.emit(EVENT, {"id": 1}, owner=OWNER)
    clock.advance(1)
    [b] = failing.emit(EVENT, {"id": 2}, owner=OWNER)
    failing.deliver_due(batch_size=1)
    assert failing.get_hook(hook.id, owner=OWNER).state == HookState.DEAD

    revived = failing.revive(hook.id, owner=OWNER)

    assert (revived.state, revived.dead_reason) == (HookState.ACTIVE, None)
    assert [failing.get_delivery(d.id, owner=OWNER).state.value for d in (a, b)] == [
        "failed",
        "cancelled",
    ]
    with pytest.raises(InvalidStateError, match="not dead"):
        failing.revive(hook.id, owner=OWNER)


def test_revive_with_redeliver_failed_queues_them_again(failing, clock):
    """revive(redeliver_failed=True) queues the failed delivery and those cancelled with it."""
    hook = failing.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [a] = failing.emit(EVENT, {"id": 1}, owner=OWNER)
    clock.advance(1)
    [b] = failing.emit(EVENT, {"id": 2}, owner=OWNER)
    failing.deliver_due(batch_size=1)

    failing.revive(hook.id, owner=OWNER, redeliver_failed=True)

    assert [
        (d.state.value, d.attempts)
        for d in (failing.get_delivery(x.id, owner=OWNER) for x in (a, b))
    ] == [("pending", 0), ("pending", 0)]


def test_revive_unknown_hook(dispatcher):
    """Reviving a hook the owner does not have is HookNotFound."""
    with pytest.raises(HookNotFound):
        dispatcher.revive("hook_nope", owner=OWNER)


def test_purge_keeps_30_days_by_default(dispatcher, transport, clock):
    """purge() deletes final deliveries older than 30 days, never pending ones."""
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [old] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.deliver_due()
    clock.advance(timedelta(days=20))
    [recent] = dispatcher.emit(EVENT, {"id": 2}, owner=OWNER)
    dispatcher.deliver_due()
    clock.advance(timedelta(days=15))
    [pending] = dispatcher.emit(EVENT, {"id": 3}, owner=OWNER)
    clock.advance(timedelta(days=100))

    assert dispatcher.purge(older_than=timedelta(days=120)) == 1
    assert dispatcher.purge() == 1
    with pytest.raises(DeliveryNotFound):
        dispatcher.get_delivery(old.id, owner=OWNER)
    assert [pending.id] == [d.id for d in dispatcher.deliveries(owner=OWNER)]
    assert dispatcher.store.attempts(old.id) == []
    assert dispatcher.purge(older_than=10**9) == 0
    with pytest.raises(DeliveryNotFound):
        dispatcher.get_delivery(recent.id, owner=OWNER)


@pytest.mark.parametrize("value", [-1, timedelta(seconds=-1), float("nan"), "30d", None])
def test_purge_refuses_a_bad_age(dispatcher, value):
    """A negative or non-numeric age is a ValidationError naming older_than."""
    with pytest.raises(ValidationError, match="older_than"):
        dispatcher.purge(older_than=value)
