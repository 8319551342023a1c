"""Per-host claims against the backlog: SQLite and PostgreSQL, 1, 10 and 100 hooks per host.

Run from the repository root:

    python bench/bench_claims.py [--store sqlite|postgres|both] [--sizes 10000,100000,1000000]
                                 [--before REV] [--claims 15] [--shapes 1,10,100]
                                 [--maintenance vacuum|analyze|none] [--quick]

For each store and each shape (1,000 hooks on 1,000, 100 or 10 hosts: 1, 10 or 100 hooks per
host), one store per size is loaded (bulk-inserted pending deliveries in fan-out order), the
deliveries of the first tenth of the hosts due a day before the others (hosts that fell
behind: their backlog fills the front of the due queue). In each store those hosts' limit's
worth is claimed and held in flight, then ``claim_due(limit=100, max_in_flight_per_host=4)``
(the worker's claim under the default limit) is timed ``--claims`` times, each claim's
deliveries recorded as delivered (untimed) before the next: every timed claim has to reach
past the saturated hosts' backlog. The stores of every size take their claims in turns, so
the machine's load hits every size alike.
With ``--before REV`` the store of that git revision runs beside the current one on its own
files or schemas, in the same turns, so before and after share the machine's load too.

It prints the median claim time per size and its ratio to the first size: flat means the
claim costs the same at 1,000,000 pending as at 10,000.

On PostgreSQL each load is vacuumed (``VACUUM (ANALYZE)``, the state autovacuum keeps a table
that grew over time in) unless ``--maintenance analyze`` (statistics only: no page of the fresh
rows is all-visible, so index-only scans read the heap) or ``none`` (not even statistics);
with either, autovacuum is off on the table, so that it cannot run beside the timed claims.
``--quick`` is a short run: sizes 10,000 and 100,000, 5 claims, 1 and 10 hooks per host.
"""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _before import load_before

from resthooks import Hook, Outcome, OutcomeKind

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
HOOKS = 1000
SHAPES = (1, 10, 100)  # hooks per host


def _hooks(per_host: int) -> list[Hook]:
    return [
        Hook(
            id=f"hook_{n:05d}",
            owner="acme",
            event="party/created",
            target_url=f"https://h{n // per_host}.example.com/{n}",
            created_at=T0 + timedelta(microseconds=n),
            updated_at=T0,
        )
        for n in range(HOOKS)
    ]


# -- bulk loading ------------------------------------------------------------------------------


def _table(conn: sqlite3.Connection, name: str) -> str:
    """The store's table ``name`` in this file: prefixed (``resthooks_``) since schema 3."""
    prefixed = f"resthooks_{name}"
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (prefixed,)).fetchone()
    return prefixed if found else name


def _grow_sqlite(store: Any, emits_from: int, emits_to: int, hot: int) -> None:
    """Append pending deliveries of emits ``emits_from..emits_to`` to every hook; those of the
    first ``hot`` hooks are due a day before the others (their hosts fell behind)."""
    conn = store._conn()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        f"INSERT OR IGNORE INTO {_table(conn, 'messages')} "
        "(id, owner, event, created_at, body, remaining) "
        "VALUES (1, 'acme', 'party/created', 0, x'7b7d', 0)"
    )
    t0 = (T0 - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?) "
        f"INSERT INTO {_table(conn, 'deliveries')} "
        "(salt, hook_id, message_id, state, attempts, next_attempt_at, "
        "updated_at, due_at) SELECT random() & 0x7fffffffffffffff, h.id, 1, 'pending', 0, "
        "d + k.i, d + k.i, d + k.i FROM k CROSS JOIN (SELECT id, created_at, "
        f"CASE WHEN id < ? THEN ? ELSE ? END AS d FROM {_table(conn, 'hooks')}) h "
        "ORDER BY k.i, h.created_at, h.id",
        (emits_from, emits_to, f"hook_{hot:05d}", t0, t0 + 86_400_000_000),
    )
    conn.execute("COMMIT")


