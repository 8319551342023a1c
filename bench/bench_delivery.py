"""End-to-end delivery throughput, against a plain urllib3 loop measured in the same run.

Run it from the repository root:

    python bench/bench_delivery.py [--deliveries 5000] [--profile tottime]

A receiver runs in a subprocess (a small keep-alive HTTP/1.1 server on loopback that
answers 204 to every POST). The clients take turns sending blocks of 100 requests to it,
so a burst of load from elsewhere on a shared machine hits them alike:

- ``plain``: a loop of ``urllib3.PoolManager().request("POST", ...)`` with the same body
  and headers a delivery carries;
- ``engine``: ``Dispatcher.emit`` (a block of events, one hook) then
  ``Dispatcher.deliver_due()``, with ``MemoryStore``, the system clock and the
  ``Urllib3Transport`` (its network policy allowing loopback, which costs one address check
  per new connection): the whole path a delivery takes, store, signing and attempt log
  included.

It prints requests per second for each, the CPU time per request, and engine / plain.
The target is a ratio of at least 0.8. ``engine, unsigned`` is the same without
Standard Webhooks signatures (``sign_deliveries=False``), to show what signing costs.

``engine, otel`` is ``engine`` instrumented with ``resthooks.otel.instrument`` on the
OpenTelemetry SDK (a tracer provider with a batch span processor and an exporter that drops
what it is given, a meter provider with an in-memory reader): a span per emit and per attempt,
the counters and the histogram. Its cost per delivery is printed against ``engine`` in the
same run (the target is under 5 %). Without the SDK installed it is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time

import urllib3

from resthooks import Dispatcher, SystemClock
from resthooks.stores import MemoryStore
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


# -- the two clients -----------------------------------------------------------------------

BLOCK = 100  # requests per timed block; the clients take turns block by block


class Plain:
    """A loop of ``PoolManager.request`` POSTs: the baseline."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool = urllib3.PoolManager()
        self.headers = {
            "Content-Type": "application/json",
            "User-Agent": "resthooks/bench",
            "webhook-id": "msg_" + "0" * 32,
        }
        self.body = BODY.encode()

    def block(self) -> None:
        for _ in range(BLOCK):
            response = self.pool.request("POST", self.url, body=self.body, headers=self.headers)
            assert response.status == 204, response.status

    def close(self) -> None:
        self.pool.clear()


