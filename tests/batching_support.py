"""Scenarios of batched hooks against a real receiver, shared by the tests of every store.

Each takes a store (empty) and a started :class:`HookReceiver`; the test modules of the
memory, SQLite and PostgreSQL stores call them. Entities are ``{"n": ...}`` (and ``"key"``
for the ordering scenarios), ``n`` counting up in emit order.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

from resthooks import Batching, Dispatcher, RetryPolicy, SystemClock
from resthooks.stores import Store
from resthooks.testing import LOOPBACK_POLICY, Answer, FakeClock, HookReceiver

EVENT = "task/created"
OWNER = "acme"


def _drain(dispatcher: Dispatcher) -> None:
    while dispatcher.deliver_due().attempts:
        pass


def one_post_one_webhook_id(store: Store, receiver: HookReceiver) -> None:
    """The emits within the window arrive as one signed POST whose payload holds their
    entities in emit order, under the webhook-id every emit returned; a hook that does not
    batch gets one POST per emit, Capsule's shape."""
    clock = FakeClock()
    dispatcher = Dispatcher(store, clock=clock, network_policy=LOOPBACK_POLICY)
    receiver.subscribe(
        dispatcher, EVENT, owner=OWNER, path="/batched", batching=Batching(max_wait=5)
    )
    receiver.subscribe(dispatcher, EVENT, owner=OWNER, path="/plain")
    ids = set()
    for _n, payload in enumerate(([{"n": 0}], [{"n": 1}, {"n": 2}], {"n": 3})):
        made = dispatcher.emit(EVENT, payload, owner=OWNER)
        ids.add(next(d.id for d in made if d.hook_id != _plain_hook(dispatcher)))
        clock.advance(1)
    assert len(ids) == 1, f"every emit returns the one batch: {ids}"
    _drain(dispatcher)
    assert [d.path for d in receiver.deliveries] == ["/plain"] * 3, "the batch is not due yet"
    assert [d.payload for d in receiver.deliveries] == [
        [{"n": 0}],
        [{"n": 1}, {"n": 2}],
        [{"n": 3}],
    ]
    clock.advance(2)  # 5 s after the first emit
    _drain(dispatcher)
    (batch,) = receiver.received(path="/batched")
    assert batch.json == {"event": EVENT, "payload": [{"n": n} for n in range(4)]}
    assert batch.webhook_id == ids.pop()
    assert batch.verified is True, "a batch is signed like any delivery"
    assert batch.headers["content-type"] == "application/json"


def _plain_hook(dispatcher: Dispatcher) -> str:
    (plain,) = [h for h in dispatcher.hooks(owner=OWNER) if h.batching is None]
    return plain.id


def retried_as_a_whole(store: Store, receiver: HookReceiver) -> None:
    """A batch that fails is retried whole: the same body and webhook-id on each attempt,
    one attempt log; what is emitted meanwhile goes into a new batch."""
    clock = FakeClock()
    dispatcher = Dispatcher(store, clock=clock, network_policy=LOOPBACK_POLICY)
    receiver.subscribe(dispatcher, EVENT, owner=OWNER, batching=Batching(max_wait=1))
    receiver.answer(503, 503, 204)
    (first,) = dispatcher.emit(EVENT, [{"n": 0}, {"n": 1}], owner=OWNER)
    clock.advance(1)
    assert dispatcher.deliver_due().retried == 1
    (second,) = dispatcher.emit(EVENT, {"n": 2}, owner=OWNER)
    assert second.id != first.id, "a batch in its retries takes no more entities"
    clock.advance(1)
    _drain(dispatcher)  # the new batch: 503 again, then retried too
    clock.advance(5)
    _drain(dispatcher)
    by_id = defaultdict(list)
    for d in receiver.deliveries:
        by_id[d.webhook_id].append(d.body)
    assert set(by_id) == {first.id, second.id}
    assert len(set(by_id[first.id])) == 1, "each attempt of a batch carries the same body"
    assert len(by_id[first.id]) == 2
    assert len(by_id[second.id]) == 2
    attempts = dispatcher.attempts(first.id, owner=OWNER)
    assert [(a.number, a.status) for a in attempts] == [(1, 503), (2, 204)]
    assert store.stats().deliveries["delivered"] == 2


