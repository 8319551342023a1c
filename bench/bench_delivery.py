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
import os
import platform
import statistics

import urllib3
from _common import (
    BLOCK,
    BODY,
    ENTITY,
    Plain,
    loopback_engine,
    measure,
    print_against_baseline,
    receiver,
    serve,
)

from resthooks import Dispatcher
from resthooks.stores import MemoryStore

# bench_postgres and bench_otel take BLOCK, ENTITY, Plain and measure from here, and run
# this script with ``--serve`` as their receiver.


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
        self.dispatcher, self.transport = loopback_engine(MemoryStore(), url, sign=sign)
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
    with receiver() as url:
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
    n = blocks * BLOCK
    print(
        f"CPython {platform.python_version()}, urllib3 {urllib3.__version__}, "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores; "
        f"{n} requests per client in blocks of {BLOCK}, taking turns; body {len(BODY)} bytes"
    )
    print_against_baseline(results, n, BLOCK)
    for name in ("engine, otel", "otel 1% sampled", "otel API only"):
        if name not in results:
            continue
        # What OpenTelemetry adds to a delivery, against the engine measured beside it.
        (off, off_cpu), (on, on_cpu) = results["engine"], results[name]
        pairs = statistics.median(b / a - 1 for a, b in zip(off, on, strict=True))
        print(
            f"{name} vs engine: {(on_cpu - off_cpu) / n * 1e6:+.1f} us CPU per delivery "
            f"({on_cpu / off_cpu - 1:+.1%} CPU), wall {sum(on) / sum(off) - 1:+.1%} "
            f"overall, {min(on) / min(off) - 1:+.1%} best block, "
            f"{pairs:+.1%} median of pairs"
        )


if __name__ == "__main__":
    main()
