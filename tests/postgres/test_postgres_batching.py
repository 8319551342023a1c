"""Batched hooks end to end on PostgresStore, against a real receiver on loopback, and
through the transactional outbox (psycopg connections, sync and async)."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

import batching_support
from resthooks import Batching, Dispatcher
from resthooks.aio import AsyncDispatcher
from resthooks.testing import FakeClock, HookReceiver, RecordingTransport

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore


@pytest.fixture(name="hook_receiver")
def _hook_receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def test_one_post_one_webhook_id(pg_store: PostgresStore, hook_receiver: HookReceiver) -> None:
    """The emits of a window arrive as one signed POST, entities in emit order, under the
    webhook-id each emit returned; an unbatched hook keeps one POST per emit."""
    batching_support.one_post_one_webhook_id(pg_store, hook_receiver)


def test_a_batch_is_retried_as_a_whole(
    pg_store: PostgresStore, hook_receiver: HookReceiver
) -> None:
    """A failed batch is retried with the same body and webhook-id, one attempt log."""
    batching_support.retried_as_a_whole(pg_store, hook_receiver)


def test_max_entities_max_bytes_and_max_wait(
    pg_store: PostgresStore, hook_receiver: HookReceiver
) -> None:
    """A full batch goes at once, one the next emit overflows too; the last at max_wait."""
    batching_support.limits(pg_store, hook_receiver)


def test_ordering_keys_are_kept_across_batches(
    pg_store: PostgresStore, hook_receiver: HookReceiver
) -> None:
    """A threaded worker, failures now and then: each key's entities arrive in emit order
    over all the batches."""
    batching_support.ordering_keys_kept(pg_store, hook_receiver, seed=random.randrange(2**32))


def _dispatcher(store: PostgresStore, clock: FakeClock) -> Dispatcher:
    dispatcher = Dispatcher(store, clock=clock, transport=RecordingTransport())
    dispatcher.subscribe(
        "task/created", "https://example.com/h", owner="acme", batching=Batching(max_wait=5)
    )
    return dispatcher


def _body_due(store: PostgresStore, clock: FakeClock) -> bytes:
    clock.advance(5)
    now = clock.now()
    (claim,) = store.claim_due(now=now, limit=5, lease_until=now + timedelta(minutes=1))
    return claim.body


def test_the_outbox_joins_a_batch_only_on_commit(pg_store: PostgresStore, pg_conninfo: str) -> None:
    """emit(..., connection=) through the host's psycopg connection: the entity joins the
    open batch only if the host's transaction commits."""
    import psycopg

    clock = FakeClock()
    dispatcher = _dispatcher(pg_store, clock)
    (batch,) = dispatcher.emit("task/created", {"n": 0}, owner="acme")
    with psycopg.connect(pg_conninfo) as conn:
        (joined,) = dispatcher.emit("task/created", {"n": 1}, owner="acme", connection=conn)
        assert joined.id == batch.id
        conn.rollback()
        dispatcher.emit("task/created", {"n": 2}, owner="acme", connection=conn)
        conn.commit()
    assert _body_due(pg_store, clock) == b'{"event":"task/created","payload":[{"n":0},{"n":2}]}'


def test_the_async_outbox_joins_a_batch_only_on_commit(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """AsyncDispatcher.emit through a psycopg AsyncConnection: the same, on the loop."""
    import psycopg

    clock = FakeClock()
    hooks = AsyncDispatcher(_dispatcher(pg_store, clock))

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(pg_conninfo) as conn:
            await hooks.emit("task/created", {"n": 0}, owner="acme", connection=conn)
            await conn.commit()
            await hooks.emit("task/created", {"n": 1}, owner="acme", connection=conn)
            await conn.rollback()
            await hooks.emit("task/created", [{"n": 2}, {"n": 3}], owner="acme", connection=conn)
            await hooks.emit(
                "task/created", {"n": 4}, owner="acme", connection=conn, ordering_key="k"
            )
            await conn.commit()

    asyncio.run(main())
    clock.advance(5)
    now = clock.now()
    bodies = sorted(
        c.body for c in pg_store.claim_due(now=now, limit=5, lease_until=now + timedelta(minutes=1))
    )
    assert bodies == [
        b'{"event":"task/created","payload":[{"n":0},{"n":2},{"n":3}]}',
        b'{"event":"task/created","payload":[{"n":4}]}',
    ]
