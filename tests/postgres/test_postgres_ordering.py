"""Ordering keys end to end on PostgresStore, against a real receiver on loopback."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import support

import ordering_support
from resthooks import DeliveryState, Hook, Outcome, OutcomeKind
from resthooks.testing import HookReceiver

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore


WORKER = Path(__file__).with_name("worker.py")


@pytest.fixture(name="hook_receiver")
def _hook_receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def test_one_at_a_time_per_key_others_in_parallel(
    pg_store: PostgresStore, hook_receiver: HookReceiver
) -> None:
    """With a threaded worker, each key goes one delivery at a time, in emit order, while
    other keys and keyless deliveries of the same hook go in parallel."""
    ordering_support.one_at_a_time_with_a_threaded_worker(
        pg_store, hook_receiver, seed=random.randrange(2**32)
    )


def test_a_retry_holds_back_only_its_key(
    pg_store: PostgresStore, hook_receiver: HookReceiver
) -> None:
    """A delivery waiting on a retry holds back the rest of its key, not the hook or host."""
    ordering_support.retry_holds_back_only_its_key(pg_store, hook_receiver)


def test_failure_revival_and_410_of_a_key(
    pg_store: PostgresStore, hook_receiver: HookReceiver
) -> None:
    """Failed for good, revived with redelivery, then 410: as on the other stores."""
    ordering_support.failure_removal_and_revival(pg_store, hook_receiver)


def test_order_holds_across_processes_and_a_kill(
    pg_store: PostgresStore, pg_conninfo: str, hook_receiver: HookReceiver
) -> None:
    """A worker process killed mid-attempt, then two worker processes on the database: every
    key in emit order, one at a time, the re-claimed deliveries first."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), *sys.path])}

    def start_worker() -> subprocess.Popen[bytes]:
        # 4 threads each; attempts time out after 1 s, leases after 2 s.
        return subprocess.Popen(
            [sys.executable, str(WORKER), pg_conninfo, pg_store.schema, "8", "2"], env=env
        )

    def drained() -> bool:
        counts = pg_store.stats().deliveries
        return counts["pending"] + counts["in_flight"] == 0

    ordering_support.kill_mid_attempt_then_two_workers(
        support.make_dispatcher(pg_store, max_in_flight_per_host=None),
        hook_receiver,
        start_worker=start_worker,
        drained=drained,
        seed=random.randrange(2**32),
    )


def test_keyed_statements_use_the_index_of_turns(pg_store: PostgresStore, pg_conninfo: str) -> None:
    """A keyed fan-out and a turn's hand-over find the key's deliveries through the index of
    turns, never a scan of the deliveries."""
    import psycopg  # noqa: PLC0415 - optional: the fixtures checked for it
    from psycopg import sql  # noqa: PLC0415

    from resthooks.stores._common import WAITING_FOR_TURN  # noqa: PLC0415

    dispatcher = support.make_dispatcher(pg_store)
    dispatcher.subscribe("party/updated", "https://a.example.com/h", owner="acme")
    # A hook with a history: 2,000 deliveries sent long ago, 200 keyed ones open.
    dispatcher.emit_many([("party/updated", {"n": i}, "acme") for i in range(2000)])
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {}.deliveries SET state = 'delivered', next_attempt_at = NULL, "
                "due_at = NULL"
            ).format(sql.Identifier(pg_store.schema))
        )
    dispatcher.emit_many(
        [("party/updated", {"n": i}, "acme", f"party:{i % 4}") for i in range(200)]
    )
    (hook,) = dispatcher.hooks(owner="acme")
    now = dispatcher.clock.now()
    params = {
        "owner": "acme",
        "event": "party/updated",
        "body": b"{}",
        "now": now,
        "trace_context": None,
        "key": "party:1",
        "waiting": WAITING_FOR_TURN,
        "hook_id": hook.id,
    }
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute(sql.SQL("ANALYZE {}.deliveries").format(sql.Identifier(pg_store.schema)))
        conn.execute("SET enable_seqscan = off")
        for statement in (pg_store._ENQUEUE_KEYED, pg_store._HAND_OVER):
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    sql.SQL("EXPLAIN ") + pg_store._q(statement), params
                ).fetchall()
            )
            assert "deliveries_turns" in plan, plan
            assert "Seq Scan on deliveries" not in plan, plan
        conn.rollback()
    assert pg_store.check() == [], "a delivery waiting for its turn breaks no invariant"


