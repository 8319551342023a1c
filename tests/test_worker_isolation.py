"""Isolation: endpoints that never answer do not delay healthy ones, over real HTTP."""

from __future__ import annotations

import threading
from datetime import timedelta

from resthooks import DeliveryState, Timeouts
from resthooks.lifecycle import DeliveryDelivered
from resthooks.testing import FakeClock, HookReceiver

OWNER = "acme"
EVENT = "party/created"


def _ends(attempt):
    return attempt.started_at + timedelta(seconds=attempt.duration)


def _most_at_once(attempts):
    """The most of ``attempts`` in flight at one moment (by the worker's own clock)."""
    edges = sorted([(a.started_at, 1) for a in attempts] + [(_ends(a), -1) for a in attempts])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_black_holes_do_not_delay_healthy_hooks(make_loopback_dispatcher, receiver, black_hole):
    """30 healthy deliveries are all delivered while the first of 4 black-holed attempts hangs.

    The black hole, a new host that never answers, holds its connection until the 30 are
    recorded (counted by a lifecycle listener, however long that takes), then lets go; a
    worker that waited on it would never record them, and the hole would hold on until the
    test stops waiting (60 s). The deadline of an attempt is longer than that, so nothing here
    depends on how fast the machine is. Slow start keeps the black hole at one attempt in
    flight (the per-host limit of 4 would let it have 4); the healthy host climbs to its 4 by
    slow start: its 30 deliveries take about 9 rounds (1, 2, 3, then 4 at a time).
    """
    dispatcher = make_loopback_dispatcher(timeouts=Timeouts(connect=90, total=90), lease=180)
    holes = [dispatcher.subscribe(EVENT, black_hole.url(f"/b{n}"), owner=OWNER) for n in range(4)]
    healthy = [dispatcher.subscribe(EVENT, receiver.url(f"/h{n}"), owner=OWNER) for n in range(30)]
    delivered: list[object] = []
    all_delivered = threading.Event()

    def count(event: object) -> None:
        if isinstance(event, DeliveryDelivered):
            delivered.append(event)
            if len(delivered) == len(healthy):
                all_delivered.set()

    dispatcher.add_listener(count)
    delivered_while_held: list[int] = []

    def let_go() -> None:
        all_delivered.wait(60)
        delivered_while_held.append(len(delivered))
        black_hole.release()

    releaser = threading.Thread(target=let_go, daemon=True)
    releaser.start()
    deliveries = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    by_hook = {d.hook_id: d for d in deliveries}

    summary = dispatcher.run_until_idle(workers=16)
    releaser.join(5)

    assert delivered_while_held == [30]
    assert (summary.delivered, summary.retried) == (30, 4)
    healthy_attempts = [
        a for h in healthy for a in dispatcher.attempts(by_hook[h.id].id, owner=OWNER)
    ]
    hole_attempts = [a for h in holes for a in dispatcher.attempts(by_hook[h.id].id, owner=OWNER)]
    assert [a.status for a in healthy_attempts] == [204] * 30
    assert [a.error_kind for a in hole_attempts] == ["connection"] * 4
    assert max(_ends(a) for a in healthy_attempts) < min(_ends(a) for a in hole_attempts)
    assert len(receiver.deliveries) == 30
    # One attempt to the black hole at a time: it never answered, so it never earned more.
    assert _most_at_once(hole_attempts) == 1


def test_black_hole_attempts_time_out_one_at_a_time_and_are_penalised(
    make_loopback_dispatcher, black_hole
):
    """4 deliveries to a new host that never answers: each attempt times out, one at a time
    (a timeout earns no more than the one slot slow start gave it, the per-host limit of 4
    would allow 4), and each timeout puts the next try at least 60 s off."""
    dispatcher = make_loopback_dispatcher(timeouts=Timeouts(connect=1, total=1.5))
    holes = [dispatcher.subscribe(EVENT, black_hole.url(f"/b{n}"), owner=OWNER) for n in range(4)]
    deliveries = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    by_hook = {d.hook_id: d for d in deliveries}

    summary = dispatcher.run_until_idle(workers=16)

    assert (summary.delivered, summary.retried) == (0, 4)
    hole_attempts = [a for h in holes for a in dispatcher.attempts(by_hook[h.id].id, owner=OWNER)]
    assert [a.error_kind for a in hole_attempts] == ["timeout"] * 4
    assert _most_at_once(hole_attempts) == 1
    for h in holes:
        delivery = dispatcher.get_delivery(by_hook[h.id].id, owner=OWNER)
        [attempt] = dispatcher.attempts(delivery.id, owner=OWNER)
        assert delivery.state == DeliveryState.PENDING
        assert delivery.next_attempt_at >= _ends(attempt) + timedelta(seconds=60)


def test_a_backlog_of_retries_does_not_starve_first_attempts(make_loopback_dispatcher, receiver):
    """With 20 retries of a failing host due before them, 20 first attempts all go out while
    the failing host holds only its 2 threads (its answers are held back meanwhile)."""
    failing = HookReceiver().start()
    clock = FakeClock()
    try:
        failing.answer(500)
        dispatcher = make_loopback_dispatcher(clock=clock, max_in_flight_per_host=2)
        for n in range(20):
            dispatcher.subscribe(EVENT, failing.url(f"/f{n}"), owner=OWNER)
        dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
        assert dispatcher.run_until_idle(workers=4).retried == 20
        clock.advance(10)  # the 20 retries have been due for 5 s
        for n in range(20):
            dispatcher.subscribe("task/created", receiver.url(f"/g{n}"), owner=OWNER)
        dispatcher.emit("task/created", {"id": 2}, owner=OWNER)
        failing.hold()

        thread = threading.Thread(target=dispatcher.run_until_idle, kwargs={"workers": 4})
        thread.start()
        try:
            receiver.wait_for(20, timeout=30)  # else a first attempt was starved
            failing.wait_for(22, timeout=30)
            assert len(failing.deliveries) == 22  # 20 first attempts, then only 2 retries
        finally:
            failing.release()
            thread.join(30)
        assert len(dispatcher.deliveries(owner=OWNER, state="delivered", limit=100)) == 20
    finally:
        failing.close()
