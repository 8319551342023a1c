"""What OpenTelemetry costs a delivery: CPU per delivery with the SDK on and off, same run.

Run it from the repository root:

    python bench/bench_otel.py [--deliveries 3000] [--rounds 6]

A receiver runs in a subprocess (the keep-alive server of ``bench_delivery.py``, answering
204). Each round runs two more subprocesses one after the other, in alternating order: the
engine with OpenTelemetry off, and the same engine instrumented with
``resthooks.otel.instrument`` on the SDK configured the usual way (a ``TracerProvider`` with
a ``BatchSpanProcessor``, a ``MeterProvider`` with a ``PeriodicExportingMetricReader``, both
exporting to exporters that drop what they are given). The engine is what
``bench_delivery.py`` measures: ``emit`` blocks of 100 events to one hook, then
``deliver_due()``, on ``MemoryStore``, the system clock and ``Urllib3Transport``.

The figure is the process's CPU time (every thread: the SDK's export threads included, and
the providers' final flush at shutdown) divided by the deliveries, after a warm-up block.
It prints, per round, both figures and on / off, then the median ratio over rounds.

Then, in this process, what the SDK itself costs, without resthooks: one span made and ended
the way an attempt's span is (a ``CLIENT`` span, the same attributes, explicit start and end
times) on the same span pipeline, and one histogram record with one attribute; each in
microseconds and as a share of the CPU of a delivery with OpenTelemetry off. One span per
attempt is the floor of what tracing can cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
BLOCK = 100


def _providers() -> tuple[object, object]:
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DropSpans(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(self, metrics_data: object, timeout_millis: float = 0, **kw: object) -> object:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kw: object) -> None:
            pass

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(DropMetrics())])
    return tracer_provider, meter_provider


def run(url: str, deliveries: int, otel: bool) -> dict[str, float]:
    """One measured run in this process: CPU and wall seconds for ``deliveries``."""
    from bench_delivery import ENTITY  # noqa: PLC0415 - the same entity as the other bench

    from resthooks import Dispatcher, SystemClock  # noqa: PLC0415
    from resthooks.stores import MemoryStore  # noqa: PLC0415
    from resthooks.testing import LOOPBACK_POLICY  # noqa: PLC0415
    from resthooks.transports import Urllib3Transport  # noqa: PLC0415

    transport = Urllib3Transport(policy=LOOPBACK_POLICY)
    dispatcher = Dispatcher(
        MemoryStore(), clock=SystemClock(), transport=transport, network_policy=LOOPBACK_POLICY
    )
    dispatcher.subscribe("party/created", url, owner="bench")
    providers = None
    if otel:
        from resthooks.otel import instrument  # noqa: PLC0415

        providers = _providers()
        instrument(dispatcher, tracer_provider=providers[0], meter_provider=providers[1])

    def block() -> None:
        for _ in range(BLOCK):
            dispatcher.emit("party/created", ENTITY, owner="bench")
        assert dispatcher.deliver_due().delivered == BLOCK

    block()  # warm up: the connection, caches, the SDK's first series
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(max(deliveries // BLOCK, 1)):
        block()
    if providers is not None:  # what the export threads still have to do counts too
        providers[0].shutdown()  # type: ignore[attr-defined]
        providers[1].shutdown()  # type: ignore[attr-defined]
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    transport.close()
    return {"cpu": cpu, "wall": wall, "deliveries": max(deliveries // BLOCK, 1) * BLOCK}


def sdk_floor(rounds: int = 20_000) -> dict[str, float]:
    """Microseconds of CPU per span made like an attempt's, and per histogram record, on
    the same SDK pipeline, with nothing of resthooks in the way."""
    from opentelemetry import metrics, trace  # noqa: PLC0415
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    tracer_provider, meter_provider = _providers()
    tracer = trace.get_tracer("floor", tracer_provider=tracer_provider)  # type: ignore[arg-type]
    meter = metrics.get_meter("floor", meter_provider=meter_provider)  # type: ignore[arg-type]
    histogram = meter.create_histogram("floor.duration", unit="s")
    attributes = {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": 8080,
        "resthooks.delivery.id": "msg_" + "0" * 32,
        "resthooks.hook.id": "hook_" + "0" * 32,
        "resthooks.event": "party/created",
        "resthooks.outcome": "delivered",
        "http.response.status_code": 204,
    }
    labels = {"resthooks.outcome": "delivered"}
    counter = meter.create_counter("floor.deliveries")
    now = time.time_ns()
    started = time.process_time()
    for n in range(rounds):
        span = tracer.start_span(
            "POST", kind=SpanKind.CLIENT, attributes=attributes, start_time=now
        )
        span.end(end_time=now + 1000)
        if n % 500 == 499:  # as a delivery run does, the queue is exported before it fills
            tracer_provider.force_flush()  # type: ignore[attr-defined]
    tracer_provider.shutdown()  # type: ignore[attr-defined]
    span_us = (time.process_time() - started) / rounds * 1e6
    started = time.process_time()
    for _ in range(rounds):
        histogram.record(0.001, labels)
    histogram_us = (time.process_time() - started) / rounds * 1e6
    started = time.process_time()
    for _ in range(rounds):
        counter.add(1, labels)
    counter_us = (time.process_time() - started) / rounds * 1e6
    meter_provider.shutdown()  # type: ignore[attr-defined]
    return {"span": span_us, "histogram": histogram_us, "counter": counter_us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000, help="per run")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--run", choices=["off", "on"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run(args.url, args.deliveries, args.run == "on")))
        return
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "bench_delivery.py"), "--serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    per: dict[str, list[float]] = {"off": [], "on": []}
    ratios = []
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        for n in range(args.rounds):
            got = {}
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--run",
                        mode,
                        "--url",
                        url,
                        "--deliveries",
                        str(args.deliveries),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                ).stdout
                result = json.loads(out)
                got[mode] = result["cpu"] / result["deliveries"] * 1e6
                per[mode].append(got[mode])
            ratios.append(got["on"] / got["off"])
            print(
                f"round {n + 1}: CPU per delivery off {got['off']:.0f} us, "
                f"on {got['on']:.0f} us, on / off {got['on'] / got['off']:.3f}",
                flush=True,
            )
    finally:
        receiver.kill()
        receiver.wait()
    off, on = statistics.median(per["off"]), statistics.median(per["on"])
    ratio = statistics.median(ratios)
    print(f"CPU per delivery, medians over {args.rounds} rounds: off {off:.0f} us, on {on:.0f} us")
    print(f"otel on vs off, CPU per delivery: {ratio:.3f}x (median of rounds)")
    floor = sdk_floor()
    sdk = floor["span"] + floor["histogram"] + floor["counter"]
    print(
        f"SDK alone: one span like an attempt's {floor['span']:.1f} us "
        f"({floor['span'] / off:.1%} of a delivery), one histogram record "
        f"{floor['histogram']:.1f} us ({floor['histogram'] / off:.1%}), one counter add "
        f"{floor['counter']:.1f} us ({floor['counter'] / off:.1%})"
    )
    print(f"what a delivery must pay the SDK (span + histogram + counter): {sdk / off:.1%}")
    print(f"on vs off minus what the SDK itself costs per delivery: {(on - sdk) / off:.3f}x")


if __name__ == "__main__":
    main()
