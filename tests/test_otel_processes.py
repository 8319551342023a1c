"""The link from an attempt to its emit survives the process boundary: the emit's trace
context is stored with the delivery (here in a SQLite file two processes share)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from resthooks import Dispatcher
from resthooks.otel import instrument
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, HookReceiver

EMITTER = Path(__file__).with_name("otel_emitter.py")


def test_an_attempt_in_another_process_links_to_the_emit(tmp_path: Path) -> None:
    """A process emits under a traced request and exits; this process delivers from the same
    SQLite file: its attempt span is linked to the span the emit was made in, in a trace of
    its own."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    with HookReceiver() as receiver:
        dispatcher = Dispatcher(store, network_policy=LOOPBACK_POLICY)
        receiver.subscribe(dispatcher, "party/created", owner="acme")
        done = subprocess.run(
            [sys.executable, str(EMITTER), str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        emitted = json.loads(done.stdout)
        assert emitted["deliveries"] == 1

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        instrument(dispatcher, tracer_provider=provider)
        assert dispatcher.deliver_due().delivered == 1
        receiver.wait_for(1)
    store.close()
    (attempt,) = spans.get_finished_spans()
    (link,) = attempt.links
    assert format(link.context.trace_id, "032x") == emitted["trace_id"]
    assert format(link.context.span_id, "016x") == emitted["emit_span_id"]
    assert link.context.is_remote
    assert attempt.context.trace_id != link.context.trace_id  # the attempt's own trace


def test_a_retry_keeps_the_link(tmp_path: Path) -> None:
    """Every attempt of a delivery, retries included, links to the same emit."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    from resthooks.testing import FakeClock  # noqa: PLC0415

    clock = FakeClock()
    with HookReceiver() as receiver:
        dispatcher = Dispatcher(store, clock=clock, network_policy=LOOPBACK_POLICY)
        instrument(dispatcher, tracer_provider=provider)
        receiver.subscribe(dispatcher, "party/created", owner="acme", path="/h")
        receiver.answer(503, 200, path="/h")
        with provider.get_tracer("host").start_as_current_span("POST /parties"):
            dispatcher.emit("party/created", {"id": 1}, owner="acme")
        dispatcher.deliver_due()
        clock.advance(10)
        dispatcher.deliver_due()
    store.close()
    request, first, second = spans.get_finished_spans()
    assert request.name == "POST /parties"
    for attempt in (first, second):
        assert [link.context.span_id for link in attempt.links] == [request.context.span_id]


def test_a_delivery_emitted_without_tracing_has_no_link(tmp_path: Path) -> None:
    """Deliveries emitted before instrumenting (no trace context stored) get unlinked spans."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    with HookReceiver() as receiver:
        dispatcher = Dispatcher(store, network_policy=LOOPBACK_POLICY)
        receiver.subscribe(dispatcher, "party/created", owner="acme")
        dispatcher.emit("party/created", {"id": 1}, owner="acme")
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        instrument(dispatcher, tracer_provider=provider)
        dispatcher.deliver_due()
    store.close()
    (attempt,) = spans.get_finished_spans()
    assert attempt.links == ()
