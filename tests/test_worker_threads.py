"""The thread worker's structure: each thread claims, sends and records its own work."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from resthooks import DeliveryState, Timeouts
from resthooks.lifecycle import AttemptFinished
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY, HookReceiver
from resthooks.transports import Request, Response, Urllib3Transport

OWNER = "acme"
EVENT = "party/created"


class WatchedTransport(Urllib3Transport):
    """The real transport, noting which thread sends and how many sends overlap."""

    def __init__(self) -> None:
        super().__init__(policy=LOOPBACK_POLICY)
        self.lock = threading.Lock()
        self.senders: set[int] = set()
        self.sending = 0
        self.peak = 0

    def send(self, request: Request) -> Response:
        with self.lock:
            self.senders.add(threading.get_ident())
            self.sending += 1
            self.peak = max(self.peak, self.sending)
        try:
            return super().send(request)
        finally:
            with self.lock:
                self.sending -= 1


class CountingStore(MemoryStore):
    """A MemoryStore that notes which thread claims and records, and how many at once."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[tuple[int, int]] = []  # (thread, claims returned)
        self.records: list[tuple[int, int]] = []  # (thread, outcomes recorded)

    def claim_due(self, **kwargs):  # type: ignore[no-untyped-def]
        claims = super().claim_due(**kwargs)
        self.claims.append((threading.get_ident(), len(claims)))
        return claims

    def record(self, outcomes, **kwargs):  # type: ignore[no-untyped-def]
        self.records.append((threading.get_ident(), len(outcomes)))
        return super().record(outcomes, **kwargs)


@pytest.fixture(name="receivers")
def _receivers() -> Iterator[list[HookReceiver]]:
    """Eight receivers, each on a loopback address of its own: eight target hosts."""
    servers = [HookReceiver(host=f"127.0.0.{n}").start() for n in range(2, 10)]
    yield servers
    for server in servers:
        server.close()


def test_n_threads_send_at_most_n_attempts_at_once(make_loopback_dispatcher, receivers):
    """With 4 threads and 8 hosts with room, exactly 4 attempts are in flight at the peak,
    each on a thread of its own, and every delivery goes out once."""
    transport = WatchedTransport()
    dispatcher = make_loopback_dispatcher(transport=transport)
    for receiver in receivers:
        for n in range(3):
            dispatcher.subscribe(EVENT, receiver.url(f"/h{n}"), owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    for receiver in receivers:
        receiver.hold()
    result: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: result.update(summary=dispatcher.run_until_idle(workers=4)), daemon=True
    )
    thread.start()
    try:
        # Every thread is blocked on a held receiver once four requests have arrived.
        while sum(len(r.deliveries) for r in receivers) < 4 and thread.is_alive():
            threading.Event().wait(0.01)
    finally:
        for receiver in receivers:
            receiver.release()
    thread.join(60)
    assert not thread.is_alive()
    assert result["summary"].delivered == 24  # type: ignore[attr-defined]
    assert transport.peak == 4
    assert len(transport.senders) == 4
    assert threading.get_ident() not in transport.senders
    assert sorted(n for r in receivers for n in r.webhook_ids().values()) == [1] * 24


def test_one_thread_claims_sends_and_records_its_own_work_in_batches(
    make_loopback_dispatcher, receivers
):
    """With one thread, the thread that sends is the one that records every outcome and
    claims every batch after the first (no hand-off), two outcomes to a record call."""
    store = CountingStore()
    transport = WatchedTransport()
    dispatcher = make_loopback_dispatcher(store=store, transport=transport)
    for receiver in receivers:
        for n in range(5):
            dispatcher.subscribe(EVENT, receiver.url(f"/h{n}"), owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    listened: set[int] = set()
    dispatcher.add_listener(
        lambda e: listened.add(threading.get_ident()) if isinstance(e, AttemptFinished) else None
    )

    summary = dispatcher.run_until_idle(workers=1)

    assert summary.delivered == 40
    [sender] = transport.senders
    assert sender != threading.get_ident()
    assert {sender} == listened
    assert {sender} == {thread for thread, n in store.records if n}
    assert [n for _, n in store.records if n] == [2] * 20
    claimed = [(thread, n) for thread, n in store.claims if n]
    assert [sender] * (len(claimed) - 1) == [thread for thread, _ in claimed[1:]]
    assert all(n <= 2 for _, n in claimed), "one thread holds at most two claims"


def test_a_black_hole_host_holds_at_most_its_limit(make_loopback_dispatcher, receiver, black_hole):
    """A host that never answers has at most ``in_flight_per_host`` deliveries claimed and
    one attempt (one thread) at a time, while the other host's deliveries all go through."""
    dispatcher = make_loopback_dispatcher(
        timeouts=Timeouts(connect=0.5, total=0.5), max_in_flight_per_host=2
    )
    holes = {
        dispatcher.subscribe(EVENT, black_hole.url(f"/b{n}"), owner=OWNER).id for n in range(3)
    }
    for n in range(20):
        dispatcher.subscribe(EVENT, receiver.url(f"/h{n}"), owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    held: list[int] = []

    def look(event: object) -> None:
        if isinstance(event, AttemptFinished) and event.attempt.status == 204:
            in_flight = dispatcher.deliveries(owner=OWNER, state=DeliveryState.IN_FLIGHT)
            held.append(sum(1 for d in in_flight if d.hook_id in holes))

    dispatcher.add_listener(look)

    summary = dispatcher.run_until_idle(workers=8)

    assert (summary.delivered, summary.retried) == (20, 3)
    assert len(held) == 20
    assert max(held) == 2, "the black hole held its limit of claims, never more"
    attempts = [
        a
        for d in dispatcher.deliveries(owner=OWNER)
        if d.hook_id in holes
        for a in dispatcher.attempts(d.id, owner=OWNER)
    ]
    assert [a.error_kind for a in attempts] == ["timeout"] * 3
    starts = sorted(a.started_at for a in attempts)
    ends = sorted(a.started_at.timestamp() + a.duration for a in attempts)
    assert all(e <= s.timestamp() for e, s in zip(ends, starts[1:], strict=False)), (
        "one attempt to the black hole at a time"
    )
