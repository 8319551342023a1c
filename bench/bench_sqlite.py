"""SQLiteStore benchmarks: fan-out, end-to-end delivery, backlog scaling, threads.

Run: ``python bench/bench_sqlite.py [--quick]``. Every figure is printed next to a baseline
measured in the same run, as a ratio: the machines are shared and noisy, so absolute
numbers move from run to run while ratios hold better.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import urllib3

from resthooks import Dispatcher, Hook, SystemClock
from resthooks.stores import MemoryStore, SQLiteStore, Store
from resthooks.testing import LOOPBACK_POLICY, FakeClock, RecordingTransport
from resthooks.transports import Urllib3Transport

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _table(conn: sqlite3.Connection, name: str) -> str:
    """The store's table ``name`` in this file: prefixed (``resthooks_``) since schema 3."""
    prefixed = f"resthooks_{name}"
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (prefixed,)).fetchone()
    return prefixed if found else name


def hook(n: int, url: str) -> Hook:
    return Hook(
        id=f"hook_{n:07d}",
        owner="acme",
        event="party/created",
        target_url=url,
        created_at=T0,
        updated_at=T0,
    )


def add_hooks(store: Store, count: int, url: str | None = None) -> None:
    if isinstance(store, SQLiteStore):  # one transaction, not one per hook
        conn = store._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO resthooks_hooks (id, owner, event, target_url, host, description, state, "
            "created_at, updated_at) VALUES (?, 'acme', 'party/created', ?, ?, '', 'active', "
            "0, 0)",
            (
                (f"hook_{n:07d}", url or f"https://h{n}.example.com/", f"h{n}.example.com")
                for n in range(count)
            ),
        )
        conn.execute("COMMIT")
        return
    for n in range(count):
        store.add_hook(hook(n, url or f"https://h{n}.example.com/"), max_per_owner=None)


# -- fan-out ---------------------------------------------------------------------------------


def _raw_insert(conn: sqlite3.Connection, rows: int) -> float:
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", ((f"m{i}", "h", i) for i in range(rows)))
    conn.execute("COMMIT")
    return rows / (time.perf_counter() - start)


def _store_class_from(source: Path) -> type[SQLiteStore]:
    """The SQLiteStore of another version of ``sqlite.py`` (``git show REF:...``), loaded
    beside the current one, for a before/after in one run."""
    import importlib.util  # noqa: PLC0415 - only --before needs it

    spec = importlib.util.spec_from_loader("resthooks.stores._sqlite_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "resthooks.stores"
    sys.modules[spec.name] = module
    exec(compile(source.read_text(), str(source), "exec"), module.__dict__)
    return module.SQLiteStore  # type: ignore[no-any-return]


def bench_fan_out(folder: Path, hooks: int, rounds: int, before: Path | None = None) -> None:
    print(f"\n## Fan-out: one emit to {hooks:,} hooks ({rounds} rounds, interleaved, median)")
    stores: dict[str, Store] = {
        "MemoryStore": MemoryStore(),
        "SQLiteStore NORMAL": SQLiteStore(folder / "fan-normal.db"),
        "SQLiteStore FULL": SQLiteStore(folder / "fan-full.db", synchronous="FULL"),
    }
    if before is not None:
        stores["SQLiteStore NORMAL (before)"] = _store_class_from(before)(folder / "fan-old.db")
    for store in stores.values():
        add_hooks(store, hooks)
    # Baseline: as many narrow rows in one executemany transaction, into a table without
    # indexes: about the most SQLite does from Python on this machine at this moment.
    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute("CREATE TABLE t (a TEXT, b TEXT, c INTEGER)")
    samples: dict[str, list[float]] = {name: [] for name in stores}
    samples["raw executemany baseline"] = []
    for r in range(rounds):  # interleaved, so a burst of load from elsewhere hits every row
        samples["raw executemany baseline"].append(_raw_insert(raw, hooks))
        for name, store in stores.items():
            start = time.perf_counter()
            made = store.enqueue(
                owner="acme", event="party/created", body=b'{"n":1}', now=T0 + timedelta(r)
            )
            samples[name].append(len(made) / (time.perf_counter() - start))
    raw.close()
    for store in stores.values():
        store.close()
    base = statistics.median(samples["raw executemany baseline"])
    for name, values in samples.items():
        rate = statistics.median(values)
        print(
            f"{name:28s} {rate:12,.0f} deliveries/s (best {max(values):10,.0f})"
            f"   {rate / base:5.2f}x baseline"
        )


# -- fan-out targets: emit_many over many owners, one emit to 10,000 hooks ---------------------


def _owners_store(cls: type, path: Path, owners: int, per_owner: int) -> Store:
    store = cls(path)
    conn = store._conn()  # type: ignore[attr-defined]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        f"INSERT INTO {_table(conn, 'hooks')} (id, owner, event, target_url, host, "
        "description, state, created_at, updated_at) "
        "VALUES (?, ?, 'party/created', ?, ?, '', 'active', 0, 0)",
        (
            (f"hook_{o:04d}_{n:03d}", f"owner{o}", f"https://h{n}.example.com/{o}", f"h{n}")
            for o in range(owners)
            for n in range(per_owner)
        ),
    )
    conn.execute("COMMIT")
    return store  # type: ignore[no-any-return]


