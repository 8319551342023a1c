"""What batching costs and saves on the delivery path, against the plain path in the same run.

Run it from the repository root:

    python bench/bench_batching.py [--quick] [--deliveries 3000] [--stores memory,sqlite,postgres]

(``postgres`` starts a throwaway server, as the tests do, when PostgreSQL's binaries are
installed.) A receiver runs in a subprocess (``_common``'s keep-alive server on loopback,
answering 204). For each store, the clients take turns sending blocks of 100 entities to one
hook (``emit`` x 100, one entity each, then ``deliver_due()`` until all 100 are delivered),
so a burst of load from elsewhere hits them alike:

- ``plain``: a hook without batching, the baseline: 100 POSTs;
- ``batched x1``: ``max_entities=1``, every emit its own batch: 100 POSTs, the cost of the
  batching path where it saves nothing (the worst case);
- ``batched x10``: ten batches of ten: 10 POSTs;
- ``batched x100``: one batch of 100: 1 POST;
- ``keyed x10``: ten batches of ten, every emit with an ordering key (the keyed batches go
  one at a time).

It prints entities per second and CPU per entity for each, and each batched client's ratio
to ``plain`` on the same store (median of pairs of blocks run side by side).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import BLOCK, ENTITY, Results, loopback_engine, measure, median_of_pairs, receiver

from resthooks import Batching
from resthooks.stores import MemoryStore, SQLiteStore, Store

EVENT = "task/created"


class Client:
    """``emit`` a block of entities to one hook, then ``deliver_due`` until they are sent."""

    def __init__(
        self, store: Store, url: str, batching: Batching | None, *, keyed: bool = False
    ) -> None:
        self.store = store
        # The engine as the other delivery benches build it (its own hook, on another
        # event, receives nothing here), and the hook of this client, batched or not.
        self.dispatcher, self.transport = loopback_engine(store, url, "party/created")
        self.dispatcher.subscribe(EVENT, url, owner="bench", batching=batching)
        self.posts = BLOCK if batching is None else -(-BLOCK // batching.max_entities)
        self.keyed = keyed
        self.blocks = 0

    def block(self) -> None:
        self.blocks += 1
        for i in range(BLOCK):
            key = f"task:{self.blocks}:{i}" if self.keyed else None
            self.dispatcher.emit(EVENT, ENTITY, owner="bench", ordering_key=key)
        delivered = 0
        while delivered < self.posts:
            step = self.dispatcher.deliver_due().delivered
            assert step, "nothing was due"
            delivered += step
        assert delivered == self.posts, delivered

    def close(self) -> None:
        self.transport.close()
        self.store.close()


# max_wait is long: every batch here is sent because it is full, not because time passed.
CLIENTS: dict[str, tuple[Batching | None, bool]] = {
    "plain": (None, False),
    "batched x1": (Batching(max_wait=60, max_entities=1), False),
    "batched x10": (Batching(max_wait=60, max_entities=10), False),
    "batched x100": (Batching(max_wait=60, max_entities=100), False),
    "keyed x10": (Batching(max_wait=60, max_entities=10), True),
}


@contextlib.contextmanager
def _postgres() -> Iterator[Callable[[str], Store]]:
    """A throwaway PostgreSQL server (the tests' support module), a schema per client."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "postgres"))
    import support  # noqa: PLC0415 - the tests' helper, only for this store

    from resthooks.stores.postgres import PostgresStore  # noqa: PLC0415 - optional extra

    with support.start_cluster() as cluster:
        conninfo = cluster.conninfo()
        yield lambda name: PostgresStore(conninfo, schema="bench_" + name.replace(" ", "_"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000, help="entities per client")
    parser.add_argument("--stores", default="memory,sqlite")
    parser.add_argument("--quick", action="store_true", help="500 entities per client")
    args = parser.parse_args()
    blocks = max((500 if args.quick else args.deliveries) // BLOCK, 1)
    with receiver() as url:
        print(
            f"CPython {platform.python_version()}, {platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} cores, load average "
            f"{os.getloadavg()[0]:.1f}; {blocks * BLOCK} entities per client in blocks of "
            f"{BLOCK}, taking turns"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for kind in args.stores.split(","):
                with contextlib.ExitStack() as stack:
                    make: Callable[[str], Store]
                    if kind == "postgres":
                        make = stack.enter_context(_postgres())
                    elif kind == "memory":
                        make = lambda name: MemoryStore()  # noqa: E731
                    else:
                        make = lambda name: SQLiteStore(  # noqa: E731
                            Path(tmp) / f"{name.replace(' ', '_')}.db"
                        )
                    clients = {
                        name: Client(make(name), url, batching, keyed=keyed)
                        for name, (batching, keyed) in CLIENTS.items()
                    }
                    measure(clients, 2)  # warm up
                    results = measure(clients, blocks)
                    for client in clients.values():
                        client.close()
                    report(kind, results, blocks * BLOCK)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def report(kind: str, results: Results, n: int) -> None:
    plain_walls, plain_cpu = results["plain"]
    print(f"\n{kind}:")
    for name, (walls, cpu) in results.items():
        line = f"{name:>13}: {n / sum(walls):6.0f}/s  {cpu / n * 1e6:5.0f} us CPU per entity"
        if name != "plain":
            pairs = median_of_pairs(plain_walls, walls)
            line += f"   {pairs:.2f}x plain (median of pairs), CPU {cpu / plain_cpu:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
