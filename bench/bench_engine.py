"""The single-thread engine against nginx: ``deliver_due`` beside a plain urllib3 loop.

Run it from the repository root:

    python bench/bench_engine.py [--deliveries 6000] [--block 100] [--quick] [--profile STORE]

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

``--quick`` is ``--deliveries 1000``. ``--profile memory|sqlite`` runs that engine alone
under cProfile instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import urllib3
from _nginx import MISSING, Nginx, available

from resthooks import Dispatcher, SystemClock
from resthooks.stores import MemoryStore, SQLiteStore, Store
from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import Urllib3Transport

ENTITY = {
    "id": 11587,
    "type": "person",
    "firstName": "Scott",
    "lastName": "Spacey",
    "jobTitle": "Creative Director",
    "createdAt": "2015-09-15T10:43:23Z",
    "updatedAt": "2015-09-15T10:43:23Z",
    "addresses": [{"id": 12135, "city": "Chicago", "country": "United States"}],
}
BODY = json.dumps({"event": "party/created", "payload": [ENTITY]}, separators=(",", ":"))


class Plain:
    """A loop of ``PoolManager.request`` POSTs: the baseline."""

    def __init__(self, url: str, block: int) -> None:
        self.url, self.size = url, block
        self.pool = urllib3.PoolManager()
        self.headers = {
            "Content-Type": "application/json",
            "User-Agent": "resthooks/bench",
            "webhook-id": "msg_" + "0" * 32,
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1," + "0" * 44,
        }
        self.body = BODY.encode()

    def block(self) -> None:
        for _ in range(self.size):
            response = self.pool.request("POST", self.url, body=self.body, headers=self.headers)
            assert response.status == 204, response.status

    def close(self) -> None:
        self.pool.clear()


class Engine:
    """``emit_many`` a block of events to one hook, then ``deliver_due``: the whole path."""

    def __init__(self, url: str, block: int, store: Store) -> None:
        self.size, self.store = block, store
        self.transport = Urllib3Transport(policy=LOOPBACK_POLICY)
        self.dispatcher = Dispatcher(
            store, clock=SystemClock(), transport=self.transport, network_policy=LOOPBACK_POLICY
        )
        self.dispatcher.subscribe("party/created", url, owner="bench")
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


def measure(clients: dict[str, Client], blocks: int) -> dict[str, tuple[list[float], float]]:
    """Each client's block wall times and total CPU seconds, blocks taken in turns."""
    wall: dict[str, list[float]] = {name: [] for name in clients}
    cpu = dict.fromkeys(clients, 0.0)
    names = list(clients)
    for i in range(blocks):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started, started_cpu = time.perf_counter(), time.process_time()
            clients[name].block()
            wall[name].append(time.perf_counter() - started)
            cpu[name] += time.process_time() - started_cpu
    return {name: (wall[name], cpu[name]) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=6000, help="per client")
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1,000 deliveries per client")
    parser.add_argument("--profile", choices=["memory", "sqlite"])
    parser.add_argument("--sort", default="tottime", help="the profile's sort column")
    args = parser.parse_args()
    if not available():
        print(MISSING)
        return
    if args.quick:
        args.deliveries = 1000
    blocks = max(args.deliveries // args.block, 1)
    with tempfile.TemporaryDirectory() as tmp, Nginx(["127.0.0.1"]) as nginx:
        url = f"http://127.0.0.1:{nginx.port}/hook"
        clients: dict[str, Client] = {
            "plain urllib3": Plain(url, args.block),
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
    plain, plain_cpu = results["plain urllib3"]
    print(f"{'':>20}  {'overall':>9} {'best block':>11} {'CPU each':>9}   ratio to plain")
    for name, (walls, cpu) in results.items():
        line = (
            f"{name:>20}: {n / sum(walls):7.0f}/s {args.block / min(walls):9.0f}/s "
            f"{cpu / n * 1e6:6.0f} us"
        )
        if name != "plain urllib3":
            pairs = statistics.median(p / w for p, w in zip(plain, walls, strict=True))
            line += (
                f"   {sum(plain) / sum(walls):.2f}x overall, {min(plain) / min(walls):.2f}x best,"
                f" {pairs:.2f}x median of pairs, CPU {plain_cpu / cpu:.2f}x"
            )
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