def bench_fan_out_targets(folder: Path, rounds: int, before: str | None) -> None:
    """Deliveries enqueued per second through the Dispatcher: 500 owners x 20 hooks (one
    event per owner: ``emit_many`` where the store has it, else one ``emit`` each) and one
    emit to 10,000 hooks; the store of ``before`` beside the current one, interleaved."""
    print(f"\n## Fan-out targets through the Dispatcher ({rounds} rounds, interleaved, median)")
    classes: dict[str, type] = {"after": SQLiteStore}
    if before:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _before import load_before  # noqa: PLC0415 - beside this script

        classes["before"] = load_before(before, "resthooks.stores.sqlite").SQLiteStore
    payload = {"id": 1, "name": "Acme Ltd"}
    rates: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for name, cls in classes.items() if r % 2 == 0 else reversed(classes.items()):
            store = _owners_store(cls, folder / f"owners-{name}-{r}.db", 500, 20)
            dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
            events = [("party/created", payload, f"owner{o}") for o in range(500)]
            start = time.perf_counter()
            if hasattr(store, "enqueue_many"):
                made = len(dispatcher.emit_many(events))
            else:
                made = sum(len(dispatcher.emit(e, p, owner=o)) for e, p, o in events)
            rate = made / (time.perf_counter() - start)
            assert made == 10_000, made
            rates.setdefault((name, "500 owners x 20 hooks"), []).append(rate)
            store.close()
            store = _owners_store(cls, folder / f"one-{name}-{r}.db", 1, 10_000)
            dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
            start = time.perf_counter()
            made = len(dispatcher.emit("party/created", payload, owner="owner0"))
            rate = made / (time.perf_counter() - start)
            assert made == 10_000, made
            rates.setdefault((name, "one emit to 10,000 hooks"), []).append(rate)
            store.close()
    for case in ("500 owners x 20 hooks", "one emit to 10,000 hooks"):
        line = f"{case:28s}"
        for name in classes:
            values = rates[(name, case)]
            line += f"  {name} {statistics.median(values):9,.0f}/s (best {max(values):9,.0f})"
        if before:
            ratios = [
                a / b for a, b in zip(rates[("after", case)], rates[("before", case)], strict=True)
            ]
            line += f"  after/before {statistics.median(ratios):.2f}x"
        print(line)


# -- end to end ------------------------------------------------------------------------------


SERVE = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def _plain_loop(url: str, count: int) -> float:
    pool = urllib3.PoolManager(retries=False)
    body = b'{"event":"party/created","payload":[{"n":1}]}'
    start = time.perf_counter()
    for _ in range(count):
        response = pool.request(
            "POST", url, body=body, headers={"Content-Type": "application/json"}
        )
        response.data  # noqa: B018 - read the body, as the transport does
    rate = count / (time.perf_counter() - start)
    pool.clear()
    return rate


