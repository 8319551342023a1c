"""Benchmark of the worker: isolation from black holes, and throughput against plain urllib3.

Run: ``python bench/bench_worker.py [--events N] [--workers N]``. It prints ratios measured in
one run on this machine (absolute rates vary with the machine; ratios travel better).

1. Isolation: 100 hooks, of which 20 point at a black hole (a server that accepts the
   connection and never answers) and 80 at healthy receivers; healthy deliveries per second,
   against the same run with 0 black holes (100 healthy hooks). Target: at least 0.8x.
2. Throughput: the worker's end-to-end rate (emit, claim, send, record) with 16 threads,
   against a plain loop of urllib3 ``PoolManager.request`` POSTs of the same body to the same
   receivers. Target: at least 1x.

The receivers run in a separate process (10 ports, so 10 hosts as far as the per-host limit
goes, as real hooks point at many hosts); the black hole runs in this one (it uses no CPU).
"""

from __future__ import annotations

import argparse
import http.server
import logging
import multiprocessing
import platform
import socket
import statistics
import threading
import time

import urllib3

from resthooks import Dispatcher
from resthooks.lifecycle import DeliveryDelivered
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY

RECEIVER_PORTS = 10
OWNER = "bench"
EVENT = "party/created"
PAYLOAD = {"id": 1, "name": "Acme Ltd", "email": "hello@acme.example", "tags": ["a", "b"]}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(ports: multiprocessing.Queue, count: int) -> None:
    servers = []
    for _ in range(count):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    for server in servers:
        ports.put(server.server_address[1])
    threading.Event().wait()


class BlackHole:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]


def make_dispatcher() -> Dispatcher:
    """Every Dispatcher of this benchmark (loopback targets: the network policy's opt-in
    goes here)."""
    return Dispatcher(MemoryStore(), max_hooks_per_owner=None, network_policy=LOOPBACK_POLICY)


def isolation_run(ports: list[int], hole: BlackHole | None, events: int, workers: int) -> float:
    """Healthy deliveries per second with 20 of 100 hooks black-holed (or none)."""
    dispatcher = make_dispatcher()
    holes = 20 if hole is not None else 0
    for n in range(holes):
        dispatcher.subscribe(EVENT, f"http://127.0.0.1:{hole.port}/b{n}", owner=OWNER)  # type: ignore[union-attr]
    for n in range(100 - holes):
        port = ports[n % len(ports)]
        dispatcher.subscribe(EVENT, f"http://127.0.0.1:{port}/h{n}", owner=OWNER)
    for n in range(events):
        dispatcher.emit(EVENT, dict(PAYLOAD, id=n), owner=OWNER)
    target = (100 - holes) * events
    stop = threading.Event()
    delivered = 0
    last = 0.0

    def count(event: object) -> None:
        nonlocal delivered, last
        if isinstance(event, DeliveryDelivered):
            delivered += 1
            if delivered == target:
                last = time.perf_counter()
                stop.set()

    dispatcher.add_listener(count)
    start = time.perf_counter()
    dispatcher.run(workers=workers, stop=stop, grace=0)
    dispatcher.transport.close()
    assert delivered == target, (delivered, target)
    return target / (last - start)


def worker_rate(ports: list[int], events: int, workers: int) -> float:
    """End-to-end deliveries per second: emit, then the worker until idle."""
    dispatcher = make_dispatcher()
    for n in range(100):
        dispatcher.subscribe(EVENT, f"http://127.0.0.1:{ports[n % len(ports)]}/h{n}", owner=OWNER)
    start = time.perf_counter()
    for n in range(events):
        dispatcher.emit(EVENT, dict(PAYLOAD, id=n), owner=OWNER)
    summary = dispatcher.run_until_idle(workers=workers)
    elapsed = time.perf_counter() - start
    dispatcher.transport.close()
    assert summary.delivered == 100 * events
    return summary.delivered / elapsed


def plain_rate(ports: list[int], requests: int) -> float:
    """A plain urllib3 loop: PoolManager.request POSTs of the same body, one at a time."""
    body = (
        b'{"event":"party/created","payload":[{"id":1,"name":"Acme Ltd",'
        b'"email":"hello@acme.example","tags":["a","b"]}]}'
    )
    pool = urllib3.PoolManager(maxsize=1)
    headers = {"Content-Type": "application/json"}
    start = time.perf_counter()
    for n in range(requests):
        port = ports[n % len(ports)]
        pool.request("POST", f"http://127.0.0.1:{port}/h{n % 100}", body=body, headers=headers)
    elapsed = time.perf_counter() - start
    pool.clear()
    return requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30, help="events emitted per run")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    # The run with black holes stops with their attempts in flight: that warning is expected.
    logging.getLogger("resthooks").setLevel(logging.ERROR)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(queue, RECEIVER_PORTS), daemon=True)
    server.start()
    ports = [queue.get(timeout=30) for _ in range(RECEIVER_PORTS)]
    hole = BlackHole()
    print(f"# {platform.platform()}, Python {platform.python_version()}, {args.workers} threads")
    print(f"# {args.events} events x 100 hooks per run; {args.rounds} rounds, interleaved")
    try:
        # Each round measures both sides back to back and the ratio is taken per round, so a
        # noisy neighbour slows both sides of a ratio rather than one; the median is printed.
        isolation, throughput = [], []
        for _ in range(args.rounds):
            clean = isolation_run(ports, None, args.events, args.workers)
            holed = isolation_run(ports, hole, args.events, args.workers)
            plain = plain_rate(ports, 100 * args.events)
            worker = worker_rate(ports, args.events, args.workers)
            isolation.append(holed / clean)
            throughput.append(worker / plain)
            print(
                f"healthy/s: 0 black holes {clean:6.0f}, 20 black holes {holed:6.0f}"
                f" ({holed / clean:.2f}x) | plain urllib3 {plain:6.0f}/s,"
                f" worker {worker:6.0f}/s ({worker / plain:.2f}x)"
            )
        print(f"isolation ratio, median: {statistics.median(isolation):.2f}x (target >= 0.8x)")
        print(f"throughput ratio, median: {statistics.median(throughput):.2f}x (target >= 1x)")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
