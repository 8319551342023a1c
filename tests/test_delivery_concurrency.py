"""Emitting from several threads while deliveries are being sent."""

from __future__ import annotations

import threading
from collections import Counter

from resthooks import DeliveryState, Dispatcher
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport

URL = "https://receiver.example/hooks"


def test_emitting_while_delivering_loses_nothing_and_sends_nothing_twice() -> None:
    """Four threads emit while a fifth runs deliver_due in a loop: every emitted delivery
    ends delivered, and each was sent exactly once."""
    transport = RecordingTransport(default=204)
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=transport)
    for n in range(3):
        dispatcher.subscribe("party/created", f"{URL}/{n}", owner="acme")
    emitted: list[str] = []
    emitted_lock = threading.Lock()
    start = threading.Barrier(5)
    emitting_done = threading.Event()
    delivered_while_emitting = 0

    def emitter(worker: int) -> None:
        start.wait()
        for i in range(200):
            ids = [
                d.id for d in dispatcher.emit("party/created", {"w": worker, "i": i}, owner="acme")
            ]
            with emitted_lock:
                emitted.extend(ids)

    def deliverer() -> None:
        nonlocal delivered_while_emitting
        start.wait()
        while not emitting_done.is_set():
            delivered_while_emitting += dispatcher.deliver_due(batch_size=7).delivered

    threads = [threading.Thread(target=emitter, args=(w,)) for w in range(4)]
    delivering = threading.Thread(target=deliverer)
    for thread in [*threads, delivering]:
        thread.start()
    for thread in threads:
        thread.join()
    emitting_done.set()
    delivering.join()
    final = dispatcher.deliver_due()

    assert len(emitted) == 4 * 200 * 3
    sent = Counter(r.headers["webhook-id"] for r in transport.requests)
    assert set(sent) == set(emitted)
    assert max(sent.values()) == 1
    assert delivered_while_emitting + final.delivered == len(emitted)
    states = Counter(d.state for d in dispatcher.deliveries(owner="acme", limit=10_000))
    assert states == {DeliveryState.DELIVERED: len(emitted)}
