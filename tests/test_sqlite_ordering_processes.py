"""Ordering keys across worker processes on one SQLite file, with a worker killed
mid-attempt (the PostgreSQL twin is tests/postgres/test_postgres_ordering.py)."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ordering_support
from resthooks import Dispatcher, SystemClock
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, HookReceiver

WORKER = Path(__file__).with_name("sqlite_worker.py")


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def test_order_holds_across_processes_and_a_kill(tmp_path: Path, receiver: HookReceiver) -> None:
    """A worker killed mid-attempt, then two worker processes on the file: every key in
    emit order, one at a time, the re-claimed deliveries first."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    dispatcher = Dispatcher(
        store, clock=SystemClock(), network_policy=LOOPBACK_POLICY, max_in_flight_per_host=None
    )

    def start_worker() -> subprocess.Popen[bytes]:
        # Attempts time out after 1 s, leases after 2 s: the killed worker's claims come
        # back 2 s after it took them.
        return subprocess.Popen(
            [sys.executable, str(WORKER), str(db), "--batch", "3", "--lease", "2", "--total", "1"],
            stdout=subprocess.DEVNULL,
        )

    def drained() -> bool:
        counts = store.stats().deliveries
        return counts["pending"] + counts["in_flight"] == 0

    try:
        ordering_support.kill_mid_attempt_then_two_workers(
            dispatcher,
            receiver,
            start_worker=start_worker,
            drained=drained,
            seed=random.randrange(2**32),
        )
    finally:
        store.close()
