"""The single-thread engine against nginx: ``deliver_due`` beside a plain urllib3 loop.

Run it from the repository root:

    python bench/bench_engine.py [--deliveries 6000] [--block 100] [--profile STORE]

nginx (see ``bench/_nginx.py``; the run is skipped with a message when it is not installed)
listens on loopback and answers 204 to every POST, so the receiver costs the client side
nothing it can see. The clients take turns, one block of ``--block`` deliveries at a time,
the order rotating, so a burst of load from elsewhere on a shared machine hits them alike:

- ``plain urllib3``: a loop of ``urllib3.PoolManager().request("POST", ...)`` with the body
  and headers a delivery carries (the baseline);
- ``engine, MemoryStore``: ``Dispatcher.emit_many`` of a block of events to one hook, then
  ``Dispatcher.deliver_due()`` until the block is delivered, on one thread, with the system
  clock and the default ``Urllib3Transport`` (loopback allowed): emit, claim, sign, send,
  log the attempt and record, everything a delivery costs;
- ``engine, SQLiteStore``: the same on a SQLite file (``synchronous="NORMAL"``, the default).

It prints, per client, the rate over all blocks, the best block, the process's CPU time per
delivery, and the ratio to the plain loop (overall, best block, median of the blocks' pairs).
Targets (issue 16): MemoryStore at 1.0x or better, SQLite at 0.8x or better.

``--profile memory|sqlite`` runs that engine alone under cProfile instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import urllib3
from _common import BODY, ENTITY, Plain, loopback_engine, measure, print_against_baseline
from _nginx import MISSING, Nginx, available

from resthooks.stores import MemoryStore, SQLiteStore, Store


class Engine:
    """``emit_many`` a block of events to one hook, then ``deliver_due``: the whole path."""

    def __init__(self, url: str, block: int, store: Store) -> None:
        self.size, self.store = block, store
        self.dispatcher, self.transport = loopback_engine(store, url)
        self.events = [("party/created", ENTITY, "bench")] * block

    def block(self) -> None:
        self.dispatcher.emit_many(self.events)
        delivered = 0
        while delivered < self.size:
            summary = self.dispatcher.deliver_due()
            assert summary.delivered, summary
            delivered += summary.delivered

    def close(self) -> None:
        self.transport.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


Client = Plain | Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=6000, help="per client")
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--profile", choices=["memory", "sqlite"])
    parser.add_argument("--sort", default="tottime", help="the profile's sort column")
    args = parser.parse_args()
    if not available():
        print(MISSING)
        return
    blocks = max(args.deliveries // args.block, 1)
    with tempfile.TemporaryDirectory() as tmp, Nginx(["127.0.0.1"]) as nginx:
        url = f"http://127.0.0.1:{nginx.port}/hook"
        clients: dict[str, Client] = {
            "plain urllib3": Plain(url, args.block, signed=True),
            "engine, MemoryStore": Engine(url, args.block, MemoryStore()),
            "engine, SQLiteStore": Engine(url, args.block, SQLiteStore(Path(tmp, "bench.db"))),
        }
        try:
            if args.profile:
                import cProfile  # noqa: PLC0415 - only when asked
                import pstats  # noqa: PLC0415

                engine = clients[
                    f"engine, {'MemoryStore' if args.profile == 'memory' else 'SQLiteStore'}"
                ]
                engine.block()
                profiler = cProfile.Profile()
                profiler.runcall(lambda: [engine.block() for _ in range(blocks)])
                pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)
                return
            measure(clients, 2)  # warm up: first connections, caches
            results = measure(clients, blocks)
        finally:
            for client in clients.values():
                client.close()
    n = blocks * args.block
    print(
        f"CPython {platform.python_version()}, urllib3 {urllib3.__version__}, "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, load average "
        f"{os.getloadavg()[0]:.1f}; nginx on loopback; {n} deliveries per client in blocks of "
        f"{args.block}, taking turns; body {len(BODY)} bytes"
    )
    print_against_baseline(results, n, args.block)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
