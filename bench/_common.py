"""What the single-thread delivery benches share: the entity, the receiver, the baseline, the
engine's setup and the timing of clients taken in turns.

``bench_engine.py``, ``bench_delivery.py`` and ``bench_ordering.py`` (and, through
``bench_delivery``, ``bench_postgres.py`` and ``bench_otel.py``) measure the same thing from
different sides; what they compare must be built the same way, so it is built here once.

Run as a script (``python bench/_common.py``) it is the receiver: a small keep-alive
HTTP/1.1 server on a free loopback port, which prints the port and answers 204 to every POST.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import urllib3

from resthooks import Dispatcher, SystemClock
from resthooks.stores import Store
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

BLOCK = 100  # deliveries per timed block; the clients take turns block by block

# -- the receiver (runs in a subprocess) ---------------------------------------------------

_ANSWER = b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"


def _serve_connection(conn: socket.socket) -> None:
    buffer = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer[length:]
            conn.sendall(_ANSWER)


def serve() -> None:
    """Listen on a free loopback port, print it, answer 204 to every request."""
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_connection, args=(conn,), daemon=True).start()


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    """Start the receiver in a subprocess; yield its hook URL; kill it on the way out."""
    process = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}/hook"
    finally:
        process.kill()
        process.wait()


# -- the clients ---------------------------------------------------------------------------


class Client(Protocol):
    """What ``measure`` times: one block of deliveries per call."""

    def block(self) -> None: ...


class Plain:
    """A loop of ``PoolManager.request`` POSTs with the body and headers a delivery carries:
    the baseline. ``signed`` adds the Standard Webhooks timestamp and signature headers."""

    def __init__(self, url: str, block: int = BLOCK, *, signed: bool = False) -> None:
        self.url, self.size = url, block
        self.pool = urllib3.PoolManager()
        self.headers = {
            "Content-Type": "application/json",
            "User-Agent": "resthooks/bench",
            "webhook-id": "msg_" + "0" * 32,
        }
        if signed:
            self.headers["webhook-timestamp"] = "1614265330"
            self.headers["webhook-signature"] = "v1," + "0" * 44
        self.body = BODY.encode()

    def block(self) -> None:
        for _ in range(self.size):
            response = self.pool.request("POST", self.url, body=self.body, headers=self.headers)
            assert response.status == 204, response.status

    def close(self) -> None:
        self.pool.clear()


def loopback_engine(
    store: Store, url: str, event: str = "party/created", *, sign: bool = True
) -> tuple[Dispatcher, Urllib3Transport]:
    """A dispatcher on ``store`` with the system clock and the default transport, its network
    policy allowing loopback (the receiver's address, which the default policy refuses; it
    costs one address check per new connection), and one hook on ``url`` for ``event``."""
    transport = Urllib3Transport(policy=LOOPBACK_POLICY)
    dispatcher = Dispatcher(
        store,
        clock=SystemClock(),
        transport=transport,
        sign_deliveries=sign,
        network_policy=LOOPBACK_POLICY,
    )
    dispatcher.subscribe(event, url, owner="bench")
    return dispatcher, transport


# -- timing --------------------------------------------------------------------------------

Results = dict[str, tuple[list[float], float]]


def measure(clients: Mapping[str, Client], blocks: int) -> Results:
    """Run the clients' blocks in turns (the order rotating, so a burst of load from
    elsewhere on a shared machine hits them alike); return, per client, the wall-clock
    seconds of each block and the CPU seconds of all its blocks."""
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


def median_of_pairs(baseline: Sequence[float], walls: Sequence[float]) -> float:
    """The median ratio baseline / client over blocks run side by side in time."""
    return statistics.median(p / w for p, w in zip(baseline, walls, strict=True))


def print_against_baseline(
    results: Results, n: int, block: int, baseline: str = "plain urllib3"
) -> None:
    """Per client: the overall rate, the best block, the CPU per delivery and, beside the
    baseline, the ratios to it.

    Three views of the same run, because a shared machine is noisy: the overall rate; the
    best block (like timeit, the least disturbed estimate of the real cost); and the median
    ratio of blocks run side by side in time (a burst of load hits both alike)."""
    width = max(map(len, results))
    plain, plain_cpu = results[baseline]
    print(f"{'':>{width}}  {'overall':>9} {'best block':>11} {'CPU each':>9}   ratio to plain")
    for name, (walls, cpu) in results.items():
        line = (
            f"{name:>{width}}: {n / sum(walls):7.0f}/s {block / min(walls):9.0f}/s "
            f"{cpu / n * 1e6:6.0f} us"
        )
        if name != baseline:
            line += (
                f"   {sum(plain) / sum(walls):.2f}x overall, {min(plain) / min(walls):.2f}x best,"
                f" {median_of_pairs(plain, walls):.2f}x median of pairs,"
                f" CPU {plain_cpu / cpu:.2f}x"
            )
        print(line)


if __name__ == "__main__":
    serve()
