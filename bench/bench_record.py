"""The cost of claiming and recording outcomes, against a plain SQLite loop in the same run.

Run: ``python bench/bench_record.py [--deliveries 20000] [--rounds 5] [--before REV]``. No
network: every outcome is recorded as delivered (with an attempt) or, for one in five, as a
retry. The baseline is a plain ``sqlite3`` loop doing the same number of transactions, each
updating ten rows by rowid, on a file of the same size. Rounds alternate store and baseline;
the median ratio is printed. Made for ``bench/before_after.py``, to see what a change to
``record`` costs.

Three shapes: ``10 hooks, batch 10`` (claims of 10 without a per-host limit, what the first
version measured) and ``1,000 hooks on 100 hosts, batch 100`` (claims of 100 under the
per-host limit of 30 that does not bind, with 1,000 deliveries held in flight, records of
100: what ``bench_async.py`` has the async worker do at 1,024 in flight; and the same under
the default per-host limit of 4, 3 of each host's 4 held in flight). Each line also gives
the CPU time of the process per outcome (``time.process_time``), the steadier figure on a
shared machine.

With ``--before REV`` the ``SQLiteStore`` of that git revision runs beside the current one
(each on its own file), rounds interleaved, and after / before is printed per shape.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _before import load_before

from resthooks import Attempt, Hook, Outcome, OutcomeKind
from resthooks.stores import MemoryStore, SQLiteStore, Store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LATER = T0 + timedelta(days=1)
LEASE = LATER + timedelta(hours=1)


class Shape:
    def __init__(
        self, name: str, hooks: int, hosts: int, batch: int, per_host: int | None, held: int
    ) -> None:
        self.name, self.hooks, self.hosts = name, hooks, hosts
        self.batch, self.per_host, self.held = batch, per_host, held


SHAPES = (
    Shape("10 hooks, batch 10", 10, 10, 10, None, 0),
    Shape("1,000 hooks on 100 hosts, batch 100, per-host limit 30", 1000, 100, 100, 30, 10),
    Shape("1,000 hooks on 100 hosts, batch 100, per-host limit 4", 1000, 100, 100, 4, 3),
)


def _fill(store: Store, count: int, shape: Shape) -> None:
    for n in range(shape.hooks):
        store.add_hook(
            Hook(
                id=f"hook_{n:05d}",
                owner="acme",
                event="party/created",
                target_url=f"https://h{n % shape.hosts}.example.com/{n}",
                created_at=T0,
                updated_at=T0,
            ),
            max_per_owner=None,
        )
    for n in range(count // shape.hooks):
        store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0 + n * timedelta(0, 1))
    if shape.held:
        # Hold some of each host's slots, as a worker with attempts in flight does.
        store.claim_due(
            now=LATER,
            limit=shape.held * shape.hosts,
            lease_until=LEASE,
            max_in_flight_per_host=shape.held,
        )


def _outcomes(claims: list[Any], n: int) -> tuple[list[Outcome], int]:
    outcomes = []
    for c in claims:
        n += 1
        retry = n % 5 == 0 and c.delivery.attempts == 0
        attempt = Attempt(
            delivery_id=c.delivery.id,
            number=c.delivery.attempts + 1,
            started_at=LATER,
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
                next_attempt_at=LATER if retry else None,
            )
        )
    return outcomes, n


def _drain(store: Store, shape: Shape) -> tuple[float, float, int]:
    """Wall time, CPU time and outcomes recorded, claiming and recording until drained."""
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    while claims := store.claim_due(
        now=LATER,
        limit=shape.batch,
        lease_until=LEASE,
        max_in_flight_per_host=None if shape.per_host is None else shape.per_host,
    ):
        outcomes, n = _outcomes(claims, n)
        store.record(outcomes, now=LATER)
    return time.perf_counter() - start, time.process_time() - cpu, n


def _plain(path: Path, count: int, batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT, n INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, 'pending', 0)", ((i,) for i in range(count)))
    start = time.perf_counter()
    for first in range(0, count, batch):
        for _ in range(2):  # a claim and a record: two transactions per batch
            conn.execute("BEGIN IMMEDIATE")
            for i in range(first, first + batch):
                conn.execute("UPDATE t SET state = 'done', n = n + 1 WHERE id = ?", (i,))
            conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also run the SQLiteStore of REV")
    parser.add_argument("--no-memory", action="store_true", help="skip MemoryStore")
    args = parser.parse_args()
    count = args.deliveries
    stores: dict[str, Callable[[Path], Store]] = {"SQLiteStore": SQLiteStore}
    if args.before:
        before = load_before(args.before, "resthooks.stores.sqlite").SQLiteStore
        stores[f"SQLiteStore {args.before}"] = before
    if not args.no_memory:
        stores["MemoryStore"] = lambda _path: MemoryStore()
    with tempfile.TemporaryDirectory() as tmp:
        for number, shape in enumerate(SHAPES):
            ratios: dict[str, list[float]] = {name: [] for name in stores}
            cpu: dict[str, list[float]] = {name: [] for name in stores}
            for r in range(args.rounds):
                plain = _plain(Path(tmp, f"plain{number}-{r}.db"), count, 10)
                names = list(stores)
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    file = f"{name.replace(' ', '_')}-{number}-{r}.db"
                    store = stores[name](Path(tmp, file))
                    _fill(store, count, shape)
                    wall, used, n = _drain(store, shape)
                    ratios[name].append(plain / wall)
                    cpu[name].append(used / n * 1e6)
                    close = getattr(store, "close", None)
                    if close is not None:
                        close()
            print(f"{shape.name}: claim + record of {count:,} deliveries, {args.rounds} rounds")
            for name in stores:
                print(
                    f"  {name}: {statistics.median(ratios[name]):.2f}x the plain SQLite loop "
                    f"(median), {statistics.median(cpu[name]):.1f} us CPU per outcome"
                )
            if args.before:
                after, old = "SQLiteStore", f"SQLiteStore {args.before}"
                pairs = [b / a for a, b in zip(cpu[after], cpu[old], strict=True)]
                print(
                    f"  after / before, CPU per outcome: {statistics.median(pairs):.2f}x less "
                    f"(rounds {min(pairs):.2f}-{max(pairs):.2f}x)"
                )


if __name__ == "__main__":
    main()
