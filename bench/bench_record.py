"""The cost of claiming and recording outcomes, against a plain SQLite loop in the same run.

Run: ``python bench/bench_record.py [--deliveries 20000] [--rounds 5]``. No network: every
outcome is recorded as delivered (with an attempt) or, for one in five, as a retry. The
baseline is a plain ``sqlite3`` loop doing the same number of transactions, each updating
ten rows by rowid, on a file of the same size. Rounds alternate store and baseline; the
median ratio is printed. Made for ``bench/before_after.py``, to see what a change to
``record`` costs.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from resthooks import Attempt, Hook, Outcome, OutcomeKind
from resthooks.stores import MemoryStore, SQLiteStore, Store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
BATCH = 10


def _fill(store: Store, count: int) -> None:
    for n in range(10):
        store.add_hook(
            Hook(
                id=f"hook_{n}",
                owner="acme",
                event="party/created",
                target_url=f"https://h{n}.example.com/",
                created_at=T0,
                updated_at=T0,
            ),
            max_per_owner=None,
        )
    for n in range(count // 10):
        store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0 + n * timedelta(0, 1))


def _drain(store: Store) -> float:
    now = T0 + timedelta(days=1)
    start = time.perf_counter()
    n = 0
    while claims := store.claim_due(now=now, limit=BATCH, lease_until=now + timedelta(hours=1)):
        outcomes = []
        for c in claims:
            n += 1
            retry = n % 5 == 0 and c.delivery.attempts == 0
            attempt = Attempt(
                delivery_id=c.delivery.id,
                number=c.delivery.attempts + 1,
                started_at=now,
                duration=0.01,
                status=503 if retry else 204,
                error_kind="http" if retry else None,
            )
            outcomes.append(
                Outcome(
                    delivery_id=c.delivery.id,
                    token=c.token,
                    kind=OutcomeKind.RETRY if retry else OutcomeKind.DELIVERED,
                    attempt=attempt,
                    next_attempt_at=now if retry else None,
                )
            )
        store.record(outcomes, now=now)
    return time.perf_counter() - start


def _plain(path: Path, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT, n INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, 'pending', 0)", ((i,) for i in range(count)))
    start = time.perf_counter()
    for first in range(0, count, BATCH):
        for _ in range(2):  # a claim and a record: two transactions per batch
            conn.execute("BEGIN IMMEDIATE")
            for i in range(first, first + BATCH):
                conn.execute("UPDATE t SET state = 'done', n = n + 1 WHERE id = ?", (i,))
            conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    count = args.deliveries
    ratios: dict[str, list[float]] = {"SQLiteStore": [], "MemoryStore": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            plain = _plain(Path(tmp, f"plain{r}.db"), count)
            sqlite_store = SQLiteStore(Path(tmp, f"store{r}.db"))
            _fill(sqlite_store, count)
            ratios["SQLiteStore"].append(plain / _drain(sqlite_store))
            sqlite_store.close()
            memory = MemoryStore()
            _fill(memory, count)
            ratios["MemoryStore"].append(plain / _drain(memory))
    print(f"claim + record of {count:,} deliveries, {BATCH} a batch, {args.rounds} rounds")
    for name, values in ratios.items():
        print(f"{name}: {statistics.median(values):.2f}x the plain SQLite loop (median)")


if __name__ == "__main__":
    main()
