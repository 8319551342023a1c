"""PostgreSQL benchmark: delivered per second with 1, 2 and 4 worker processes, and fan-out.

Starts its own throwaway PostgreSQL cluster (the tests' helper, with PostgreSQL's default
durability unless ``--fast``) and a loopback receiver, then measures:

- the receiver's own ceiling: 1, 2 and 4 client processes POSTing over keep-alive
  connections with ``http.client``, no resthooks involved;
- store-only throughput: workers whose transport answers 204 without any network, so only
  claim + record on PostgreSQL count;
- end to end: workers delivering over HTTP to the receiver;
- fan-out enqueue: emits to 50 hooks (one ``INSERT ... SELECT`` each), and emits to 1 hook.

``--end-to-end`` measures instead the single-thread path of ``bench_delivery.py`` on
PostgreSQL, against a plain ``urllib3.PoolManager.request`` loop to the same receiver (a
raw-socket keep-alive server in a subprocess), blocks of 100 taken in turns so the machine's
load hits every client alike: blocks of 100 events to one hook (``emit`` each, one
transaction per event; or one ``emit_many``), then ``deliver_due()``. With ``--before REV``
the store of that git revision runs beside the current one. ``PSYCOPG_IMPL=python`` or
``binary`` (or ``c``) picks psycopg's build for the run.

Machines are shared and noisy: read the ratios (against 1 worker, and against the ceilings
measured in the same run), not the absolute numbers.

Usage: ``python bench/bench_postgres.py [--deliveries N] [--fast]``,
``python bench/bench_postgres.py --end-to-end [--before REV] [--deliveries N] [--fast]``,
``python bench/bench_postgres.py --store-ops [--before REV] [--fast]`` (``emit_many`` of 100
events, ``claim_due`` and ``record`` of 100 alone, in turns with the revision's store); ``--quick``
makes any of them short (600 deliveries, 10 rounds).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests" / "postgres"
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(HERE))

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


class _PostgresEngine:
    """``bench_delivery``'s engine on a PostgresStore: a block of emits to one hook (one
    transaction each, or one ``emit_many``), then ``deliver_due``."""

    def __init__(self, store_class: type, conninfo: str, url: str, *, many: bool) -> None:
        from resthooks import Dispatcher, SystemClock  # noqa: PLC0415
        from resthooks.testing import LOOPBACK_POLICY  # noqa: PLC0415
        from resthooks.transports import Urllib3Transport  # noqa: PLC0415

        self.store = store_class(conninfo, schema=f"e2e_{len(_SCHEMAS)}_{os.getpid()}")
        _SCHEMAS.append(self.store.schema)
        self.transport = Urllib3Transport(policy=LOOPBACK_POLICY)
        self.dispatcher = Dispatcher(
            self.store,
            clock=SystemClock(),
            transport=self.transport,
            network_policy=LOOPBACK_POLICY,
        )
        self.dispatcher.subscribe("party/created", url, owner="bench")
        self.many = many

    def block(self) -> None:
        from bench_delivery import BLOCK, ENTITY  # noqa: PLC0415

        if self.many:
            self.dispatcher.emit_many([("party/created", ENTITY, "bench")] * BLOCK)
        else:
            for _ in range(BLOCK):
                self.dispatcher.emit("party/created", ENTITY, owner="bench")
        delivered = self.dispatcher.deliver_due().delivered
        assert delivered == BLOCK, delivered

    def close(self) -> None:
        self.transport.close()
        self.store.close()


_SCHEMAS: list[str] = []


def end_to_end(conninfo: str, deliveries: int, before: str | None) -> None:
    """The single-thread path against the plain urllib3 loop, blocks taken in turns."""
    import bench_delivery  # noqa: PLC0415 - its receiver, baseline and block runner

    blocks = max(deliveries // bench_delivery.BLOCK, 1)
    classes: dict[str, type] = {"after": PostgresStore}
    if before:
        from _before import load_before  # noqa: PLC0415

        classes["before"] = load_before(before, "resthooks.stores.postgres").PostgresStore
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "bench_delivery.py"), "--serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        clients: dict[str, Any] = {"plain urllib3": bench_delivery.Plain(url)}
        for name, cls in classes.items():
            for many in (False, True):
                label = f"{name}, {'emit_many' if many else 'emit'}"
                clients[label] = _PostgresEngine(cls, conninfo, url, many=many)
        bench_delivery.measure(clients, 2)  # warm up: connections, prepared statements
        results = bench_delivery.measure(clients, blocks)
        for client in clients.values():
            client.close()
    finally:
        receiver.kill()
        receiver.wait()
    n = blocks * bench_delivery.BLOCK
    print(f"\nend to end, one thread: {n} deliveries per client in blocks of 100, in turns")
    plain = results["plain urllib3"][0]
    for name, (walls, cpu) in results.items():
        line = f"  {name:>17}: {n / sum(walls):7.0f}/s, {cpu / n * 1e6:5.0f} us CPU each"
        if name != "plain urllib3":
            pairs = statistics.median(p / w for p, w in zip(plain, walls, strict=True))
            line += f"   {sum(plain) / sum(walls):.2f}x plain, {pairs:.2f}x median of pairs"
        print(line)


def store_ops(conninfo: str, before: str | None, rounds: int = 40) -> None:
    """``emit_many`` of 100 events to one hook, ``claim_due`` and ``record`` of 100, each store
    (this one, and a git revision's beside it) in turns: wall and CPU time, medians."""
    from datetime import datetime, timedelta, timezone  # noqa: PLC0415

    from resthooks import Dispatcher, Outcome, OutcomeKind  # noqa: PLC0415
    from resthooks.model import Attempt  # noqa: PLC0415

    classes: dict[str, type] = {"after": PostgresStore}
    if before:
        from _before import load_before  # noqa: PLC0415

        classes["before"] = load_before(before, "resthooks.stores.postgres").PostgresStore
    engines = {}
    for name, cls in classes.items():
        engine = Dispatcher(cls(conninfo, schema=f"ops_{name}_{os.getpid()}"))
        engine.subscribe("party/created", "https://example.com/h", owner="acme")
        engines[name] = engine
    events = [("party/created", {"id": i, "name": "Scott"}, "acme") for i in range(100)]
    now = datetime.now(timezone.utc) + timedelta(minutes=1)
    timings: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def timed(key: tuple[str, str], call: Any) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        timings.setdefault(key, []).append((time.perf_counter() - wall, time.process_time() - cpu))

    for i in range(rounds):
        names = list(engines) if i % 2 == 0 else list(reversed(engines))
        for name in names:
            timed((name, "emit_many(100)"), lambda e=engines[name]: e.emit_many(events))
        for name in names:
            store = engines[name].store
            claimed: list[Any] = []
            timed(
                (name, "claim_due(100)"),
                lambda s=store, out=claimed: out.extend(
                    s.claim_due(now=now, limit=100, lease_until=now + timedelta(minutes=5))
                ),
            )
            claims = claimed
            outcomes = [
                Outcome(
                    delivery_id=c.delivery.id,
                    token=c.token,
                    kind=OutcomeKind.DELIVERED,
                    attempt=Attempt(
                        delivery_id=c.delivery.id,
                        number=1,
                        started_at=now,
                        duration=0.001,
                        status=204,
                        response_excerpt="",
                    ),
                )
                for c in claims
            ]
            timed((name, "record(100)"), lambda s=store, o=outcomes: s.record(o, now=now))
    print(f"\nstore operations, {rounds} rounds in turns (medians)")
    for (name, op), samples in sorted(timings.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        wall = statistics.median(w for w, _ in samples) * 1000
        cpu = statistics.median(c for _, c in samples) * 1000
        print(f"  {op:>15} {name:>6}: {wall:7.2f} ms wall, {cpu:6.2f} ms CPU")
    for engine in engines.values():
        engine.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=6000)
    parser.add_argument("--fast", action="store_true", help="fsync and synchronous_commit off")
    parser.add_argument("--fan-out-only", action="store_true", help="skip the worker runs")
    parser.add_argument("--end-to-end", action="store_true", help="the single-thread path")
    parser.add_argument(
        "--store-ops", action="store_true", help="emit_many, claim and record alone"
    )
    parser.add_argument("--before", help="with --end-to-end: a git revision's store beside")
    parser.add_argument(
        "--quick", action="store_true", help="a short run: 600 deliveries, 10 rounds of store ops"
    )
    args = parser.parse_args()
    if args.quick:
        args.deliveries = min(args.deliveries, 600)
    settings = dict(support.TEST_SETTINGS) if args.fast else DURABLE
    print(f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__} implementation)")
    print(f"PostgreSQL settings: {settings}; {os.cpu_count()} CPUs")
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    if args.store_ops:
        with support.start_cluster(settings) as cluster:
            store_ops(cluster.conninfo(), args.before, rounds=10 if args.quick else 40)
        return
    if args.end_to_end:
        with support.start_cluster(settings) as cluster:
            end_to_end(cluster.conninfo(), args.deliveries, args.before)
        return
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