def otel_instrumented(dispatcher: Dispatcher, mode: str = "sdk") -> object | None:
    """Instrument ``dispatcher`` on a private SDK pipeline that exports nowhere.

    ``sdk``: every span recorded; ``sampled``: the SDK with a 1 % trace-id ratio sampler
    (spans not sampled are not recorded; metrics are); ``api``: no SDK at all (the API's
    no-op providers, what a library user gets until the application configures one)."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased  # noqa: PLC0415

        from resthooks.otel import instrument  # noqa: PLC0415
    except ImportError:
        return None

    class Drop(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    if mode == "api":
        return instrument(dispatcher)
    sampler = TraceIdRatioBased(0.01) if mode == "sampled" else None
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return instrument(dispatcher, tracer_provider=tracer_provider, meter_provider=meter_provider)


class Engine:
    """``emit`` a block of events to one hook, then ``deliver_due``: the whole path."""

    def __init__(self, url: str, *, sign: bool, otel: str | None = None) -> None:
        # The receiver is on loopback, which the default network policy refuses.
        self.transport = Urllib3Transport(policy=LOOPBACK_POLICY)
        self.dispatcher = Dispatcher(
            MemoryStore(),
            clock=SystemClock(),
            transport=self.transport,
            sign_deliveries=sign,
            network_policy=LOOPBACK_POLICY,
        )
        self.dispatcher.subscribe("party/created", url, owner="bench")
        self.instrumentation = otel_instrumented(self.dispatcher, otel) if otel else None
        if otel and self.instrumentation is None:
            raise ImportError("the OpenTelemetry SDK is not installed")

    def block(self) -> None:
        for _ in range(BLOCK):
            self.dispatcher.emit("party/created", ENTITY, owner="bench")
        delivered = self.dispatcher.deliver_due().delivered
        assert delivered == BLOCK, delivered

    def close(self) -> None:
        self.transport.close()


def measure(clients: dict[str, Plain | Engine], blocks: int) -> dict[str, list[float]]:
    """Run the clients' blocks in turns (the order rotating); return, per client, the
    wall-clock seconds of each block and, last, the CPU seconds of all its blocks."""
    wall: dict[str, list[float]] = {name: [] for name in clients}
    cpu = dict.fromkeys(clients, 0.0)
    names = list(clients)
    for i in range(blocks):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started, started_cpu = time.perf_counter(), time.process_time()
            clients[name].block()
            wall[name].append(time.perf_counter() - started)
            cpu[name] += time.process_time() - started_cpu
    return {name: [*wall[name], cpu[name]] for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000, help="per client")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        choices=["cumulative", "tottime"],
        help="profile the engine alone instead, sorted by this column",
    )
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    blocks = max(args.deliveries // BLOCK, 1)
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        clients: dict[str, Plain | Engine] = {
            "plain urllib3": Plain(url),
            "engine": Engine(url, sign=True),
            "engine, unsigned": Engine(url, sign=False),
        }
        try:
            clients["engine, otel"] = Engine(url, sign=True, otel="sdk")
            clients["otel 1% sampled"] = Engine(url, sign=True, otel="sampled")
            clients["otel API only"] = Engine(url, sign=True, otel="api")
        except ImportError:
            print("(the OpenTelemetry SDK is not installed: 'engine, otel' is left out)")
        if args.profile:
            import cProfile  # noqa: PLC0415 - only when asked
            import pstats  # noqa: PLC0415

            engine = clients["engine"]
            profiler = cProfile.Profile()
            profiler.runcall(lambda: [engine.block() for _ in range(blocks)])
            pstats.Stats(profiler).sort_stats(args.profile).print_stats(30)
            return
        measure(clients, 2)  # warm up: first connections, caches
        results = measure(clients, blocks)
        for client in clients.values():
            client.close()
    finally:
        receiver.kill()
        receiver.wait()
    n = blocks * BLOCK
    print(
        f"CPython {platform.python_version()}, urllib3 {urllib3.__version__}, "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
        f"{n} requests per client in blocks of {BLOCK}, taking turns; body {len(BODY)} bytes"
    )
    # Three views of the same run, because a shared machine is noisy: the overall rate;
    # the best block (like timeit, the least disturbed estimate of the real cost); and the
    # median ratio of blocks run side by side in time (a burst of load hits both alike).
    plain = results["plain urllib3"][:-1]
    print(f"{'':>17}  {'overall':>9} {'best block':>11} {'CPU each':>9}   ratio to plain")
    for name, times in results.items():
        walls, cpu = times[:-1], times[-1]
        line = (
            f"{name:>17}: {n / sum(walls):7.0f}/s {BLOCK / min(walls):9.0f}/s "
            f"{cpu / n * 1e6:6.0f} us"
        )
        if name != "plain urllib3":
            pairs = statistics.median(p / w for p, w in zip(plain, walls, strict=True))
            line += (
                f"   {sum(plain) / sum(walls):.2f}x overall, {min(plain) / min(walls):.2f}x best,"
                f" {pairs:.2f}x median of pairs"
            )
        print(line)
    for name in ("engine, otel", "otel 1% sampled", "otel API only"):
        if name not in results:
            continue
        # What OpenTelemetry adds to a delivery, against the engine measured beside it.
        off, on = results["engine"], results[name]
        pairs = statistics.median(b / a - 1 for a, b in zip(off[:-1], on[:-1], strict=True))
        print(
            f"{name} vs engine: {(on[-1] - off[-1]) / n * 1e6:+.1f} us CPU per delivery "
            f"({on[-1] / off[-1] - 1:+.1%} CPU), wall {sum(on[:-1]) / sum(off[:-1]) - 1:+.1%} "
            f"overall, {min(on[:-1]) / min(off[:-1]) - 1:+.1%} best block, "
            f"{pairs:+.1%} median of pairs"
        )


if __name__ == "__main__":
    main()
