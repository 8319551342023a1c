"""PostgreSQL: the paths that lock several things take them in the one lock order (hooks,
then the turns of ordering keys, then delivery rows), so no two of them deadlock."""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg import sql

from resthooks import DeliveryState, Hook, Outcome, OutcomeKind
from resthooks.stores.postgres import PostgresStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(minutes=5)


def _advisory_waiters(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def _run(
    errors: list[BaseException], call: Callable[..., object], *args: Any, **kwargs: Any
) -> None:
    try:
        call(*args, **kwargs)
    except BaseException as exc:  # the tests assert there is none
        errors.append(exc)


def _queued_on_a_turn(
    store: PostgresStore, conninfo: str, hook_id: str, key: str, *calls: Callable[[], object]
) -> list[BaseException]:
    """Run ``calls`` in threads while the turn of ``hook_id``'s ``key`` is held, each started
    once the ones before it wait on that turn, so they queue on it in that order; then let
    the turn go. What the calls raised ("deadlock detected", say)."""
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_run, args=(errors, call)) for call in calls]
    with (
        psycopg.connect(conninfo, autocommit=True) as gate,
        psycopg.connect(conninfo, autocommit=True) as watch,
    ):
        gate.execute("BEGIN")
        gate.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s || %s || ':' || %s, 0))",
            (store._turn_lock, hook_id, key),
        )
        for waiting, thread in enumerate(threads, 1):
            thread.start()
            deadline = time.monotonic() + 20
            while _advisory_waiters(watch) < waiting:
                assert time.monotonic() < deadline, "the store never waited on the key's turn"
                time.sleep(0.01)
        gate.execute("COMMIT")
        for thread in threads:
            thread.join(60)
    return errors


def test_a_quarantine_during_a_claim_and_a_record_handing_the_turn_over_never_deadlock(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """A claim that meets a damaged row moves every damaged open row aside, and hands the
    turn of a moved row's key on; a record that ends a key's turn hands it to the key's
    oldest waiting delivery, which may be one of those damaged rows. The quarantine took its
    rows first, then the key's turn; the record takes the turn, then the rows: each held what
    the other wanted ("deadlock detected"). The test holds the key's turn until both wait on
    it, the record first, in each iteration (seeded: a key, which damage)."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    damages = (
        "created_at = 'infinity'",
        "updated_at = '-infinity'",
        "state = 'exploded'",
    )
    for n in range(4):
        hook_id, key = f"hook_{n}", f"party:{rng.randrange(1000)}"
        pg_store.add_hook(
            Hook(
                id=hook_id,
                owner=f"owner_{n}",
                event="party/updated",
                target_url=f"https://h{n}.example.com/",
                created_at=T0,
                updated_at=T0,
            ),
            max_per_owner=None,
        )

        def emit(ordering_key: str | None, owner: str = f"owner_{n}") -> str:
            (made,) = pg_store.enqueue(
                owner=owner, event="party/updated", body=b"{}", now=T0, ordering_key=ordering_key
            )
            return made.id

        holder = emit(key)
        (claim,) = pg_store.claim_due(now=T0, limit=10, lease_until=T0 + LEASE)
        assert holder == claim.delivery.id
        waiting = emit(key)  # waits for the holder's turn
        due = emit(None)  # due: the claim below meets it
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            # The claim writes the state and times it sets: the due row's damage is one it
            # reads back and does not write.
            for delivery_id, damage in ((waiting, rng.choice(damages)), (due, damages[0])):
                conn.execute(
                    sql.SQL("UPDATE {s}.deliveries SET " + damage + " WHERE id = %s").format(  # type: ignore[operator]
                        s=sql.Identifier(pg_store.schema)
                    ),
                    (delivery_id,),
                )
        now = T0 + timedelta(seconds=1)
        outcome = Outcome(
            delivery_id=claim.delivery.id, token=claim.token, kind=OutcomeKind.DELIVERED
        )
        errors = _queued_on_a_turn(
            pg_store,
            pg_conninfo,
            hook_id,
            key,
            functools.partial(pg_store.record, [outcome], now=now),
            functools.partial(pg_store.claim_due, now=now, limit=10, lease_until=now + LEASE),
        )
        assert errors == [], f"seed {seed}, iteration {n}"
        done = pg_store.get_delivery(holder)
        assert done is not None
        assert done.state == DeliveryState.DELIVERED
        moved = {q.delivery_id for q in pg_store.take_quarantined()}
        assert {waiting, due} == moved


def test_a_stale_outcome_and_a_redelivery_taking_the_turn_never_deadlock(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """A redelivery that takes its key's turn makes the holder (a newer delivery waiting on a
    retry) wait again, updating that row under the key's lock; a late outcome for the same
    holder locks it in ``record``. Both take the key's lock before any row of the key, so
    neither holds what the other waits for. The test holds the key's lock until both wait on
    it, the redelivery first (the order that deadlocked when each locked its own row first)."""
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

    now = t0 + timedelta(seconds=1)
    late = Outcome(delivery_id=holder_id, token=stale_token, kind=OutcomeKind.DELIVERED)
    errors = _queued_on_a_turn(
        pg_store,
        pg_conninfo,
        "hook_1",
        "party:1",
        functools.partial(pg_store.requeue, older_id, now=now),
        functools.partial(pg_store.record, [late], now=now),
    )
    assert errors == []
    redelivered = pg_store.get_delivery(older_id)
    holder = pg_store.get_delivery(holder_id)
    assert redelivered is not None
    assert holder is not None
    assert (redelivered.state, redelivered.next_attempt_at) == (DeliveryState.PENDING, now)
    assert holder.state == DeliveryState.PENDING  # the late outcome changed nothing
    assert holder.next_attempt_at != retry_at  # it waits for the redelivered one's turn
