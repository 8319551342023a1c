"""Ordering keys end to end on MemoryStore and SQLiteStore, against a real receiver on
loopback (PostgreSQL: tests/postgres/test_postgres_ordering.py), and their validation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import ordering_support
from resthooks import Dispatcher, ValidationError
from resthooks.aio import AsyncDispatcher
from resthooks.stores import MemoryStore, SQLiteStore, Store
from resthooks.testing import FakeClock, HookReceiver, RecordingTransport


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
