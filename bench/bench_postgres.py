"""PostgreSQL benchmark: delivered per second with 1, 2 and 4 worker processes, and fan-out.

Starts its own throwaway PostgreSQL cluster (the tests' helper, with PostgreSQL's default
durability unless ``--fast``) and a loopback receiver, then measures:

- the receiver's own ceiling: 1, 2 and 4 client processes POSTing over keep-alive
  connections with ``http.client``, no resthooks involved;
- store-only throughput: workers whose transport answers 204 without any network, so only
  claim + record on PostgreSQL count;
- end to end: workers delivering over HTTP to the receiver;
- fan-out enqueue: emits to 50 hooks (one ``INSERT ... SELECT`` each), and emits to 1 hook.

Machines are shared and noisy: read the ratios (against 1 worker, and against the ceilings
measured in the same run), not the absolute numbers.

Usage: ``python bench/bench_postgres.py [--deliveries N] [--fast]``
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests" / "postgres"
sys.path.insert(0, str(TESTS))

import psycopg  # noqa: E402 - after the path, with the other imports of this script
import support  # noqa: E402 - the tests' cluster helper, found through the path above

from resthooks.stores.postgres import PostgresStore  # noqa: E402
from resthooks.testing import HookReceiver  # noqa: E402

HOOKS = 50
BATCH = 50
DURABLE = {"max_connections": "200"}


def _client(url: str, seconds: float, out: multiprocessing.Queue[int]) -> None:
    host, port = url.split("/")[2].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    body = b'{"event":"party/created","payload":[{"id":1}]}'
    headers = {"Content-Type": "application/json", "webhook-id": "msg_bench"}
    done = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.request("POST", "/h/0", body, headers)
        conn.getresponse().read()
        done += 1
    out.put(done)


def receiver_ceiling(receiver: HookReceiver, clients: int, seconds: float = 3.0) -> float:
    out: multiprocessing.Queue[int] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_client, args=(receiver.url(), seconds, out))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    receiver.clear()  # the receiver keeps what it got: forget it between runs
    return total / seconds


def _emit(store: PostgresStore, receiver: HookReceiver, deliveries: int) -> None:
    dispatcher = support.make_dispatcher(store, max_hooks_per_owner=None)
    for n in range(HOOKS):
        dispatcher.subscribe("party/created", receiver.url(f"/h/{n}"), owner="acme")
    for i in range(deliveries // HOOKS):
        dispatcher.emit("party/created", {"id": i, "name": "Scott"}, owner="acme")


def deliver(
    conninfo: str, receiver: HookReceiver, workers: int, deliveries: int, *, null: bool
) -> float:
    """Deliveries per second, from the workers' start until the store says all delivered."""
    schema = f"bench_{workers}_{'null' if null else 'http'}_{os.getpid()}"
    store = PostgresStore(conninfo, schema=schema)
    _emit(store, receiver, deliveries)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    if null:
        env["WORKER_TRANSPORT"] = "null"
    env["RESTHOOKS_WORKER_LOOP"] = "deliver_due"
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, str(TESTS / "worker.py"), conninfo, schema, str(BATCH), "30"],
            env=env,
        )
        for _ in range(workers)
    ]
    try:
        while store.stats().deliveries["delivered"] < deliveries:
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        store.close()
        receiver.clear()
    return deliveries / elapsed


def fan_out(
    conninfo: str, receiver: HookReceiver, hooks: int, emits: int, *, many: int = 1
) -> float:
    """Emits per second to ``hooks`` hooks each: one transaction per emit, or (``many`` > 1)
    ``many`` emits per ``emit_many`` transaction."""
    store = PostgresStore(conninfo, schema=f"bench_fanout_{hooks}_{many}_{os.getpid()}")
    dispatcher = support.make_dispatcher(store, max_hooks_per_owner=None)
    for n in range(hooks):
        dispatcher.subscribe("party/created", receiver.url(f"/h/{n}"), owner="acme")
    start = time.perf_counter()
    if many == 1:
        for i in range(emits):
            dispatcher.emit("party/created", {"id": i, "name": "Scott"}, owner="acme")
    else:
        for first in range(0, emits, many):
            dispatcher.emit_many(
                [
                    ("party/created", {"id": i, "name": "Scott"}, "acme")
                    for i in range(first, min(first + many, emits))
                ]
            )
    elapsed = time.perf_counter() - start
    store.close()
    return emits / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=6000)
    parser.add_argument("--fast", action="store_true", help="fsync and synchronous_commit off")
    parser.add_argument("--fan-out-only", action="store_true", help="skip the worker runs")
    args = parser.parse_args()
    settings = dict(support.TEST_SETTINGS) if args.fast else DURABLE
    print(f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__} implementation)")
    print(f"PostgreSQL settings: {settings}; {os.cpu_count()} CPUs")
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    with support.start_cluster(settings) as cluster, HookReceiver(keep_alive=True) as receiver:
        conninfo = cluster.conninfo()
        print("\nreceiver ceiling (http.client keep-alive clients, no resthooks)")
        ceiling = {n: receiver_ceiling(receiver, n) for n in (1, 2, 4)}
        for n, rate in ceiling.items():
            print(f"  {n} client process(es): {rate:8.0f} requests/s")
        for null in () if args.fan_out_only else (True, False):
            label = "store only (no network)" if null else "end to end over HTTP"
            print(f"\ndelivered/s, {label}, {args.deliveries} deliveries, batch {BATCH}")
            base = None
            for workers in (1, 2, 4):
                rate = deliver(conninfo, receiver, workers, args.deliveries, null=null)
                base = base or rate
                extra = "" if null else f", {rate / ceiling[min(workers, 4)]:.2f} x ceiling"
                print(
                    f"  {workers} worker(s): {rate:8.0f}/s  ({rate / base:.2f} x 1 worker{extra})"
                )
        print("\nfan-out enqueue: one transaction per emit, or 100 emits per emit_many")
        for hooks, emits in ((HOOKS, 400), (1, 2000)):
            for many in (1, 100):
                rate = fan_out(conninfo, receiver, hooks, emits, many=many)
                how = "emit     " if many == 1 else "emit_many"
                print(
                    f"  {hooks:3d} hook(s), {how}: {rate:8.0f} emits/s = "
                    f"{rate * hooks:8.0f} deliveries/s"
                )


if __name__ == "__main__":
    main()
