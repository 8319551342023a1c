"""The fault suite: kill -9 of workers and emitters, a database restart, a full disk, a lock.

Usage::

    python bench/fault_suite.py [--seed N] [--kills N] [--lock-seconds S] [--only NAME ...]

Every fault runs against real parts: a SQLite file (or a throwaway PostgreSQL server),
worker and emitter processes killed with SIGKILL, a real HTTP receiver on loopback, a real
tmpfs for the full disk. It prints one line of figures per fault: runs, kills, lost,
duplicates against what was in flight, time to recover. The randomness (when to kill, whom)
comes from one seed, printed first: the same seed replays the same schedule.

``tests/test_fault_suite.py`` runs it small in CI (seconds); the figures in
``docs/reliability.md`` are from a long run of this script.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.server
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
sys.path.insert(0, str(TESTS / "postgres"))

OWNER = "acme"
EVENT = "party/created"
HOOKS = 3
LEASE = 2.0  # short, so the leases of killed workers run out quickly
TOTAL = 1.0  # the attempt deadline (the lease must outlast it)


@attrs.define
class Figures:
    """What one fault measured."""

    fault: str
    runs: int = 0
    kills: int = 0
    deliveries: int = 0
    lost: int = 0
    duplicates: int = 0
    in_flight_bound: int = 0
    torn_fan_outs: int = 0
    recover_seconds: float | None = None
    note: str = ""

    def line(self) -> str:
        recover = "-" if self.recover_seconds is None else f"{self.recover_seconds:.2f} s"
        return (
            f"{self.fault:<16} runs {self.runs:>4}  kills {self.kills:>4}  "
            f"deliveries {self.deliveries:>6}  lost {self.lost:>3}  "
            f"duplicates {self.duplicates:>3} (in flight at most {self.in_flight_bound:>3})  "
            f"torn fan-outs {self.torn_fan_outs}  recovered in {recover}  {self.note}"
        )


class Receiver:
    """A threaded HTTP server on loopback that answers 204 and counts webhook-ids."""

    def __init__(self) -> None:
        self.seen: collections.Counter[str] = collections.Counter()
        self.payload_ids: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.seen[self.headers.get("webhook-id", "")] += 1
                    with contextlib.suppress(ValueError, KeyError, IndexError):
                        receiver.payload_ids[str(json.loads(body)["payload"][0]["n"])] += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _dispatcher(store: Any, **options: Any) -> Any:
    from resthooks import Dispatcher, Timeouts  # noqa: PLC0415
    from resthooks.testing import LOOPBACK_POLICY  # noqa: PLC0415

    options.setdefault("timeouts", Timeouts(connect=0.5, total=TOTAL))
    return Dispatcher(
        store,
        network_policy=LOOPBACK_POLICY,
        lease=LEASE,
        max_hooks_per_owner=None,
        **options,
    )


# -- the child processes ------------------------------------------------------------------


def child_worker(db: str, workers: int) -> None:
    """A worker process: deliver until killed (or, with workers=0, until drained)."""
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    store = SQLiteStore(db)
    dispatcher = _dispatcher(store)
    if workers:
        dispatcher.run(workers=workers, poll_interval=0.1)
        return
    while True:  # drain: wait out the leases of killed workers
        if dispatcher.deliver_due(batch_size=50).attempts:
            continue
        counts = store.stats().deliveries
        if counts["pending"] + counts["in_flight"] == 0:
            return
        time.sleep(0.05)


def child_emitter(db: str, start: int) -> None:
    """An emitter process: emit events numbered from ``start``, printing each once stored."""
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    store = SQLiteStore(db)
    dispatcher = _dispatcher(store)
    n = start
    while True:
        dispatcher.emit(EVENT, {"n": n, "pad": "x" * 200}, owner=OWNER)
        print(n, flush=True)
        n += 1
        time.sleep(0.005)  # about 150 emits a second: a steady load, not a flood


def _spawn(*args: str, stdout: Any = subprocess.DEVNULL) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        text=True,
    )


# -- kill -9 -------------------------------------------------------------------------------


def _setup_sqlite(path: Path, receiver: Receiver) -> None:
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    store = SQLiteStore(path)
    dispatcher = _dispatcher(store)
    for i in range(HOOKS):
        dispatcher.subscribe(EVENT, receiver.url() + f"/{i}", owner=OWNER)
    store.close()


def kill_nine(rng: random.Random, kills: int, workdir: Path, *, threads: int = 4) -> Figures:
    """Workers and emitters running side by side, one of them killed with SIGKILL at a random
    moment, ``kills`` times; then one worker drains the outbox."""
    receiver = Receiver()
    db = workdir / "kill.db"
    _setup_sqlite(db, receiver)
    figures = Figures("kill -9", in_flight_bound=0)
    acknowledged: set[str] = set()
    next_n = 0
    emitter_outputs: list[subprocess.Popen[str]] = []

    def read_acks(proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                acknowledged.add(line.strip())

    worker = _spawn("_worker", str(db), str(threads))
    emitter = _spawn("_emitter", str(db), str(next_n), stdout=subprocess.PIPE)
    threading.Thread(target=read_acks, args=(emitter,), daemon=True).start()
    emitter_outputs.append(emitter)
    figures.runs = 2
    worker_kills = 0
    started = time.monotonic()
    while not acknowledged and time.monotonic() - started < 60:
        time.sleep(0.05)  # the schedule starts once the children are up
    last_kill = time.monotonic()
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 1.0))
            if rng.random() < 0.5:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                worker_kills += 1
                worker = _spawn("_worker", str(db), str(threads))
            else:
                emitter.send_signal(signal.SIGKILL)
                emitter.wait()
                next_n += 1_000_000
                emitter = _spawn("_emitter", str(db), str(next_n), stdout=subprocess.PIPE)
                threading.Thread(target=read_acks, args=(emitter,), daemon=True).start()
            figures.kills += 1
            figures.runs += 1
            last_kill = time.monotonic()
    finally:
        for proc in (worker, emitter):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    figures.kills += 2
    worker_kills += 1
    drain = _spawn("_worker", str(db), "0")
    drain.wait(timeout=300)
    figures.recover_seconds = time.monotonic() - last_kill
    figures.note = f"(drained, leases of {LEASE:g} s included)"
    # The ids as the store gives them (they are derived from the row under the file's key).
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    with SQLiteStore(db) as store:
        ids = [d.id for d in store.list_deliveries(limit=10**7)]
    conn = sqlite3.connect(db)
    (torn,) = conn.execute(
        "SELECT count(*) FROM resthooks_messages m WHERE (SELECT count(*) "
        "FROM resthooks_deliveries d WHERE d.message_id = m.id) != ?",
        (HOOKS,),
    ).fetchone()
    conn.close()
    receiver.close()
    figures.deliveries = len(ids)
    figures.lost = sum(1 for i in ids if receiver.seen[i] == 0)
    figures.lost += sum(1 for n in acknowledged if receiver.payload_ids[n] < HOOKS)
    figures.duplicates = sum(c - 1 for c in receiver.seen.values() if c > 1)
    # A killed worker may have sent, and not recorded, every claim it had in flight.
    figures.in_flight_bound = worker_kills * threads * 2
    figures.torn_fan_outs = torn
    return figures


# -- a lock held ---------------------------------------------------------------------------


def lock_held(seconds: float, workdir: Path) -> Figures:
    """Another connection holds the write lock for ``seconds`` while emits and a worker go
    on: emits fail (after busy_timeout) with StoreError, the worker waits, and both resume
    when the lock is released."""
    from resthooks import StoreError, SystemClock  # noqa: PLC0415
    from resthooks.lifecycle import DeliveryDelivered  # noqa: PLC0415
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    receiver = Receiver()
    db = workdir / "lock.db"
    _setup_sqlite(db, receiver)
    store = SQLiteStore(db, busy_timeout=1.0)
    dispatcher = _dispatcher(store, clock=SystemClock())
    delivered: list[float] = []
    dispatcher.add_listener(
        lambda e: delivered.append(time.monotonic()) if isinstance(e, DeliveryDelivered) else None
    )
    stop = threading.Event()
    worker = threading.Thread(
        target=dispatcher.run, kwargs={"stop": stop, "poll_interval": 0.2}, daemon=True
    )
    worker.start()
    holder = sqlite3.connect(db, isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")
    locked_at = time.monotonic()
    failed = 0
    while time.monotonic() - locked_at < seconds:
        try:
            dispatcher.emit(EVENT, {"n": "locked"}, owner=OWNER)
        except StoreError:
            failed += 1
    holder.execute("COMMIT")
    holder.close()
    released = time.monotonic()
    emitted = 0
    while True:
        try:
            dispatcher.emit(EVENT, {"n": emitted}, owner=OWNER)
            break
        except StoreError:
            time.sleep(0.01)
    while not [t for t in delivered if t > released]:
        time.sleep(0.01)
    recovered = min(t for t in delivered if t > released) - released
    stop.set()
    worker.join(30)
    alive = worker.is_alive()
    store.close()
    receiver.close()
    return Figures(
        "lock held",
        runs=1,
        deliveries=len(delivered),
        recover_seconds=recovered,
        note=f"({seconds:g} s lock; {failed} emits refused with StoreError meanwhile; "
        f"worker {'stuck' if alive else 'kept going'})",
    )


# -- a full disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(workdir: Path, size: str = "3m") -> Iterator[Path | None]:
    """A tmpfs of ``size`` (needs root); None where it cannot be mounted."""
    point = workdir / "small"
    point.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        yield None
        return
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        yield None
        return
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def full_disk(workdir: Path) -> Figures:
    """A 3 MiB file system filled up under a running worker, then freed."""
    from resthooks import StoreError, SystemClock  # noqa: PLC0415
    from resthooks.lifecycle import DeliveryDelivered  # noqa: PLC0415
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    with small_filesystem(workdir) as point:
        if point is None:
            return Figures("full disk", note="(skipped: a tmpfs cannot be mounted here)")
        receiver = Receiver()
        db = point / "full.db"
        _setup_sqlite(db, receiver)
        store = SQLiteStore(db)
        dispatcher = _dispatcher(store, clock=SystemClock())
        delivered: list[float] = []
        dispatcher.add_listener(
            lambda e: (
                delivered.append(time.monotonic()) if isinstance(e, DeliveryDelivered) else None
            )
        )
        stop = threading.Event()
        worker = threading.Thread(
            target=dispatcher.run, kwargs={"stop": stop, "poll_interval": 0.2}, daemon=True
        )
        worker.start()
        filler = point / "filler"
        with filler.open("wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        failed = 0
        for n in range(20):
            try:
                dispatcher.emit(EVENT, {"n": n, "blob": "x" * 50_000}, owner=OWNER)
            except StoreError:
                failed += 1
        filler.unlink()
        freed = time.monotonic()
        while True:
            try:
                after = dispatcher.emit(EVENT, {"n": "after"}, owner=OWNER)
                break
            except StoreError:
                time.sleep(0.01)
        # Every delivery of that emit (one per hook), not only the first: stopping at the first
        # released the others' claims, counted as lost under load.
        while len([t for t in delivered if t > freed]) < len(after):
            time.sleep(0.01)
        recovered = min(t for t in delivered if t > freed) - freed
        stop.set()
        worker.join(30)
        problems = store.check()
        left = store.stats().deliveries
        store.close()
        receiver.close()
        return Figures(
            "full disk",
            runs=1,
            deliveries=len(delivered),
            lost=left["pending"] + left["in_flight"],
            recover_seconds=recovered,
            note=f"({failed} of 20 emits refused while full; check() found {len(problems)})",
        )


# -- a database restart --------------------------------------------------------------------


def database_restart(rng: random.Random, restarts: int) -> Figures:
    """A PostgreSQL server restarted under a running worker and a steady emitter."""
    try:
        import support  # noqa: PLC0415 - the tests' throwaway cluster
    except ImportError as exc:  # pragma: no cover
        return Figures("database restart", note=f"(skipped: {exc})")
    if support.find_bindir() is None:
        return Figures("database restart", note="(skipped: no PostgreSQL binaries)")
    from resthooks import StoreError  # noqa: PLC0415
    from resthooks.stores.postgres import PostgresStore  # noqa: PLC0415

    receiver = Receiver()
    figures = Figures("database restart", runs=1)
    with support.start_cluster() as cluster:
        store = PostgresStore(cluster.conninfo(), timeout=5, max_size=8)
        dispatcher = _dispatcher(store)
        for i in range(HOOKS):
            dispatcher.subscribe(EVENT, receiver.url() + f"/{i}", owner=OWNER)
        stop = threading.Event()
        worker = threading.Thread(
            target=dispatcher.run,
            kwargs={"stop": stop, "poll_interval": 0.2, "workers": 4},
            daemon=True,
        )
        worker.start()
        acknowledged: list[str] = []
        emitting = threading.Event()
        emitting.set()

        def emit_forever() -> None:
            n = 0
            while emitting.is_set():
                try:
                    dispatcher.emit(EVENT, {"n": n}, owner=OWNER)
                    acknowledged.append(str(n))
                except StoreError:
                    time.sleep(0.01)
                n += 1

        emitter = threading.Thread(target=emit_forever, daemon=True)
        emitter.start()
        recoveries: list[float] = []
        for _ in range(restarts):
            time.sleep(rng.uniform(0.5, 1.5))
            cluster.halt()
            time.sleep(rng.uniform(0.5, 2.0))
            cluster.resume()
            ready = time.monotonic()
            before = sum(receiver.seen.values())
            while sum(receiver.seen.values()) == before:
                time.sleep(0.01)
            recoveries.append(time.monotonic() - ready)
            figures.kills += 1
        time.sleep(0.5)
        emitting.clear()
        emitter.join(30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            counts = store.stats().deliveries
            if counts["pending"] + counts["in_flight"] == 0:
                break
            time.sleep(0.1)
        stop.set()
        worker.join(30)
        ids = [d.id for d in store.list_deliveries(limit=10**7)]
        store.close()
    receiver.close()
    figures.deliveries = len(ids)
    figures.lost = sum(1 for i in ids if receiver.seen[i] == 0)
    figures.lost += sum(1 for n in acknowledged if receiver.payload_ids[n] < HOOKS)
    figures.duplicates = sum(c - 1 for c in receiver.seen.values() if c > 1)
    figures.in_flight_bound = restarts * 8  # claims in flight when the server went away
    figures.recover_seconds = max(recoveries) if recoveries else None
    figures.note = (
        f"(worst of {len(recoveries)}: first delivery after the server was ready; "
        f"median {sorted(recoveries)[len(recoveries) // 2]:.2f} s)"
        if recoveries
        else ""
    )
    return figures


FAULTS: dict[str, Callable[[argparse.Namespace, random.Random, Path], Figures]] = {
    "kill": lambda a, rng, d: kill_nine(rng, a.kills, d),
    "restart": lambda a, rng, d: database_restart(rng, a.restarts),
    "disk": lambda a, rng, d: full_disk(d),
    "lock": lambda a, rng, d: lock_held(a.lock_seconds, d),
}


class _Count(logging.Handler):
    """Counts the library's log lines at ERROR and above (and keeps them off stderr)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def run(argv: list[str] | None = None) -> list[Figures]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--lock-seconds", type=float, default=30.0)
    parser.add_argument("--only", nargs="*", choices=sorted(FAULTS), default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fault suite, seed {seed} (replay with --seed {seed})", flush=True)
    results = []
    counter = _Count()
    logger = logging.getLogger("resthooks")
    logger.addHandler(counter)
    try:
        with tempfile.TemporaryDirectory(prefix="rh-faults-") as tmp:
            for name in args.only or list(FAULTS):
                counter.count = 0
                figures = FAULTS[name](args, random.Random(f"{seed}:{name}"), Path(tmp))
                figures.note += f" [{counter.count} error log lines in this process]"
                print(figures.line(), flush=True)
                results.append(figures)
    finally:
        logger.removeHandler(counter)
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        child_worker(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_emitter":
        child_emitter(sys.argv[2], int(sys.argv[3]))
    else:
        run()