def limits(store: Store, receiver: HookReceiver) -> None:
    """max_entities and max_bytes seal a batch (sent at once, the next emit opens another);
    max_wait sends the last one."""
    clock = FakeClock()
    dispatcher = Dispatcher(store, clock=clock, network_policy=LOOPBACK_POLICY)
    receiver.subscribe(
        dispatcher,
        EVENT,
        owner=OWNER,
        path="/few",
        batching=Batching(max_wait=30, max_entities=3),
    )
    # About 40 bytes of JSON per entity below; room for two.
    receiver.subscribe(
        dispatcher,
        EVENT,
        owner=OWNER,
        path="/small",
        batching=Batching(max_wait=30, max_bytes=140),
    )
    for n in range(7):
        dispatcher.emit(EVENT, {"n": n, "pad": "x" * 20}, owner=OWNER)
    _drain(dispatcher)
    # Batches without ordering keys due at one moment go in any order (as deliveries do).
    few = sorted([e["n"] for e in d.payload] for d in receiver.received(path="/few"))
    small = sorted([e["n"] for e in d.payload] for d in receiver.received(path="/small"))
    assert few == [[0, 1, 2], [3, 4, 5]], f"full batches go at once: {few}"
    assert small == [[0, 1], [2, 3], [4, 5]], f"a batch the next emit overflows goes: {small}"
    assert all(len(d.body) <= 140 for d in receiver.received(path="/small"))
    clock.advance(29)
    _drain(dispatcher)
    assert len(receiver.deliveries) == 5, "the open batches wait for max_wait"
    clock.advance(1)
    _drain(dispatcher)
    last = sorted([e["n"] for e in d.payload] for d in receiver.deliveries[5:])
    assert last == [[6], [6]]


def ordering_keys_kept(store: Store, receiver: HookReceiver, *, seed: int) -> None:
    """Keyed emits to a batched hook, interleaved over keys, with a threaded worker and a
    receiver that fails now and then: each key's entities arrive in emit order, counted over
    every batch (a retried batch comes again before anything later)."""
    print(f"seed={seed}")
    rng = random.Random(seed)
    dispatcher = Dispatcher(
        store,
        clock=SystemClock(),
        network_policy=LOOPBACK_POLICY,
        max_in_flight_per_host=None,
        retry=RetryPolicy(delays=[0.05] * 8),
    )
    receiver.subscribe(
        dispatcher,
        EVENT,
        owner=OWNER,
        batching=Batching(max_wait=0.02, max_entities=4),
    )
    receiver.answer(
        *[Answer(status=rng.choice([204, 204, 204, 500]), delay=0.005) for _ in range(200)]
    )
    keys = ["party:1", "party:2", "party:3", None]
    emitted: dict[str | None, list[int]] = defaultdict(list)
    worker = dispatcher.worker(workers=8, poll_interval=0.01)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        for _ in range(60):
            key = rng.choice(keys)
            n = len(emitted[key])
            emitted[key].append(n)
            dispatcher.emit(EVENT, {"key": key, "n": n}, owner=OWNER, ordering_key=key)
            time.sleep(rng.choice([0, 0, 0.003]))
        deadline = time.monotonic() + 30
        while store.stats().deliveries["pending"] + store.stats().deliveries["in_flight"]:
            assert time.monotonic() < deadline, "the batches were not all delivered in 30 s"
            time.sleep(0.02)
    finally:
        worker.stop()
        runner.join(10)
    arrived: dict[str | None, list[int]] = defaultdict(list)
    seen: set[str | None] = set()
    last_keyed: str | None = None
    for d in receiver.deliveries:
        keyed = any(e["key"] is not None for e in d.payload)
        if d.webhook_id in seen:
            # A keyed batch comes again (its retry) before any later keyed batch.
            assert not keyed or d.webhook_id == last_keyed, (
                f"a later keyed batch went before the retry of {d.webhook_id}"
            )
            continue
        seen.add(d.webhook_id)
        if keyed:
            assert all(e["key"] is not None for e in d.payload), "keyed emits batch apart"
            last_keyed = d.webhook_id
        for entity in d.payload:
            arrived[entity["key"]].append(entity["n"])
    for key, ns in emitted.items():
        got = arrived[key]
        if key is None:
            assert sorted(got) == ns, f"without a key: {got} arrived, {ns} emitted"
        else:
            assert got == ns, f"key {key!r}: {got} arrived, {ns} emitted (in emit order)"
    assert store.stats().deliveries["failed"] == 0
