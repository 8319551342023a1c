"""Batched hooks end to end on MemoryStore and SQLiteStore, against a real receiver on
loopback (PostgreSQL: tests/postgres/test_postgres_batching.py), and their validation."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batching_support
import fuzzing
from resthooks import (
    Batching,
    ConfigurationError,
    Dispatcher,
    Limits,
    ValidationError,
)
from resthooks.aio import AsyncDispatcher
from resthooks.stores import MemoryStore, SQLiteStore, Store
from resthooks.testing import FakeClock, HookReceiver, RecordingTransport


@pytest.fixture(name="any_store", params=["memory", "sqlite"])
def _any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "b.db")
    yield store
    store.close()


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def test_one_post_one_webhook_id(any_store: Store, receiver: HookReceiver) -> None:
    """The emits of a window arrive as one signed POST, entities in emit order, under the
    webhook-id each emit returned; an unbatched hook keeps Capsule's one POST per emit."""
    batching_support.one_post_one_webhook_id(any_store, receiver)


def test_a_batch_is_retried_as_a_whole(any_store: Store, receiver: HookReceiver) -> None:
    """A failed batch is retried with the same body and webhook-id, one attempt log; emits
    meanwhile go into a new batch."""
    batching_support.retried_as_a_whole(any_store, receiver)


def test_max_entities_max_bytes_and_max_wait(any_store: Store, receiver: HookReceiver) -> None:
    """A full batch goes at once, one the next emit overflows too; the last at max_wait."""
    batching_support.limits(any_store, receiver)


def test_ordering_keys_are_kept_across_batches(any_store: Store, receiver: HookReceiver) -> None:
    """A threaded worker, failures now and then: each key's entities arrive in emit order
    over all the batches, a retried keyed batch before any later one."""
    batching_support.ordering_keys_kept(any_store, receiver, seed=random.randrange(2**32))


def test_the_transactional_outbox_joins_a_batch_only_on_commit(tmp_path: Path) -> None:
    """emit(..., connection=) through the host's own SQLite connection: an entity joins the
    open batch only if the host's transaction commits."""
    path = tmp_path / "outbox.db"
    store = SQLiteStore(path)
    clock = FakeClock()
    dispatcher = Dispatcher(store, clock=clock, transport=RecordingTransport())
    dispatcher.subscribe(
        "task/created", "https://example.com/h", owner="acme", batching=Batching(max_wait=5)
    )
    (batch,) = dispatcher.emit("task/created", {"n": 0}, owner="acme")
    host = sqlite3.connect(path, isolation_level=None)
    host.execute("BEGIN IMMEDIATE")
    (joined,) = dispatcher.emit("task/created", {"n": 1}, owner="acme", connection=host)
    assert joined.id == batch.id
    host.execute("ROLLBACK")
    host.execute("BEGIN IMMEDIATE")
    dispatcher.emit("task/created", {"n": 2}, owner="acme", connection=host)
    host.execute("COMMIT")
    host.close()
    clock.advance(5)
    now = clock.now()
    (claim,) = store.claim_due(now=now, limit=5, lease_until=now + timedelta(minutes=1))
    assert claim.body == b'{"event":"task/created","payload":[{"n":0},{"n":2}]}'
    store.close()


def test_a_store_that_does_not_batch_is_refused(receiver: HookReceiver) -> None:
    """Subscribing with batching on a store without a true `batches` attribute is a
    ConfigurationError naming batching, and stores nothing."""

    class Plain(MemoryStore):
        batches = False

    store = Plain()
    dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
    with pytest.raises(ConfigurationError, match=r"^batching: Plain does not batch"):
        dispatcher.subscribe(
            "task/created", "https://example.com/h", owner="acme", batching=Batching()
        )
    assert store.list_hooks() == []


BAD_SETTINGS = [
    ({"max_wait": 0}, "batching.max_wait"),
    ({"max_wait": -1}, "batching.max_wait"),
    ({"max_wait": 3601}, "batching.max_wait"),
    ({"max_wait": float("nan")}, "batching.max_wait"),
    ({"max_wait": "1"}, "batching.max_wait"),
    ({"max_wait": True}, "batching.max_wait"),
    ({"max_wait": timedelta(hours=2)}, "batching.max_wait"),
    ({"max_entities": 0}, "batching.max_entities"),
    ({"max_entities": 10_001}, "batching.max_entities"),
    ({"max_entities": 2.0}, "batching.max_entities"),
    ({"max_bytes": 63}, "batching.max_bytes"),
    ({"max_bytes": 2**64}, "batching.max_bytes"),
    ({"max_bytes": None}, "batching.max_bytes"),
]


