"""Ordering keys end to end on MemoryStore and SQLiteStore, against a real receiver on
loopback (PostgreSQL: tests/postgres/test_postgres_ordering.py), and their validation."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest

import ordering_support
from resthooks import Dispatcher, Hook, Outcome, OutcomeKind, ValidationError
from resthooks.aio import AsyncDispatcher
from resthooks.stores import MemoryStore, SQLiteStore, Store
from resthooks.testing import FakeClock, HookReceiver, RecordingTransport

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(name="any_store", params=["memory", "sqlite"])
def _any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "o.db")
    yield store
    store.close()


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def test_one_at_a_time_per_key_others_in_parallel(any_store: Store, receiver: HookReceiver) -> None:
    """With a threaded worker, each key goes one delivery at a time, in emit order, while
    other keys and keyless deliveries of the same hook go in parallel."""
    ordering_support.one_at_a_time_with_a_threaded_worker(
        any_store, receiver, seed=random.randrange(2**32)
    )


def test_a_retry_holds_back_only_its_key(any_store: Store, receiver: HookReceiver) -> None:
    """A delivery waiting on a retry holds back the rest of its key, not the hook or host."""
    ordering_support.retry_holds_back_only_its_key(any_store, receiver)


def test_failure_revival_and_410_of_a_key(any_store: Store, receiver: HookReceiver) -> None:
    """Failed for good: the rest of the key is cancelled with the dead hook; a revival with
    redelivery sends the key in emit order; a 410 cancels the rest of the key."""
    ordering_support.failure_removal_and_revival(any_store, receiver)


def test_emit_many_keeps_the_order_of_a_key(any_store: Store) -> None:
    """emit_many takes (event, payload, owner, ordering_key) tuples; within a key, the
    order of the list is the delivery order."""
    clock = FakeClock()
    transport = RecordingTransport()
    dispatcher = Dispatcher(any_store, clock=clock, transport=transport)
    dispatcher.subscribe("party/updated", "https://example.com/h", owner="acme")
    made = dispatcher.emit_many(
        [
            ("party/updated", {"n": 0}, "acme", "party:1"),
            ("party/updated", {"n": 1}, "acme"),
            ("party/updated", {"n": 2}, "acme", "party:1"),
            ("party/updated", {"n": 3}, "acme", None),
        ]
    )
    assert [d.ordering_key for d in made] == ["party:1", None, "party:1", None]
    now = clock.now()
    claimed = any_store.claim_due(now=now, limit=10, lease_until=now + timedelta(minutes=1))
    assert {c.delivery.id for c in claimed} == {made[0].id, made[1].id, made[3].id}, (
        "the second of party:1 waits for the first"
    )


BAD_KEYS = [
    (b"party:1", "must be a string"),
    (11587, "must be a string"),
    ("", "must not be empty"),
    ("x" * 256, "at most 255"),
    ("party\x00", "control characters"),
    ("party\ud800", "lone surrogates"),
]


@pytest.mark.parametrize(("key", "message"), BAD_KEYS)
def test_a_bad_ordering_key_is_refused_naming_the_field(
    any_store: Store, key: object, message: str
) -> None:
    """emit and emit_many refuse a bad ordering key with a ValidationError naming the field,
    and store nothing."""
    dispatcher = Dispatcher(any_store, clock=FakeClock(), transport=RecordingTransport())
    dispatcher.subscribe("party/updated", "https://example.com/h", owner="acme")
    with pytest.raises(ValidationError, match=message) as caught:
        dispatcher.emit("party/updated", {}, owner="acme", ordering_key=key)  # type: ignore[arg-type]
    assert caught.value.field == "ordering_key"
    with pytest.raises(ValidationError, match=r"events\[1\]") as caught:
        dispatcher.emit_many(
            [("party/updated", {}, "acme"), ("party/updated", {}, "acme", key)]  # type: ignore[list-item]
        )
    assert caught.value.field == "ordering_key"
    assert any_store.stats().deliveries["pending"] == 0, "nothing was stored"


@pytest.mark.parametrize(("key", "message"), BAD_KEYS[:3])
def test_the_async_face_refuses_a_bad_ordering_key(key: object, message: str) -> None:
    """AsyncDispatcher.emit validates the ordering key as emit does, and passes a good one."""
    hooks = AsyncDispatcher(
        Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
    )

    async def main() -> list[str | None]:
        await hooks.subscribe("party/updated", "https://example.com/h", owner="acme")
        with pytest.raises(ValidationError, match=message) as caught:
            await hooks.emit("party/updated", {}, owner="acme", ordering_key=key)  # type: ignore[arg-type]
        assert caught.value.field == "ordering_key"
        made = await hooks.emit("party/updated", {}, owner="acme", ordering_key="party:1")
        return [d.ordering_key for d in made]

    assert asyncio.run(main()) == ["party:1"]


# -- the cost of keys in SQLite: indexes, and claims that stay flat ----------------------------


def _hook(n: int, host: str) -> Hook:
    return Hook(
        id=f"hook_{n}",
        owner="acme",
        event="party/updated",
        target_url=f"https://{host}/{n}",
        created_at=T0 + timedelta(seconds=n),
        updated_at=T0 + timedelta(seconds=n),
    )


def _sqlite_statements(store: SQLiteStore, call: Callable[[], object]) -> list[str]:
    seen: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    return [s for s in seen if "deliveries" in s and not s.startswith(("BEGIN", "COMMIT"))]


def test_keyed_statements_use_the_index_of_turns(tmp_path: Path) -> None:
    """The fan-out of a keyed emit, the hand-over of a turn and a keyed redelivery reach the
    deliveries through indexes (the index of turns for the key's deliveries), never a scan."""
    store = SQLiteStore(tmp_path / "plans.db")
    store.add_hook(_hook(1, "a.example.com"), max_per_owner=None)
    conn = store._conn()
    for i in range(300):
        store.enqueue(
            owner="acme",
            event="party/updated",
            body=b"{}",
            now=T0 + timedelta(seconds=i),
            ordering_key=f"party:{i % 3}",
        )
    now, lease = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    statements = _sqlite_statements(
        store,
        lambda: store.enqueue(
            owner="acme", event="party/updated", body=b"{}", now=now, ordering_key="party:1"
        ),
    )
    claims = store.claim_due(now=now, limit=10, lease_until=lease)
    assert len(claims) == 3, "one per key"
    first = claims[0]
    statements += _sqlite_statements(
        store,
        lambda: store.record(
            [Outcome(delivery_id=first.delivery.id, token=first.token, kind=OutcomeKind.DELIVERED)],
            now=now,
        ),
    )
    statements += _sqlite_statements(store, lambda: store.requeue(first.delivery.id, now=now))
    uses_turns = 0
    for sql in statements:
        steps = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        scans = [s for s in steps if s.startswith("SCAN") and s not in ("SCAN h", "SCAN hooks")]
        assert scans == [], (sql, steps)
        uses_turns += any("resthooks_deliveries_turns" in s for s in steps)
    assert uses_turns >= 3, statements  # the fan-out, the hand-over, the redelivery
    store.close()


def _vm_steps(store: SQLiteStore, call: Callable[[], object]) -> int:
    """SQLite virtual machine instructions (in hundreds) that ``call`` runs: the work of
    its statements, whatever the machine's load."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn = store._conn()
    conn.set_progress_handler(count, 100)
    try:
        call()
    finally:
        conn.set_progress_handler(None, 0)
    return steps


@pytest.mark.parametrize("per_host", [None, 2])
def test_claims_stay_flat_behind_a_long_key(tmp_path: Path, per_host: int | None) -> None:
    """A claim costs the same whether 10 or 5,000 deliveries wait behind their key's turn:
    waiting deliveries are past the end of every index range a claim reads (with and
    without the per-host limit, the fallback path of a saturated host included)."""
    costs = []
    now = T0 + timedelta(hours=1)
    lease = now + timedelta(hours=1)
    for waiting in (10, 5_000):
        store = SQLiteStore(tmp_path / f"flat{waiting}.db")
        store.add_hook(_hook(1, "busy.example.com"), max_per_owner=None)
        store.add_hook(
            attrs.evolve(_hook(2, "idle.example.com"), event="party/created"), max_per_owner=None
        )
        store.enqueue_many(
            [("acme", "party/created", b"{}")] * (waiting + 1),
            now=T0,
            ordering_keys=["party:1"] * (waiting + 1),
        )
        # A saturated host's keyless backlog fills the front of the due queue.
        store.enqueue_many([("acme", "party/updated", b"{}")] * 300, now=T0)
        store.claim_due(now=now, limit=2, lease_until=lease, max_in_flight_per_host=per_host)
        costs.append(
            _vm_steps(
                store,
                lambda s=store: s.claim_due(
                    now=now, limit=10, lease_until=lease, max_in_flight_per_host=per_host
                ),
            )
        )
        store.close()
    small, large = costs
    print(f"claim work with 10 / 5,000 waiting: {costs} hundred steps")
    assert large <= 2 * small + 5, f"claim work with 10 / 5,000 waiting: {costs} hundred steps"


def test_keyed_emits_through_the_hosts_sqlite_connection(tmp_path: Path) -> None:
    """The transactional outbox on SQLite with ordering keys: the key's deliveries written
    in the host's transactions keep commit order; a rolled-back one takes no place."""
    db = tmp_path / "outbox.db"
    store = SQLiteStore(db)
    transport = RecordingTransport()
    dispatcher = Dispatcher(store, clock=FakeClock(), transport=transport)
    dispatcher.subscribe("party/updated", "https://example.com/h", owner="acme")
    host = sqlite3.connect(db, isolation_level=None)
    made = []
    for n, keep in ((0, True), (-1, False), (1, True), (2, True)):
        host.execute("BEGIN IMMEDIATE")
        (d,) = dispatcher.emit(
            "party/updated", {"n": n}, owner="acme", connection=host, ordering_key="party:1"
        )
        host.execute("COMMIT" if keep else "ROLLBACK")
        if keep:
            made.append(d.id)
    host.close()
    waiting = [store.get_delivery(i) for i in made]
    assert [d.next_attempt_at is None for d in waiting if d] == [False, True, True], (
        "the first has the key's turn, the others wait"
    )
    assert dispatcher.deliver_due(batch_size=10).delivered == 3
    assert [b'{"event":"party/updated","payload":[{"n":%d}]}' % n for n in (0, 1, 2)] == [
        r.body for r in transport.requests
    ]
    store.close()
