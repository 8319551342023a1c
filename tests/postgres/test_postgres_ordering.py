"""Ordering keys end to end on PostgresStore, against a real receiver on loopback."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import support

import ordering_support
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