def test_keyed_emits_through_the_hosts_connections_keep_their_order(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """The transactional outbox with ordering keys, sync and async: a key's deliveries
    written inside the host's transactions wait for their turn in commit order, a rolled
    back one takes no place in the key, and the key goes one at a time afterwards."""
    import psycopg  # noqa: PLC0415 - optional: the fixtures checked for it

    from resthooks.aio import AsyncDispatcher  # noqa: PLC0415
    from resthooks.testing import RecordingTransport  # noqa: PLC0415

    dispatcher = support.make_dispatcher(pg_store, transport=RecordingTransport())
    dispatcher.subscribe("party/updated", "https://example.com/h", owner="acme")
    made: list[str] = []
    with psycopg.connect(pg_conninfo) as conn:
        (first,) = dispatcher.emit(
            "party/updated", {"n": 0}, owner="acme", connection=conn, ordering_key="party:1"
        )
        conn.commit()
        dispatcher.emit(
            "party/updated", {"n": -1}, owner="acme", connection=conn, ordering_key="party:1"
        )
        conn.rollback()
        made.append(first.id)
    hooks = AsyncDispatcher(dispatcher)

    async def main() -> list[str]:
        async with await psycopg.AsyncConnection.connect(pg_conninfo) as conn:
            ids = []
            for n in (1, 2):
                (d,) = await hooks.emit(
                    "party/updated", {"n": n}, owner="acme", connection=conn, ordering_key="party:1"
                )
                assert d.ordering_key == "party:1"
                assert d.next_attempt_at is None, "it waits behind the first"
                ids.append(d.id)
            await conn.commit()
            return ids

    made += asyncio.run(main())
    order = []
    for _ in range(3):
        now = dispatcher.clock.now()
        claims = pg_store.claim_due(now=now, limit=10, lease_until=now + timedelta(minutes=1))
        assert len(claims) == 1, [c.delivery.id for c in claims]
        (claim,) = claims
        order.append(claim.delivery.id)
        dispatcher.record([dispatcher.attempt(claim)])
    assert made == order


def test_a_stale_outcome_and_a_redelivery_taking_the_turn_never_deadlock(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """A redelivery that takes its key's turn makes the holder (a newer delivery waiting on a
    retry) wait again, updating that row under the key's lock; a late outcome for the same
    holder locks it in ``record``. Both take the key's lock before any row of the key, so
    neither holds what the other waits for. The test holds the key's lock until both wait on
    it, the redelivery first (the order that deadlocked when each locked its own row first)."""
    import psycopg  # noqa: PLC0415 - optional: the fixtures checked for it first

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    hook = Hook(
        id="hook_1",
        owner="acme",
        event="party/updated",
        target_url="https://h.example.com/1",
        created_at=t0,
        updated_at=t0,
    )
    pg_store.add_hook(hook, max_per_owner=None)
    lease = timedelta(minutes=5)

    def claim_one(now: datetime) -> tuple[str, str]:
        (claim,) = pg_store.claim_due(now=now, limit=1, lease_until=now + lease)
        return claim.delivery.id, claim.token

    (older,) = pg_store.enqueue(
        owner="acme", event="party/updated", body=b"{}", now=t0, ordering_key="party:1"
    )
    older_id, token = claim_one(t0)
    pg_store.record([Outcome(delivery_id=older_id, token=token, kind=OutcomeKind.FAILED)], now=t0)
    pg_store.revive_hook("hook_1", now=t0)
    pg_store.enqueue(
        owner="acme", event="party/updated", body=b"{}", now=t0, ordering_key="party:1"
    )
    holder_id, stale_token = claim_one(t0)
    retry_at = t0 + timedelta(minutes=1)
    pg_store.record(
        [
            Outcome(
                delivery_id=holder_id,
                token=stale_token,
                kind=OutcomeKind.RETRY,
                next_attempt_at=retry_at,
            )
        ],
        now=t0,
    )
    assert older.id == older_id

    def waiting_on_advisory_locks(conn: psycopg.Connection[tuple[object, ...]]) -> int:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
        return int(row[0]) if row else 0

    errors: list[BaseException] = []

    def run(call: object) -> None:
        try:
            call()  # type: ignore[operator]
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    now = t0 + timedelta(seconds=1)
    with (
        psycopg.connect(pg_conninfo, autocommit=True) as gate,
        psycopg.connect(pg_conninfo, autocommit=True) as watch,
    ):
        gate.execute("BEGIN")
        gate.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s || %s || ':' || %s, 0))",
            (pg_store._turn_lock, "hook_1", "party:1"),
        )
        redelivery = threading.Thread(
            target=run, args=(lambda: pg_store.requeue(older_id, now=now),)
        )
        late = threading.Thread(
            target=run,
            args=(
                lambda: pg_store.record(
                    [Outcome(delivery_id=holder_id, token=stale_token, kind=OutcomeKind.DELIVERED)],
                    now=now,
                ),
            ),
        )
        redelivery.start()
        for expected, thread in ((1, None), (2, late)):
            if thread is not None:
                thread.start()
            deadline = time.monotonic() + 30
            while waiting_on_advisory_locks(watch) < expected:
                assert time.monotonic() < deadline, "the store never waited on the key"
                time.sleep(0.01)
        gate.execute("COMMIT")
        redelivery.join(60)
        late.join(60)
    assert errors == []
    redelivered = pg_store.get_delivery(older_id)
    holder = pg_store.get_delivery(holder_id)
    assert redelivered is not None
    assert holder is not None
    assert (redelivered.state, redelivered.next_attempt_at) == (DeliveryState.PENDING, now)
    assert holder.state == DeliveryState.PENDING  # the late outcome changed nothing
    assert holder.next_attempt_at != retry_at  # it waits for the redelivered one's turn
