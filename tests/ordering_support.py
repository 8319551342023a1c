"""Scenarios of ordering keys against a real receiver, shared by the tests of every store.

Each takes a store (empty) and a started :class:`HookReceiver`; the test modules of the
memory, SQLite and PostgreSQL stores call them. Deliveries carry ``{"key": ..., "n": ...}``
entities: ``n`` counts up in emit order within a key.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from resthooks import Dispatcher, Hook, SystemClock
from resthooks.stores import Store
from resthooks.testing import LOOPBACK_POLICY, Answer, FakeClock, HookReceiver, ReceivedDelivery

EVENT = "party/updated"
OWNER = "acme"


def emit_interleaved(
    dispatcher: Dispatcher, keys: Sequence[str], per_key: int, *, keyless: int = 0, seed: int
) -> dict[str | None, list[int]]:
    """Emit ``per_key`` events for each key (and ``keyless`` without a key), interleaved in
    a random order (seeded); return, per key, the ``n`` emitted in order."""
    plan: list[str | None] = [k for k in keys for _ in range(per_key)] + [None] * keyless
    random.Random(seed).shuffle(plan)
    emitted: dict[str | None, list[int]] = defaultdict(list)
    for key in plan:
        n = len(emitted[key])
        emitted[key].append(n)
        dispatcher.emit(EVENT, {"key": key, "n": n}, owner=OWNER, ordering_key=key)
    return dict(emitted)


def arrivals_by_key(received: Iterable[ReceivedDelivery]) -> dict[str | None, list[int]]:
    """``n`` of every request received (repeats included), per key, in arrival order."""
    found: dict[str | None, list[int]] = defaultdict(list)
    for delivery in received:
        (entity,) = delivery.payload
        found[entity["key"]].append(entity["n"])
    return dict(found)


def assert_in_emit_order(
    received: Sequence[ReceivedDelivery], emitted: dict[str | None, list[int]]
) -> None:
    """Every key's requests arrived in emit order (a repeat, after a lost answer, comes
    before anything later of its key), and everything emitted arrived."""
    arrived = arrivals_by_key(received)
    for key, ns in emitted.items():
        got = arrived.get(key, [])
        assert sorted(set(got)) == ns, f"key {key!r}: {got} arrived, {ns} emitted"
        if key is not None:
            assert got == sorted(got), f"key {key!r} arrived out of emit order: {got}"


def assert_one_at_a_time(received: Sequence[ReceivedDelivery], answer_delay: float) -> None:
    """No two requests of one key overlapped at the receiver: each arrived after the one
    before it was answered (the receiver answers ``answer_delay`` s after arrival)."""
    last: dict[str, ReceivedDelivery] = {}
    for delivery in sorted(received, key=lambda d: d.received_at):
        (entity,) = delivery.payload
        key = entity["key"]
        if key is None:
            continue
        before = last.get(key)
        if before is not None:
            gap = (delivery.received_at - before.received_at).total_seconds()
            assert gap >= answer_delay - 0.002, (
                f"key {key!r}: n={entity['n']} arrived {gap:.3f} s after n="
                f"{before.payload[0]['n']}, before that was answered ({answer_delay} s)"
            )
        last[key] = delivery


def subscribe(dispatcher: Dispatcher, receiver: HookReceiver, *, path: str = "/orders") -> Hook:
    return receiver.subscribe(dispatcher, EVENT, owner=OWNER, path=path)


def one_at_a_time_with_a_threaded_worker(
    store: Store, receiver: HookReceiver, *, seed: int
) -> None:
    """A worker with 8 threads: while the first delivery of each key is held unanswered at
    the receiver, the deliveries without a key all arrive and nothing more of any key; once
    answered, each key goes one at a time, in emit order."""
    print(f"seed={seed}")
    delay = 0.02
    dispatcher = Dispatcher(
        store, clock=SystemClock(), network_policy=LOOPBACK_POLICY, max_in_flight_per_host=None
    )
    subscribe(dispatcher, receiver)
    keys = ["party:1", "party:2", "party:3"]
    receiver.hold()
    emitted = emit_interleaved(dispatcher, keys, 5, keyless=4, seed=seed)
    worker = dispatcher.worker(workers=8, poll_interval=0.05)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        first = receiver.wait_for(len(keys) + 4)
        time.sleep(0.3)  # room for anything that should not come
        held = receiver.deliveries
        assert len(held) == len(keys) + 4, [d.payload for d in held]
        by_key = arrivals_by_key(held)
        assert {k: by_key.get(k) for k in keys} == {k: [0] for k in keys}, (
            "only the first of each key is sent while it is unanswered"
        )
        assert sorted(by_key[None]) == [0, 1, 2, 3], "deliveries without a key all go at once"
        assert first
        receiver.answer(Answer(status=204, delay=delay))
        receiver.release()
        everything = receiver.wait_for(len(keys) * 5 + 4)
    finally:
        worker.stop()
        runner.join(10)
    assert_in_emit_order(everything, emitted)
    assert_one_at_a_time([d for d in everything if d not in held], delay)
    assert store.stats().deliveries["delivered"] == len(keys) * 5 + 4


def retry_holds_back_only_its_key(store: Store, receiver: HookReceiver) -> None:
    """A delivery waiting on its retry holds back the rest of its key, and nothing else:
    the other keys and keyless deliveries of the same hook (same host) go meanwhile."""
    clock = FakeClock()
    dispatcher = Dispatcher(store, clock=clock, network_policy=LOOPBACK_POLICY)
    subscribe(dispatcher, receiver)
    receiver.answer(503, 204)  # the first request fails, every later one succeeds
    dispatcher.emit(EVENT, {"key": "a", "n": 0}, owner=OWNER, ordering_key="a")
    assert dispatcher.deliver_due().retried == 1
    dispatcher.emit(EVENT, {"key": "a", "n": 1}, owner=OWNER, ordering_key="a")
    dispatcher.emit(EVENT, {"key": "b", "n": 0}, owner=OWNER, ordering_key="b")
    dispatcher.emit(EVENT, {"key": None, "n": 0}, owner=OWNER)
    while dispatcher.deliver_due().attempts:
        pass
    assert arrivals_by_key(receiver.deliveries) == {"a": [0], "b": [0], None: [0]}, (
        "the rest of 'a' waits behind its retry; 'b' and the keyless one were sent"
    )
    clock.advance(5)  # the retry is due
    while dispatcher.deliver_due().attempts:
        pass
    assert arrivals_by_key(receiver.deliveries) == {"a": [0, 0, 1], "b": [0], None: [0]}


def failure_removal_and_revival(store: Store, receiver: HookReceiver) -> None:
    """A key's first delivery failing for good kills the hook and cancels the rest of the
    key; reviving it with its deliveries queued again sends the key in emit order; a 410
    removes the hook and cancels the rest of its key."""
    clock = FakeClock()
    dispatcher = Dispatcher(store, clock=clock, network_policy=LOOPBACK_POLICY)
    hook = subscribe(dispatcher, receiver)
    receiver.answer(500)
    for n in range(3):
        dispatcher.emit(EVENT, {"key": "a", "n": n}, owner=OWNER, ordering_key="a")
    for _ in range(10):  # the whole retry schedule of the first: 6 attempts
        dispatcher.deliver_due()
        clock.advance(16 * 60)
    assert arrivals_by_key(receiver.deliveries) == {"a": [0] * 6}, "the rest of 'a' waited"
    states = sorted(d.state.value for d in dispatcher.deliveries(owner=OWNER))
    assert states == ["cancelled", "cancelled", "failed"]
    receiver.clear()
    receiver.answer(204)
    dispatcher.revive(hook.id, owner=OWNER, redeliver_failed=True)
    while dispatcher.deliver_due().attempts:
        pass
    assert arrivals_by_key(receiver.deliveries) == {"a": [0, 1, 2]}, "revived: in emit order"
    receiver.clear()
    receiver.answer(410)
    for n in range(3, 5):
        dispatcher.emit(EVENT, {"key": "a", "n": n}, owner=OWNER, ordering_key="a")
    while dispatcher.deliver_due().attempts:
        pass
    assert arrivals_by_key(receiver.deliveries) == {"a": [3]}, "410: the hook is gone"
    assert store.get_hook(hook.id) is None
    cancelled = [d for d in store.list_deliveries(owner=OWNER) if d.state.value == "cancelled"]
    assert len(cancelled) == 2, "the 410'd one and the rest of its key"


def kill_mid_attempt_then_two_workers(
    dispatcher: Dispatcher,
    receiver: HookReceiver,
    *,
    start_worker: Callable[[], subprocess.Popen[bytes]],
    drained: Callable[[], bool],
    seed: int,
) -> None:
    """A worker process is killed (SIGKILL) while its attempts are held unanswered at the
    receiver; two fresh worker processes then share the outbox. Each key still arrives in
    emit order: a re-claimed first delivery (after its lease ran out) is sent again before
    anything later of its key, and the two processes never send one key twice at once."""
    print(f"seed={seed}")
    delay = 0.02
    subscribe(dispatcher, receiver)
    keys = [f"party:{n}" for n in range(4)]
    receiver.hold()
    emitted = emit_interleaved(dispatcher, keys, 6, seed=seed)
    doomed = start_worker()
    try:
        receiver.wait_for(1, timeout=30)
        time.sleep(0.2)  # let it start what else it can
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
    held = receiver.deliveries
    held_keys = {d.payload[0]["key"] for d in held} - {None}
    assert held_keys, "the killed worker had deliveries of a key in flight"
    receiver.answer(Answer(status=204, delay=delay))
    receiver.release()
    emitted.update(emit_interleaved(dispatcher, [], 0, keyless=4, seed=seed))
    workers = [start_worker(), start_worker()]
    try:
        deadline = time.monotonic() + 120
        while not drained():
            assert time.monotonic() < deadline, "the outbox was not drained"
            assert any(w.poll() in (None, 0) for w in workers), "the workers failed"
            time.sleep(0.1)
    finally:
        stop_workers(workers)
    everything = receiver.deliveries
    assert_in_emit_order(everything, emitted)
    after = [d for d in everything if d not in held]
    assert_one_at_a_time(after, delay)
    resent = arrivals_by_key(after)
    for delivery in held:
        entity = delivery.payload[0]
        if entity["key"] is not None:
            assert resent[entity["key"]][0] == entity["n"], (
                f"the held delivery of {entity['key']!r} is sent again first: "
                f"{resent[entity['key']]}"
            )


def stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