def _grow_postgres(
    store: Any, emits_from: int, emits_to: int, hot: int, *, maintenance: str = "vacuum"
) -> None:
    from psycopg import sql  # noqa: PLC0415 - optional

    s = sql.Identifier(store.schema)
    with store._pool.connection() as conn:
        if maintenance != "vacuum":
            # Nor may autovacuum set the map while the claims are timed.
            conn.execute(
                sql.SQL("ALTER TABLE {}.deliveries SET (autovacuum_enabled = off)").format(s)
            )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.messages (id, body) VALUES (1, '\\x7b7d') ON CONFLICT DO NOTHING"
            ).format(s)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {s}.deliveries (id, hook_id, owner, event, message_id, host, state, "
                "next_attempt_at, due_at, created_at, updated_at) "
                "SELECT 'msg_' || md5(k::text || h.id), h.id, h.owner, h.event, 1, h.host, "
                "'pending', t, t, t, t FROM generate_series(%s::int, %s::int) k "
                "CROSS JOIN {s}.hooks h, "
                "LATERAL (SELECT %s::timestamptz + k * interval '1 microsecond' "
                "+ CASE WHEN h.id < %s THEN interval '0' ELSE interval '1 day' END AS t) x "
                "ORDER BY k, h.created_at, h.id"
            ).format(s=s),
            (emits_from, emits_to - 1, T0, f"hook_{hot:05d}"),
        )
        # As autovacuum keeps a table that grew over time: statistics and the visibility map
        # up to date (index-only scans read no heap page), and no vacuum of a million fresh
        # rows running beside the timed claims. With --maintenance analyze: the statistics
        # only, no page of the fresh rows marked all-visible; none: not even statistics.
        if maintenance != "none":
            what = "VACUUM (ANALYZE)" if maintenance == "vacuum" else "ANALYZE"
            conn.execute(sql.SQL(what + " {}.deliveries").format(s))


# -- measuring ---------------------------------------------------------------------------------


def _claim(store: Any, now: datetime) -> float:
    start = time.perf_counter()
    claims = store.claim_due(
        now=now, limit=100, lease_until=now + timedelta(hours=1), max_in_flight_per_host=4
    )
    elapsed = time.perf_counter() - start
    assert claims, "nothing claimed"
    store.record(
        [
            Outcome(delivery_id=c.delivery.id, token=c.token, kind=OutcomeKind.DELIVERED)
            for c in claims
        ],
        now=now,
    )
    return elapsed


def run(
    kind: str,
    makers: dict[str, Callable[[str], Any]],
    grow: Callable[[Any, int, int, int], None],
    sizes: list[int],
    claims: int,
    shapes: tuple[int, ...] = SHAPES,
    discard: Callable[[Any], None] | None = None,
) -> None:
    print(f"\n## {kind}: claim_due(limit=100, max_in_flight_per_host=4), median of {claims}")
    header = f"{'hooks/host':>10s} {'version':>8s}" + "".join(f" {n:>12,d}" for n in sizes)
    print(header + "   last/first")
    for per_host in shapes:
        # One store per version and size, all loaded first, then claimed in turns: the
        # machine's load hits every size alike (sizes measured minutes apart did not).
        stores = {
            (name, size): make(f"{kind}_{per_host}_{name}_{size}")
            for name, make in makers.items()
            for size in sizes
        }
        hosts = HOOKS // per_host
        hot_hosts = max(1, hosts // 10)
        for (_, size), store in stores.items():
            for hook in _hooks(per_host):
                store.add_hook(hook, max_per_owner=None)
            grow(store, 0, size // HOOKS, hot_hosts * per_host)
        now = T0 + timedelta(days=400)
        # The hot hosts' backlog is at the front of the due queue; their limit's worth is in
        # flight (held by a slow worker, say), so a claim must reach past all of it.
        held = {
            key: store.claim_due(
                now=now,
                limit=4 * hot_hosts,
                lease_until=now + timedelta(hours=1),
                max_in_flight_per_host=4,
            )
            for key, store in stores.items()
        }
        samples: dict[tuple[str, int], list[float]] = {key: [] for key in stores}
        keys = list(stores)
        for i in range(claims):
            for key in keys[i % len(keys) :] + keys[: i % len(keys)]:
                samples[key].append(_claim(stores[key], now))
        for name in makers:
            times = [statistics.median(samples[name, size]) for size in sizes]
            print(
                f"{per_host:>10d} {name:>8s}"
                + "".join(f" {t * 1000:9.2f} ms" for t in times)
                + f"   {times[-1] / times[0]:8.2f}x"
            )
        for key, store in stores.items():
            store.record(
                [
                    Outcome(delivery_id=c.delivery.id, token=c.token, kind=OutcomeKind.RELEASE)
                    for c in held[key]
                ],
                now=now,
            )
            if discard is not None:
                discard(store)
            store.close()


def _drop_schema(store: Any) -> None:
    from psycopg import sql  # noqa: PLC0415 - optional

    with store._pool.connection() as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(store.schema)))


