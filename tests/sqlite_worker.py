"""A delivery worker process for the SQLite process tests: drains the outbox, then exits.

Usage: ``python sqlite_worker.py DB [--batch N] [--lease SECONDS] [--total SECONDS]``.
It loops ``Dispatcher.deliver_due`` with the system clock and exits 0 once no delivery in
the file is pending or in flight (waiting, meanwhile, for the leases of dead workers).
"""

from __future__ import annotations

import argparse
import sys
import time

from resthooks import Dispatcher, SystemClock, Timeouts
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY


def build_dispatcher(store: SQLiteStore, *, lease: float, total: float) -> Dispatcher:
    """The one place the worker's Dispatcher is built; its network policy lets it reach the
    loopback receiver."""
    return Dispatcher(
        store,
        clock=SystemClock(),
        network_policy=LOOPBACK_POLICY,
        timeouts=Timeouts(connect=min(0.5, total), total=total),
        lease=lease,
        max_in_flight_per_host=None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--total", type=float, default=2.0)
    args = parser.parse_args(argv)
    store = SQLiteStore(args.db)
    dispatcher = build_dispatcher(store, lease=args.lease, total=args.total)
    try:
        while True:
            if dispatcher.deliver_due(batch_size=args.batch).attempts:
                continue
            counts = store.stats().deliveries
            if counts["pending"] + counts["in_flight"] == 0:
                return 0
            time.sleep(0.05)  # a test script, not the core: waiting on the wall clock is fine
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
