"""What OpenTelemetry costs a delivery: CPU per delivery with the SDK on and off, same run.

Run it from the repository root:

    python bench/bench_otel.py [--deliveries 3000] [--rounds 6] [--quick]

``--quick`` is 1,000 deliveries per run, 2 rounds and shorter loops below (a few minutes).

A receiver runs in a subprocess (the keep-alive server of ``bench_delivery.py``, answering
204). Each round runs two more subprocesses one after the other, in alternating order: the
engine with OpenTelemetry off, the same engine instrumented with
``resthooks.otel.instrument`` on the SDK configured the usual way (a ``TracerProvider`` with
a ``BatchSpanProcessor``, a ``MeterProvider`` with a ``PeriodicExportingMetricReader``, both
exporting to exporters that drop what they are given), and the same with traces sampled at
1 % (``ParentBased(TraceIdRatioBased(0.01))``; the metrics are still recorded). The engine is what
``bench_delivery.py`` measures: ``emit`` blocks of 100 events to one hook, then
``deliver_due()``, on ``MemoryStore``, the system clock and ``Urllib3Transport``.

The figure is the process's CPU time (every thread: the SDK's export threads included, and
the providers' final flush at shutdown) divided by the deliveries, after a warm-up block.
It prints, per round, the figures and their ratios to off, then the median ratios over
rounds.

Then, in this process, what the SDK itself costs, without resthooks (``sdk_floor()``):
one span made and ended the way an attempt's span is, the same with fewer attributes or
sampled out, one histogram record and one counter add; each in microseconds and as a share
of the CPU of a delivery with OpenTelemetry off; and what resthooks' own listener adds
around the calls it makes. One span per attempt and one histogram record are the floor of
what the traces and metrics issue 19 asks for can cost.

Last, without HTTP (``in_process()``): the engine alone, with no listener, with the
default log listener, with a listener making only the SDK calls, and instrumented.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
MODES = ["off", "on", "sampled"]
BLOCK = 100


def _providers(sampled: float | None = None) -> tuple[object, object]:
    """An SDK tracer and meter provider exporting to exporters that drop everything; with
    ``sampled``, traces sampled at that ratio (``ParentBased(TraceIdRatioBased(...))``)."""
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

    from opentelemetry.sdk.trace.sampling import (  # noqa: PLC0415
        ParentBased,
        TraceIdRatioBased,
    )

    tracer_provider = (
        TracerProvider()
        if sampled is None
        else TracerProvider(sampler=ParentBased(TraceIdRatioBased(sampled)))
    )
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(DropMetrics())])
    return tracer_provider, meter_provider


def run(url: str, deliveries: int, mode: str) -> dict[str, float]:
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
    if mode != "off":
        from resthooks.otel import instrument  # noqa: PLC0415

        providers = _providers(0.01 if mode == "sampled" else None)
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


_ATTRIBUTES = {
    "http.request.method": "POST",
    "server.address": "127.0.0.1",
    "server.port": 8080,
    "resthooks.delivery.id": "msg_" + "0" * 32,
    "resthooks.hook.id": "hook_" + "0" * 32,
    "resthooks.event": "party/created",
    "resthooks.outcome": "delivered",
    "http.response.status_code": 204,
}
_SEMCONV_ONLY = {k: v for k, v in _ATTRIBUTES.items() if not k.startswith("resthooks.")}


def _per_call(loop: Callable[[int], None], calls: int) -> float:
    """Microseconds of CPU per call of ``loop(calls)``."""
    started = time.process_time()
    loop(calls)
    return (time.process_time() - started) / calls * 1e6


def sdk_floor(calls: int = 20_000) -> dict[str, float]:
    """Microseconds of CPU per SDK call a delivery may make, on the usual SDK pipeline, with
    nothing of resthooks in the way; and what resthooks' listener adds to the calls it makes.

    - ``span``: one span made and ended like an attempt's (``CLIENT``, the same eight
      attributes, explicit start and end times), exported in batches as a run does;
    - ``span_semconv``: the same with the semantic conventions' attributes only (no
      ``resthooks.*``);
    - ``span_unsampled``: the same under a sampler that drops it (what a sampled-out attempt
      costs);
    - ``histogram``: one histogram record with one attribute;
    - ``counter``: one counter add with one attribute (what a delivery paid for
      ``resthooks.deliveries`` before it was observed instead);
    - ``listener``: the instrumentation's listener given one delivered attempt's event
      (a span, a histogram record and the delivery counted), less ``span`` and
      ``histogram``: resthooks' own work per attempt around the SDK's.
    """
    from datetime import datetime, timezone  # noqa: PLC0415

    from opentelemetry import metrics, trace  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF  # noqa: PLC0415
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    from resthooks import Attempt, Dispatcher, Hook, OutcomeKind  # noqa: PLC0415
    from resthooks.lifecycle import AttemptFinished  # noqa: PLC0415
    from resthooks.otel import instrument  # noqa: PLC0415
    from resthooks.stores import MemoryStore  # noqa: PLC0415

    tracer_provider, meter_provider = _providers()
    tracer = trace.get_tracer("floor", tracer_provider=tracer_provider)  # type: ignore[arg-type]
    meter = metrics.get_meter("floor", meter_provider=meter_provider)  # type: ignore[arg-type]
    histogram = meter.create_histogram("floor.duration", unit="s")
    counter = meter.create_counter("floor.deliveries")
    labels = {"resthooks.outcome": "delivered"}
    now = time.time_ns()

    def spans(made_by: object, attributes: dict[str, object]) -> Callable[[int], None]:
        def loop(n: int) -> None:
            for i in range(n):
                span = made_by.start_span(  # type: ignore[attr-defined]
                    "POST", kind=SpanKind.CLIENT, attributes=attributes, start_time=now
                )
                span.end(end_time=now + 1000)
                if i % 500 == 499:  # as a delivery run does, the queue is exported before it fills
                    tracer_provider.force_flush()  # type: ignore[attr-defined]

        return loop

    def records(n: int) -> None:
        for _ in range(n):
            histogram.record(0.001, labels)

    def adds(n: int) -> None:
        for _ in range(n):
            counter.add(1, labels)

    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    at = datetime.now(timezone.utc)
    hook = Hook(
        id="hook_" + "0" * 32,
        owner="bench",
        event="party/created",
        target_url="http://127.0.0.1:8080/hook",
        created_at=at,
        updated_at=at,
    )
    attempt = Attempt(
        delivery_id="msg_" + "0" * 32, number=1, started_at=at, duration=0.001, status=204
    )
    event = AttemptFinished(
        hook=hook, delivery_id=attempt.delivery_id, attempt=attempt, outcome=OutcomeKind.DELIVERED
    )
    instrumentation = instrument(
        Dispatcher(MemoryStore()),
        tracer_provider=tracer_provider,  # type: ignore[arg-type]
        meter_provider=meter_provider,  # type: ignore[arg-type]
        gauges=False,
    )

    def listened(n: int) -> None:
        for i in range(n):
            instrumentation(event)
            if i % 500 == 499:
                tracer_provider.force_flush()  # type: ignore[attr-defined]

    figures: dict[str, list[float]] = defaultdict(list)
    for _ in range(3):  # interleaved, medians: the machine is shared
        figures["span"].append(_per_call(spans(tracer, _ATTRIBUTES), calls))
        figures["span_semconv"].append(_per_call(spans(tracer, _SEMCONV_ONLY), calls))
        figures["span_unsampled"].append(
            _per_call(spans(unsampled.get_tracer("floor"), _ATTRIBUTES), calls)
        )
        figures["histogram"].append(_per_call(records, calls))
        figures["counter"].append(_per_call(adds, calls))
        figures["instrumented"].append(_per_call(listened, calls))
    instrumentation.close()
    tracer_provider.shutdown()  # type: ignore[attr-defined]
    meter_provider.shutdown()  # type: ignore[attr-defined]
    found = {name: statistics.median(values) for name, values in figures.items()}
    found["listener"] = found.pop("instrumented") - found["span"] - found["histogram"]
    return found


def in_process(deliveries: int, rounds: int) -> dict[str, float]:
    """CPU microseconds per delivery without HTTP (``MemoryStore`` and a
    ``RecordingTransport``, so only the engine's own work), medians of interleaved rounds:
    ``none`` (no listener at all), ``default`` (the log listener every Dispatcher starts
    with, logging at its default level), ``sdk`` (a listener making only the SDK calls an
    attempt needs, a span and a histogram record, with fixed attributes: the floor) and
    ``instrumented`` (``resthooks.otel.instrument`` on the same SDK pipeline)."""
    from bench_delivery import ENTITY  # noqa: PLC0415
    from opentelemetry import metrics, trace  # noqa: PLC0415
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    from resthooks import Dispatcher, SystemClock  # noqa: PLC0415
    from resthooks.lifecycle import AttemptFinished, LifecycleEvent  # noqa: PLC0415
    from resthooks.otel import instrument  # noqa: PLC0415
    from resthooks.stores import MemoryStore  # noqa: PLC0415
    from resthooks.testing import RecordingTransport  # noqa: PLC0415

    def one(mode: str) -> float:
        dispatcher = Dispatcher(MemoryStore(), clock=SystemClock(), transport=RecordingTransport())
        dispatcher.subscribe("party/created", "https://example.com/hook", owner="bench")
        providers = None
        if mode == "none":
            dispatcher.remove_listener(dispatcher.log_listener)
        elif mode == "instrumented":
            providers = _providers()
            instrument(dispatcher, tracer_provider=providers[0], meter_provider=providers[1])  # type: ignore[arg-type]
        elif mode == "sdk":
            providers = _providers()
            tracer = trace.get_tracer("floor", tracer_provider=providers[0])  # type: ignore[arg-type]
            meter = metrics.get_meter("floor", meter_provider=providers[1])  # type: ignore[arg-type]
            histogram = meter.create_histogram("floor.duration", unit="s")
            labels = {"resthooks.outcome": "delivered"}

            class Floor:
                lifecycle_events = frozenset({AttemptFinished})

                def __call__(self, event: LifecycleEvent) -> None:
                    if type(event) is not AttemptFinished:  # a Dispatcher that ignores the above
                        return
                    now = time.time_ns()
                    tracer.start_span(
                        "POST", kind=SpanKind.CLIENT, attributes=_ATTRIBUTES, start_time=now
                    ).end(end_time=now + 1000)
                    histogram.record(0.001, labels)

            dispatcher.add_listener(Floor())

        def block() -> None:
            for _ in range(BLOCK):
                dispatcher.emit("party/created", ENTITY, owner="bench")
            assert dispatcher.deliver_due().delivered == BLOCK

        block()
        blocks = max(deliveries // BLOCK, 1)
        started = time.process_time()
        for _ in range(blocks):
            block()
        if providers is not None:
            providers[0].shutdown()  # type: ignore[attr-defined]
            providers[1].shutdown()  # type: ignore[attr-defined]
        return (time.process_time() - started) / (blocks * BLOCK) * 1e6

    modes = ["none", "default", "sdk", "instrumented"]
    per: dict[str, list[float]] = defaultdict(list)
    for n in range(rounds):
        for mode in modes if n % 2 == 0 else reversed(modes):
            per[mode].append(one(mode))
    return {mode: statistics.median(values) for mode, values in per.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000, help="per run")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--quick", action="store_true", help="1,000 deliveries, 2 rounds, shorter loops"
    )
    parser.add_argument("--run", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run(args.url, args.deliveries, args.run)))
        return
    if args.quick:
        args.deliveries, args.rounds = 1000, 2
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "bench_delivery.py"), "--serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    per: dict[str, list[float]] = {mode: [] for mode in MODES}
    ratios: dict[str, list[float]] = {"on": [], "sampled": []}
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        for n in range(args.rounds):
            got = {}
            for mode in MODES if n % 2 == 0 else MODES[::-1]:
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
            for mode, values in ratios.items():
                values.append(got[mode] / got["off"])
            print(
                f"round {n + 1}: CPU per delivery off {got['off']:.0f} us, "
                f"on {got['on']:.0f} us, 1 % sampled {got['sampled']:.0f} us; on / off "
                f"{got['on'] / got['off']:.3f}, sampled / off {got['sampled'] / got['off']:.3f}",
                flush=True,
            )
    finally:
        receiver.kill()
        receiver.wait()
    off, on = statistics.median(per["off"]), statistics.median(per["on"])
    print(
        f"CPU per delivery, medians over {args.rounds} rounds: off {off:.0f} us, on {on:.0f} us, "
        f"1 % sampled {statistics.median(per['sampled']):.0f} us"
    )
    print(
        f"otel on vs off, CPU per delivery: {statistics.median(ratios['on']):.3f}x "
        "(median of rounds)"
    )
    print(
        "otel on, traces 1 % sampled, vs off, CPU per delivery: "
        f"{statistics.median(ratios['sampled']):.3f}x (median of rounds)"
    )

    floor = sdk_floor(5_000 if args.quick else 20_000)
    required = floor["span"] + floor["histogram"]
    print(
        "SDK alone, CPU per call: a span like an attempt's "
        f"{floor['span']:.1f} us ({floor['span'] / off:.1%} of a delivery off); with the "
        f"semantic conventions' attributes only {floor['span_semconv']:.1f} us "
        f"({floor['span_semconv'] / off:.1%}); sampled out {floor['span_unsampled']:.1f} us "
        f"({floor['span_unsampled'] / off:.1%}); a histogram record {floor['histogram']:.1f} us "
        f"({floor['histogram'] / off:.1%}); a counter add {floor['counter']:.1f} us "
        f"({floor['counter'] / off:.1%})"
    )
    print(
        f"resthooks' listener around those calls, per attempt: {floor['listener']:.1f} us "
        f"({floor['listener'] / off:.1%} of a delivery off)"
    )
    print(
        "what a delivery must pay the SDK (a span per attempt, a histogram record): "
        f"{required / off:.1%}"
    )
    print(f"on vs off less what the SDK itself costs: {(on - required) / off:.3f}x")

    inner = in_process(1000 if args.quick else 2000, 3 if args.quick else 7)
    print(
        "without HTTP, CPU per delivery: no listener {none:.1f} us, default (log listener) "
        "{default:.1f} us, SDK calls only {sdk:.1f} us, instrumented {instrumented:.1f} us".format(
            **inner
        )
    )
    print(f"without HTTP, default vs no listener: {inner['default'] / inner['none']:.3f}x")
    print(f"without HTTP, instrumented vs default: {inner['instrumented'] / inner['default']:.3f}x")
    print(
        f"without HTTP, instrumented vs SDK calls only: {inner['instrumented'] / inner['sdk']:.3f}x"
    )


if __name__ == "__main__":
    main()
