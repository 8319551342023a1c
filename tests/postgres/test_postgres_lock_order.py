"""PostgreSQL: the paths that lock several things take them in the one lock order (hooks,
then the turns of ordering keys, then delivery rows), so no two of them deadlock."""

from __future__ import annotations

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


def _wait_for_waiters(conn: psycopg.Connection[tuple[object, ...]], expected: int) -> None:
    deadline = time.monotonic() + 20
    while _advisory_waiters(conn) < expected:
        assert time.monotonic() < deadline, "the store never waited on the key's turn"
        time.sleep(0.01)


def _run(
    errors: list[BaseException], call: Callable[..., object], *args: Any, **kwargs: Any
) -> None:
    try:
        call(*args, **kwargs)
    except BaseException as exc:  # the test asserts there is none
        errors.append(exc)


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
        errors: list[BaseException] = []
        now = T0 + timedelta(seconds=1)
        outcome = Outcome(
            delivery_id=claim.delivery.id, token=claim.token, kind=OutcomeKind.DELIVERED
        )
        record = threading.Thread(
            target=_run, args=(errors, pg_store.record, [outcome]), kwargs={"now": now}
        )
        quarantine = threading.Thread(
            target=_run,
            args=(errors, pg_store.claim_due),
            kwargs={"now": now, "limit": 10, "lease_until": now + LEASE},
        )
        with (
            psycopg.connect(pg_conninfo, autocommit=True) as gate,
            psycopg.connect(pg_conninfo, autocommit=True) as watch,
        ):
            gate.execute("BEGIN")
            gate.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s || %s || ':' || %s, 0))",
                (pg_store._turn_lock, hook_id, key),
            )
            record.start()
            _wait_for_waiters(watch, 1)
            quarantine.start()
            _wait_for_waiters(watch, 2)
            gate.execute("COMMIT")
            record.join(60)
            quarantine.join(60)
        assert errors == [], f"seed {seed}, iteration {n}"
        done = pg_store.get_delivery(holder)
        assert done is not None
        assert done.state == DeliveryState.DELIVERED
        moved = {q.delivery_id for q in pg_store.take_quarantined()}
        assert {waiting, due} == moved