@pytest.mark.parametrize(("options", "field"), BAD_SETTINGS)
def test_a_bad_setting_names_its_field(options: dict[str, Any], field: str) -> None:
    """Batching refuses a value out of range or of the wrong type with a ValidationError
    naming the field."""
    with pytest.raises(ValidationError) as caught:
        Batching(**options)
    assert caught.value.field == field


def test_subscribe_refuses_bad_batching_and_stores_nothing(any_store: Store) -> None:
    """subscribe, subscribe_many and the async face refuse a batching that is not a
    Batching, or whose max_bytes is past limits.payload_bytes, naming the field."""
    dispatcher = Dispatcher(
        any_store,
        clock=FakeClock(),
        transport=RecordingTransport(),
        limits=Limits(payload_bytes=1024),
    )
    hooks = AsyncDispatcher(dispatcher)
    too_big = Batching(max_bytes=1025)
    for value, field in (
        ({"max_wait": 1}, "batching"),
        ("yes", "batching"),
        (too_big, "batching.max_bytes"),
    ):
        with pytest.raises(ValidationError) as caught:
            dispatcher.subscribe("task/created", "https://e.example/h", owner="a", batching=value)  # type: ignore[arg-type]
        assert caught.value.field == field
        with pytest.raises(ValidationError) as caught:
            dispatcher.subscribe_many("task/*", "https://e.example/h", owner="a", batching=value)  # type: ignore[arg-type]
        assert caught.value.field == field
        with pytest.raises(ValidationError) as caught:
            asyncio.run(
                hooks.subscribe("task/created", "https://e.example/h", owner="a", batching=value)  # type: ignore[arg-type]
            )
        assert caught.value.field == field
    assert any_store.list_hooks() == []
    hook = asyncio.run(
        hooks.subscribe(
            "task/created", "https://e.example/h", owner="a", batching=Batching(max_bytes=1024)
        )
    )
    assert hook.batching == Batching(max_bytes=1024)


def test_an_existing_subscription_keeps_its_batching(any_store: Store) -> None:
    """Subscribing the same (owner, event, URL) again returns the hook as it was: its
    batching is set once, when it is made."""
    dispatcher = Dispatcher(any_store, clock=FakeClock(), transport=RecordingTransport())
    first = dispatcher.subscribe("task/created", "https://e.example/h", owner="a")
    again = dispatcher.subscribe(
        "task/created", "https://e.example/h", owner="a", batching=Batching()
    )
    assert (first.id, again.batching) == (again.id, None)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    max_wait=st.one_of(st.floats(0.001, 10), fuzzing.anything),
    max_entities=st.one_of(st.integers(1, 100), fuzzing.anything),
    max_bytes=st.one_of(st.integers(64, 10**6), fuzzing.anything),
)
def test_fuzz_batching_values(max_wait: object, max_entities: object, max_bytes: object) -> None:
    """Any values: a Batching that round-trips through its text, or a ValidationError
    naming one of its fields."""
    fields = ("batching.max_wait", "batching.max_entities", "batching.max_bytes")
    try:
        batching = Batching(max_wait=max_wait, max_entities=max_entities, max_bytes=max_bytes)  # type: ignore[arg-type]
    except ValidationError as exc:
        refused = exc.field
    else:
        assert Batching.from_text(batching.to_text()) == batching
        return
    assert refused in fields


def test_the_subscription_api_shows_a_hooks_batching(any_store: Store) -> None:
    """The restHook document of a batched hook carries its batching; a plain one none."""
    from resthooks.api import SubscriptionAPI  # noqa: PLC0415

    dispatcher = Dispatcher(any_store, clock=FakeClock(), transport=RecordingTransport())
    batched = dispatcher.subscribe(
        "task/created",
        "https://e.example/b",
        owner="acme",
        batching=Batching(max_wait=2.5, max_entities=20, max_bytes=4096),
    )
    plain = dispatcher.subscribe("task/created", "https://e.example/p", owner="acme")
    api = SubscriptionAPI(dispatcher)
    shown = api.show(batched.id, owner="acme").body
    assert shown is not None
    assert shown["restHook"]["batching"] == {"maxWait": 2.5, "maxEntities": 20, "maxBytes": 4096}
    plain_shown = api.show(plain.id, owner="acme").body
    assert plain_shown is not None
    assert "batching" not in plain_shown["restHook"]
