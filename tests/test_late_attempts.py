"""Attempts whose delivery is cancelled while they are in flight are still logged.

One ``deliver_due`` batch sends two deliveries of one hook, one after the other, and records
both outcomes together: the first answers ``410 Gone``, which removes the hook and cancels
the second while it is in flight. The receiver did get the second request, so its attempt is
logged, counted as ``late`` (not ``stale``) and reported with ``AttemptFinished``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from resthooks import DeliveryState, Dispatcher
from resthooks.lifecycle import (
    AttemptFinished,
    DeliveryCancelled,
    DeliveryDelivered,
    HookGone,
    LifecycleEvent,
)
from resthooks.model import OutcomeKind
from resthooks.stores import MemoryStore, SQLiteStore, Store
from resthooks.testing import FakeClock, RecordingTransport

MakeDispatcher = Callable[..., Dispatcher]


@pytest.fixture(name="store", params=["memory", "sqlite"])
def _store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "late.db")


def test_attempt_cancelled_in_flight_by_410_is_logged(
    httpserver: HTTPServer, make_loopback_dispatcher: MakeDispatcher, store: Store
) -> None:
    """The second attempt of a batch whose first got 410 is logged and counted as late."""
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("", status=410)
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("ok", status=200)
    clock = FakeClock()
    dispatcher = make_loopback_dispatcher(store=store, clock=clock)
    events: list[LifecycleEvent] = []
    dispatcher.add_listener(events.append)
    hook = dispatcher.subscribe("party/created", httpserver.url_for("/hook"), owner="acme")
    [first] = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    clock.advance(1)  # the first is the older: sent first
    [second] = dispatcher.emit("party/created", {"id": 2}, owner="acme")

    summary = dispatcher.deliver_due()

    httpserver.check_assertions()
    assert (summary.gone, summary.cancelled, summary.late, summary.stale) == (1, 1, 1, 0)
    assert summary.delivered == 0, "a late 200 does not make the delivery delivered"
    assert summary.attempts == 2
    for delivery, status in ((first, 410), (second, 200)):
        got = store.get_delivery(delivery.id)
        assert got is not None
        assert got.state is DeliveryState.CANCELLED
        assert got.attempts == 1
        assert [a.status for a in store.attempts(delivery.id)] == [status]
    late = [e for e in events if isinstance(e, AttemptFinished) and e.delivery_id == second.id]
    assert len(late) == 1
    assert (late[0].outcome, late[0].applied, late[0].attempt.status) == (
        OutcomeKind.DELIVERED,
        False,
        200,
    )
    assert late[0].hook.id == hook.id
    assert not any(isinstance(e, DeliveryDelivered) for e in events), "nothing was delivered"
    cancelled = [e.delivery_id for e in events if isinstance(e, DeliveryCancelled)]
    assert sorted(cancelled) == sorted([first.id, second.id]), "each cancelled once"
    assert sum(isinstance(e, HookGone) for e in events) == 1


def test_late_attempt_is_logged_on_the_resthooks_logger(
    caplog: pytest.LogCaptureFixture, store: Store
) -> None:
    """The log says the attempt was logged though its delivery had been cancelled."""
    clock = FakeClock()
    dispatcher = Dispatcher(store, clock=clock, transport=RecordingTransport(script=[410, 204]))
    dispatcher.subscribe("party/created", "https://example.com/hook", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    clock.advance(1)  # the first is the older: sent first
    [second] = dispatcher.emit("party/created", {"id": 2}, owner="acme")
    with caplog.at_level("INFO", logger="resthooks"):
        summary = dispatcher.deliver_due()
    assert (summary.late, summary.stale) == (1, 0)
    messages = [r.getMessage() for r in caplog.records if second.id in r.getMessage()]
    assert any("was cancelled while it was in flight" in m for m in messages), messages
    assert not any("another worker claimed it" in m for m in messages)
