"""Scale-out: four worker processes (standing in for four machines) on one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import support

from resthooks import DeliveryState
from resthooks.testing import HookReceiver

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore

WORKER = Path(__file__).with_name("worker.py")
HOOKS, EMITS = 50, 100  # 50 hooks x 100 emits = 5,000 deliveries
BATCH = 20
LEASE = 3.0
DEADLINE = 240.0  # generous: a hung run fails instead of blocking CI forever


def _workers(conninfo: str, schema: str, n: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), *sys.path])}
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), conninfo, schema, str(BATCH), str(LEASE)], env=env
        )
        for _ in range(n)
    ]


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _emit_all(store: PostgresStore, receiver: HookReceiver) -> set[str]:
    dispatcher = support.make_dispatcher(store, max_hooks_per_owner=None)
    for n in range(HOOKS):
        dispatcher.subscribe("party/created", receiver.url(f"/h/{n}"), owner="acme")
    ids: set[str] = set()
    for i in range(EMITS):
        ids.update(d.id for d in dispatcher.emit("party/created", {"n": i}, owner="acme"))
    assert len(ids) == HOOKS * EMITS
    return ids


def _wait_until_all_delivered(store: PostgresStore, workers: list[subprocess.Popen[bytes]]) -> None:
    # Drained means delivered in the store, not "the receiver went quiet": the claims of a
    # killed worker come back only when their lease expires.
    deadline = time.monotonic() + DEADLINE
    while store.stats().deliveries["delivered"] < HOOKS * EMITS:
        assert time.monotonic() < deadline, f"not drained: {store.stats()}"
        assert any(w.poll() is None for w in workers), "every worker exited"
        time.sleep(0.2)


def test_four_workers_deliver_each_exactly_once(
    pg_store: PostgresStore, pg_conninfo: str, receiver: HookReceiver
) -> None:
    """4 worker processes on one database deliver 5,000 deliveries, emitted while they run,
    each exactly once."""
    workers = _workers(pg_conninfo, pg_store.schema, 4)
    try:
        ids = _emit_all(pg_store, receiver)
        _wait_until_all_delivered(pg_store, workers)
    finally:
        _stop(workers)
    assert set(receiver.webhook_ids()) == ids
    assert max(receiver.webhook_ids().values()) == 1, "no delivery was sent twice"
    assert len(receiver.deliveries) == HOOKS * EMITS
    stats = pg_store.stats()
    assert stats.deliveries[DeliveryState.DELIVERED.value] == HOOKS * EMITS
    assert stats.oldest_pending_at is None


def test_killed_worker_loses_nothing(
    pg_store: PostgresStore, pg_conninfo: str, receiver: HookReceiver
) -> None:
    """kill -9 of one of 4 workers mid-run loses no delivery, and sends again at most what it
    had in flight (one batch)."""
    ids = _emit_all(pg_store, receiver)
    workers = _workers(pg_conninfo, pg_store.schema, 4)
    try:
        deadline = time.monotonic() + DEADLINE
        receiver.wait_for(1000, timeout=max(deadline - time.monotonic(), 0))
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        in_flight_at_kill = pg_store.stats().deliveries[DeliveryState.IN_FLIGHT.value]
        _wait_until_all_delivered(pg_store, workers[1:])
    finally:
        _stop(workers)
    assert workers[0].returncode == -signal.SIGKILL
    assert set(receiver.webhook_ids()) == ids, "nothing lost"
    duplicates = len(receiver.deliveries) - len(ids)
    assert duplicates <= BATCH, f"{duplicates} sent twice; at most one batch was in flight"
    assert max(receiver.webhook_ids().values()) <= 2
    assert in_flight_at_kill <= 4 * BATCH
    assert pg_store.stats().deliveries[DeliveryState.DELIVERED.value] == len(ids)
