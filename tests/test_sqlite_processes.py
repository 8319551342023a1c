"""SQLiteStore with real processes and real HTTP: restarts, SIGKILL crashes, two workers."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from resthooks import DeliveryState, Dispatcher, Hook, HookState, SystemClock
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver, RecordingTransport
from resthooks.transports import Urllib3Transport

WORKER = Path(__file__).with_name("sqlite_worker.py")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    # The kit's loopback receiver; paths under /fail answer 500, everything else 204.
    with HookReceiver() as receiver:
        receiver.answer(500, path="/fail")
        yield receiver


def _delivered(receiver: HookReceiver) -> Counter[str]:
    """Requests answered 2xx, counted by ``webhook-id``."""
    return Counter(
        d.webhook_id
        for d in receiver.deliveries
        if d.webhook_id is not None and not d.path.startswith("/fail")
    )


def _add_hooks(
    store: SQLiteStore, receiver: HookReceiver, count: int, *, owner: str = "acme"
) -> None:
    # Straight into the store: these tests are about the outbox, not about subscribe's URL
    # checks (a network policy may refuse loopback targets there).
    for n in range(count):
        store.add_hook(
            Hook(
                id=f"hook_{n}",
                owner=owner,
                event="party/created",
                target_url=receiver.url(f"/h{n}"),
                created_at=T0,
                updated_at=T0,
            ),
            max_per_owner=None,
        )


def _emit(store: SQLiteStore, emits: int) -> set[str]:
    dispatcher = Dispatcher(store, clock=SystemClock(), transport=RecordingTransport())
    ids: set[str] = set()
    for n in range(emits):
        ids.update(d.id for d in dispatcher.emit("party/created", {"n": n}, owner="acme"))
    return ids


def _worker(db: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(db), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_restart_loses_nothing_and_dead_hook_stays_dead(
    tmp_path: Path, receiver: HookReceiver
) -> None:
    """Deliveries emitted before a close are sent after a reopen, and a dead hook stays dead."""
    db = tmp_path / "hooks.db"
    clock = FakeClock()
    store = SQLiteStore(db)
    _add_hooks(store, receiver, 2)
    store.add_hook(
        Hook(
            id="hook_dying",
            owner="acme",
            event="party/created",
            target_url=receiver.url("/fail"),
            created_at=T0,
            updated_at=T0,
        ),
        max_per_owner=None,
    )
    transport = Urllib3Transport(policy=LOOPBACK_POLICY)
    dispatcher = Dispatcher(store, clock=clock, transport=transport, max_in_flight_per_host=None)
    dispatcher.emit("party/created", {"n": 0}, owner="acme")
    for _ in range(10):  # the whole retry schedule plays out against the failing path
        dispatcher.deliver_due()
        clock.advance(16 * 60)
    dead = store.get_hook("hook_dying")
    assert dead is not None
    assert dead.state == HookState.DEAD
    emitted = {d.id for d in dispatcher.emit("party/created", {"n": 1}, owner="acme")}
    assert len(emitted) == 2
    store.close()

    reopened = SQLiteStore(db)
    try:
        again = reopened.get_hook("hook_dying")
        assert again == dead, "the dead hook comes back exactly as it was"
        dispatcher = Dispatcher(
            reopened, clock=clock, transport=transport, max_in_flight_per_host=None
        )
        more = {d.id for d in dispatcher.emit("party/created", {"n": 2}, owner="acme")}
        assert len(more) == 2, "the dead hook receives nothing new"
        assert dispatcher.deliver_due().delivered == 4
        assert emitted | more <= set(_delivered(receiver))
        assert all(
            reopened.get_delivery(i).state == DeliveryState.DELIVERED  # type: ignore[union-attr]
            for i in emitted | more
        )
    finally:
        reopened.close()
        transport.close()


def test_sigkilled_workers_lose_no_delivery(tmp_path: Path, receiver: HookReceiver) -> None:
    """Workers killed with SIGKILL at random moments lose no delivery, send at most one
    request each that the attempt log does not know of (batch size 1), and leave every
    delivery final and the file intact.

    A duplicate is a request the log does not know of (a killed worker's) or one whose
    attempt the log holds as failed (on a loaded machine an answer can come after the 2 s
    deadline of an attempt): both are counted, neither depends on the machine's speed."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    _add_hooks(store, receiver, 10)
    emitted = _emit(store, 150)
    assert len(emitted) == 1500
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    kills = 0
    for _ in range(5):
        before = sum(_delivered(receiver).values())
        proc = _worker(db, "--batch", "1", "--lease", "3", "--total", "2")
        # Kill it at a random moment once it is delivering (its start-up time varies a lot).
        deadline = time.monotonic() + 120
        while sum(_delivered(receiver).values()) == before and proc.poll() is None:
            assert time.monotonic() < deadline, "the worker never delivered anything"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    left = store.stats().deliveries
    assert left["pending"] + left["in_flight"] > 0, "the kills must land while work remains"
    assert left["delivered"] > 0, "the killed workers delivered some before they died"
    # The last worker waits out the leases of the killed ones before it calls the outbox empty
    # (and any retry a late answer made due meanwhile).
    _finish(_worker(db, "--batch", "1", "--lease", "3", "--total", "2"), timeout=600)
    counts = _delivered(receiver)
    assert set() == emitted - set(counts), "every delivery reached the receiver"
    logged = {i: len(store.attempts(i)) for i in emitted}
    unlogged = sum(max(0, counts[i] - logged[i]) for i in emitted)
    assert unlogged <= kills, (unlogged, kills)
    failed_tries = sum(n - 1 for n in logged.values())  # each delivered once, on its last try
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= kills + failed_tries, (duplicates, kills, failed_tries)
    stats = store.stats().deliveries
    assert len(emitted) == stats["delivered"]
    store.close()
    assert _integrity(db) == "ok"


def test_two_workers_send_each_delivery_once(tmp_path: Path, receiver: HookReceiver) -> None:
    """Two worker processes draining one file send every delivery exactly once."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    _add_hooks(store, receiver, 10)
    emitted = _emit(store, 80)
    store.close()
    workers = [_worker(db, "--batch", "10", "--lease", "30", "--total", "10") for _ in range(2)]
    for proc in workers:
        _finish(proc)
    counts = _delivered(receiver)
    assert emitted == set(counts)
    assert {1} == set(counts.values()), "no delivery was sent twice"
    assert _integrity(db) == "ok"
