"""What ordering keys cost on the delivery path, against the plain path in the same run.

Run it from the repository root:

    python bench/bench_ordering.py [--deliveries 3000] [--stores memory,sqlite]

A receiver runs in a subprocess (the keep-alive server of ``_common.py`` on loopback,
answering 204). For each store, the clients take turns sending blocks of 100 deliveries to
one hook (``emit`` x 100, then ``deliver_due()``), so a burst of load from elsewhere hits
them alike:

- ``plain``: no ordering key, the baseline;
- ``100 keys``: every emit its own key (the cost of a key when nothing waits);
- ``10 keys x 10``: ten keys of ten emits each (nine of every ten wait for their turn,
  which passes when the one before is recorded);
- ``1 key x 100``: all one key (the worst case: one delivery per claim).

It prints deliveries per second and CPU per delivery for each, and each keyed client's
ratio to ``plain`` on the same store (median of pairs of blocks run side by side).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from _common import BLOCK, ENTITY, Results, loopback_engine, measure, median_of_pairs, receiver

from resthooks.stores import MemoryStore, SQLiteStore, Store


class Client:
    """``emit`` a block of events to one hook (with the keys of ``keys(i)``), then
    ``deliver_due``."""

    def __init__(self, store: Store, url: str, keys: int | None) -> None:
        self.store = store
        self.dispatcher, self.transport = loopback_engine(store, url, "party/updated")
        self.keys = keys
        self.blocks = 0

    def block(self) -> None:
        self.blocks += 1
        for i in range(BLOCK):
            key = None if self.keys is None else f"party:{self.blocks}:{i % self.keys}"
            self.dispatcher.emit("party/updated", ENTITY, owner="bench", ordering_key=key)
        delivered = 0
        while delivered < BLOCK:
            step = self.dispatcher.deliver_due().delivered
            assert step, "nothing was due"
            delivered += step
        assert delivered == BLOCK, delivered

    def close(self) -> None:
        self.transport.close()
        self.store.close()


CLIENTS = {"plain": None, "100 keys": 100, "10 keys x 10": 10, "1 key x 100": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000, help="per client")
    parser.add_argument("--stores", default="memory,sqlite")
    args = parser.parse_args()
    blocks = max(args.deliveries // BLOCK, 1)
    with receiver() as url:
        print(
            f"CPython {platform.python_version()}, {platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} cores; {blocks * BLOCK} deliveries per client "
            f"in blocks of {BLOCK}, taking turns"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for kind in args.stores.split(","):

                def make(name: str, kind: str = kind) -> Store:
                    if kind == "memory":
                        return MemoryStore()
                    return SQLiteStore(Path(tmp) / f"{name.replace(' ', '_')}.db")

                clients = {name: Client(make(name), url, keys) for name, keys in CLIENTS.items()}
                measure(clients, 2)  # warm up
                results = measure(clients, blocks)
                for client in clients.values():
                    client.close()
                report(kind, results, blocks * BLOCK)


def report(kind: str, results: Results, n: int) -> None:
    plain_walls, plain_cpu = results["plain"]
    print(f"\n{kind}:")
    for name, (walls, cpu) in results.items():
        line = f"{name:>14}: {n / sum(walls):6.0f}/s  {cpu / n * 1e6:5.0f} us CPU each"
        if name != "plain":
            pairs = median_of_pairs(plain_walls, walls)
            line += f"   {pairs:.2f}x plain (median of pairs), CPU {cpu / plain_cpu - 1:+.0%}"
        print(line)


if __name__ == "__main__":
    main()
