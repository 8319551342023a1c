"""Emits one event under a traced request, in a process of its own, for tests/test_otel.py.

Usage: ``python otel_emitter.py DB``. It instruments a Dispatcher on the SQLite file with the
OpenTelemetry SDK, emits ``party/created`` inside a ``POST /parties`` span, and prints the
ids of the request's span (the one the emit was made in) as JSON. It makes no attempt:
another process delivers.
"""

from __future__ import annotations

import json
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from resthooks import Dispatcher
from resthooks.otel import instrument
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY


def main(db: str) -> int:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    store = SQLiteStore(db)
    try:
        dispatcher = Dispatcher(store, network_policy=LOOPBACK_POLICY)
        instrument(dispatcher, tracer_provider=provider)
        with provider.get_tracer("host").start_as_current_span("POST /parties"):
            created = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    finally:
        store.close()
    (request,) = spans.get_finished_spans()  # the emit makes no span of its own
    print(
        json.dumps(
            {
                "trace_id": format(request.context.trace_id, "032x"),
                "emit_span_id": format(request.context.span_id, "016x"),
                "deliveries": len(created),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