def _dispatcher_loop(store: Store, url: str, count: int, per_host: int | None) -> float:
    add_hooks(store, 1, url)
    emitter = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
    for n in range(count):
        emitter.emit("party/created", {"n": n}, owner="acme")
    transport = Urllib3Transport(policy=LOOPBACK_POLICY)
    dispatcher = Dispatcher(
        store,
        clock=SystemClock(),
        transport=transport,
        sign_deliveries=False,
        max_in_flight_per_host=per_host,
    )
    start = time.perf_counter()
    summary = dispatcher.deliver_due(batch_size=100)
    rate = count / (time.perf_counter() - start)
    assert summary.delivered == count, summary
    transport.close()
    store.close()
    return rate


def bench_end_to_end(folder: Path, count: int, rounds: int) -> None:
    print(
        f"\n## End to end: {count:,} deliveries to a loopback receiver in another process"
        f" ({rounds} rounds, interleaved, median)"
    )
    server = subprocess.Popen([sys.executable, "-c", SERVE], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = f"http://127.0.0.1:{server.stdout.readline().strip()}/hook"
    plain = "plain urllib3 PoolManager loop"
    samples: dict[str, list[float]] = {}
    try:
        _plain_loop(url, 200)  # warm up the receiver
        for r in range(rounds):
            samples.setdefault(plain, []).append(_plain_loop(url, count))
            for name, make, per_host in (
                ("MemoryStore", MemoryStore, None),
                ("SQLiteStore", partial(SQLiteStore, folder / f"e2e-{r}.db"), None),
                (
                    "SQLiteStore, max_in_flight_per_host=4",
                    partial(SQLiteStore, folder / f"e2e4-{r}.db"),
                    4,
                ),
            ):
                samples.setdefault(name, []).append(_dispatcher_loop(make(), url, count, per_host))
    finally:
        server.terminate()
        server.wait()
    base = statistics.median(samples[plain])
    for name, values in samples.items():
        rate = statistics.median(values)
        print(f"{name:40s} {rate:9,.0f} deliveries/s   {rate / base:5.2f}x plain loop")


# -- backlog scaling -------------------------------------------------------------------------

CLAIMER = """
import statistics, sys, time
from functools import partial
from datetime import datetime, timedelta, timezone
from resthooks.stores import SQLiteStore
store = SQLiteStore(sys.argv[1])
now = datetime(2030, 1, 1, tzinfo=timezone.utc)
per_host = None if sys.argv[2] == "none" else int(sys.argv[2])
samples = []
for _ in range(30):
    start = time.perf_counter()
    claims = store.claim_due(now=now, limit=100, lease_until=now + timedelta(hours=1),
                             max_in_flight_per_host=per_host)
    samples.append(time.perf_counter() - start)
    assert len(claims) == 100, len(claims)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(statistics.median(samples), peak)
store.close()
"""


def bench_backlog(folder: Path, sizes: list[int]) -> None:
    print("\n## Backlog scaling: claim_due(limit=100) on a backlog of pending deliveries")
    print("(in a fresh worker process each time; its peak RSS, VmHWM)")
    db = folder / "backlog.db"
    hooks = 1000
    store = SQLiteStore(db)
    add_hooks(store, hooks)
    emitted = 0
    results = []
    for size in sizes:
        while emitted < size:
            store.enqueue(
                owner="acme",
                event="party/created",
                body=b'{"n":1}',
                now=T0 + timedelta(microseconds=emitted),
            )
            emitted += hooks
        row = [size]
        for per_host in ("none", "4"):
            # Claims in the child mark rows in flight: put them back so every run starts even.
            store._conn().execute(
                "UPDATE resthooks_deliveries SET state = 'pending', token = NULL, lease_until = "
                "NULL, "
                "due_at = next_attempt_at WHERE state = 'in_flight'"
            )
            out = subprocess.run(
                [sys.executable, "-c", CLAIMER, str(db), per_host],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            row += [float(out[0]), int(out[1])]
        results.append(row)
    store.close()
    base_none, base_4 = results[0][1], results[0][3]
    print(
        f"{'pending':>10s} {'claim ms':>9s} {'ratio':>6s} {'RSS MiB':>8s}"
        f" {'per-host ms':>12s} {'ratio':>6s} {'RSS MiB':>8s}"
    )
    for size, t_none, rss_none, t_4, rss_4 in results:
        print(
            f"{size:10,d} {t_none * 1000:9.2f} {t_none / base_none:6.2f} {rss_none / 1024:8.1f}"
            f" {t_4 * 1000:12.2f} {t_4 / base_4:6.2f} {rss_4 / 1024:8.1f}"
        )
    print(f"file size at {sizes[-1]:,}: {os.path.getsize(db) / 2**20:,.0f} MiB")


# -- threads ---------------------------------------------------------------------------------


def _drain(store: SQLiteStore, lock: threading.Lock | None) -> None:
    from resthooks import Outcome, OutcomeKind  # noqa: PLC0415 - only this benchmark needs them

    now = T0 + timedelta(days=1)
    while True:
        with lock or contextlib.nullcontext():
            claims = store.claim_due(now=now, limit=10, lease_until=now + timedelta(hours=1))
        if not claims:
            return
        outcomes = [
            Outcome(delivery_id=c.delivery.id, token=c.token, kind=OutcomeKind.DELIVERED)
            for c in claims
        ]
        with lock or contextlib.nullcontext():
            store.record(outcomes, now=now)


class _OneConnection:
    """Stands in for the store's thread-local: every thread gets the same connection."""

    def __init__(self, conn: object) -> None:
        self.conn = conn


def bench_threads(folder: Path, count: int, threads: int) -> None:
    print(f"\n## {threads} threads claiming (10 at a time) and recording {count:,} deliveries")
    rates = {}
    for shared in (False, True):
        name = "one connection behind a lock" if shared else "a connection per thread"
        store = SQLiteStore(folder / f"threads-{shared}.db")
        add_hooks(store, 100)
        for n in range(count // 100):
            store.enqueue(
                owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=n)
            )
        lock = None
        if shared:
            lock = threading.Lock()
            store._local = _OneConnection(store._conn())  # type: ignore[assignment]
        pool = [threading.Thread(target=_drain, args=(store, lock)) for _ in range(threads)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        rates[name] = count / (time.perf_counter() - start)
        assert store.stats().deliveries["delivered"] == count
        store.close()
    base = rates["one connection behind a lock"]
    for name, rate in rates.items():
        print(f"{name:32s} {rate:9,.0f} deliveries/s   {rate / base:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--only",
        choices=["fan-out", "fan-out-targets", "end-to-end", "backlog", "threads"],
        help="one section",
    )
    parser.add_argument(
        "--before-file",
        type=Path,
        help="fan-out: also time the SQLiteStore of this copy of sqlite.py (e.g. from "
        "`git show main:src/resthooks/stores/sqlite.py`), in the same rounds",
    )
    parser.add_argument("--before", help="a git revision whose store to compare (fan-out-targets)")
    args = parser.parse_args()
    print(
        f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sections = {
            "fan-out": lambda: bench_fan_out(
                folder, *((1000, 3) if args.quick else (10_000, 11)), before=args.before_file
            ),
            "fan-out-targets": lambda: bench_fan_out_targets(
                folder, 2 if args.quick else 7, args.before
            ),
            "end-to-end": lambda: bench_end_to_end(
                folder, *((300, 2) if args.quick else (2000, 5))
            ),
            "backlog": lambda: bench_backlog(
                folder, [10_000, 20_000] if args.quick else [10_000, 100_000, 1_000_000]
            ),
            "threads": lambda: bench_threads(folder, 2000 if args.quick else 20_000, 4),
        }
        for name, run in sections.items():
            if args.only in (None, name):
                run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the benchmark process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