@contextmanager
def _postgres() -> Iterator[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "postgres"))
    import support  # noqa: PLC0415 - the tests' cluster helper

    with support.start_cluster(dict(support.TEST_SETTINGS)) as cluster:
        yield cluster.conninfo()


def _sqlite_store(cls: Any, folder: Path, tag: str) -> Any:
    return cls(folder / f"{tag}.db")


def _postgres_store(cls: Any, conninfo: str, tag: str) -> Any:
    return cls(conninfo, schema=tag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--before", help="a git revision whose store to compare")
    parser.add_argument("--claims", type=int, default=15)
    parser.add_argument("--shapes", default="1,10,100", help="hooks per host, comma-separated")
    parser.add_argument(
        "--maintenance",
        choices=["vacuum", "analyze", "none"],
        default="vacuum",
        help="PostgreSQL, after each load: VACUUM (ANALYZE), ANALYZE only (no visibility "
        "map: unvacuumed), or nothing; autovacuum is off on the table but for vacuum",
    )
    parser.add_argument("--quick", action="store_true", help="10k and 100k, 5 claims, 1 and 10")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.claims, args.shapes = "10000,100000", 5, "1,10"
    sizes = [int(n) for n in args.sizes.split(",")]
    shapes = tuple(int(n) for n in args.shapes.split(","))
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; 1,000 hooks; sizes {sizes}"
    )
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.store in ("sqlite", "both"):
            from resthooks.stores import SQLiteStore  # noqa: PLC0415

            classes: dict[str, Any] = {"after": SQLiteStore}
            if args.before:
                classes["before"] = load_before(args.before, "resthooks.stores.sqlite").SQLiteStore
            makers = {
                name: functools.partial(_sqlite_store, cls, Path(tmp))
                for name, cls in classes.items()
            }
            run("SQLite", makers, _grow_sqlite, sizes, args.claims, shapes)
        if args.store in ("postgres", "both"):
            conninfo = stack.enter_context(_postgres())
            from resthooks.stores.postgres import PostgresStore  # noqa: PLC0415

            classes = {"after": PostgresStore}
            if args.before:
                classes["before"] = load_before(
                    args.before, "resthooks.stores.postgres"
                ).PostgresStore
            makers = {
                name: functools.partial(_postgres_store, cls, conninfo)
                for name, cls in classes.items()
            }
            grow = functools.partial(_grow_postgres, maintenance=args.maintenance)
            label = f"PostgreSQL, after each load: {args.maintenance}"
            run(label, makers, grow, sizes, args.claims, shapes, _drop_schema)


if __name__ == "__main__":
    main()
