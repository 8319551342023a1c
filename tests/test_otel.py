"""OpenTelemetry spans and metrics of real deliveries, read with the SDK's in-memory exporters."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from resthooks import ConfigurationError, Dispatcher, Hook, SystemClock, Timeouts, generate_secret
from resthooks.otel import instrument
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver


class Telemetry:
    """An SDK tracer provider and meter provider whose output stays in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def points(self) -> dict[str, list[Any]]:
        """Metric name -> its data points, from one collection."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def value(self, name: str, **attributes: str) -> float | None:
        for point in self.points().get(name, []):
            if dict(point.attributes or {}) == attributes:
                return point.value  # type: ignore[no-any-return]
        return None

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture(name="telemetry")
def _telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    yield telemetry
    telemetry.close()


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def http_dispatcher(store: Any = None, clock: Any = None) -> Dispatcher:
    return Dispatcher(
        store if store is not None else MemoryStore(),
        clock=clock if clock is not None else SystemClock(),
        network_policy=LOOPBACK_POLICY,
        timeouts=Timeouts(connect=1.0, total=2.0),
    )


def test_a_span_per_attempt_follows_the_http_client_conventions(
    telemetry: Telemetry, receiver: HookReceiver
) -> None:
    """Each attempt to a real receiver is a CLIENT span named POST with the semantic
    conventions' attributes; a failed answer sets error.type and an error status."""
    dispatcher = http_dispatcher()
    instrument(
        dispatcher,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )
    hook = receiver.subscribe(dispatcher, "party/created", owner="acme", path="/crm")
    receiver.answer(500, 200, path="/crm")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().retried == 1
    dispatcher.clock = FakeClock(start=SystemClock().now())  # the retry is due 5 s later
    dispatcher.clock.advance(6)
    assert dispatcher.deliver_due().delivered == 1

    first, second = telemetry.finished("POST")
    for span in (first, second):
        assert span.kind == SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert receiver.port == span.attributes["server.port"]
        assert hook.id == span.attributes["resthooks.hook.id"]
        assert span.attributes["resthooks.event"] == "party/created"
        assert "url.full" not in span.attributes  # off unless asked for
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["http.response.status_code"] == 500
    assert first.attributes["error.type"] == "500"
    assert first.attributes["resthooks.outcome"] == "retry"
    assert first.status.status_code == StatusCode.ERROR
    assert second.attributes["http.response.status_code"] == 200
    assert "error.type" not in second.attributes
    assert second.attributes["resthooks.outcome"] == "delivered"
    assert second.attributes["http.request.resend_count"] == 1
    assert second.status.status_code == StatusCode.UNSET
    assert first.start_time is not None
    assert first.end_time is not None
    assert first.end_time >= first.start_time


def test_a_connection_error_is_an_error_type_without_a_status(telemetry: Telemetry) -> None:
    """An attempt that got no answer has error.type set to the kind of transport error."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dispatcher = http_dispatcher(clock=FakeClock())
    instrument(dispatcher, tracer_provider=telemetry.tracer_provider)
    dispatcher.subscribe("party/created", f"http://127.0.0.1:{port}/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    (span,) = telemetry.finished("POST")
    assert span.attributes is not None
    assert span.attributes["error.type"] == "connection"
    assert "http.response.status_code" not in span.attributes
    assert span.status.status_code == StatusCode.ERROR


def test_spans_never_carry_credentials_query_body_or_signature(
    telemetry: Telemetry, receiver: HookReceiver
) -> None:
    """With record_url, url.full is masked; no attribute or status holds the query string,
    the URL's password, the body or the signature."""
    dispatcher = http_dispatcher(clock=FakeClock())
    instrument(dispatcher, tracer_provider=telemetry.tracer_provider, record_url=True)
    url = f"http://user:hunter2@127.0.0.1:{receiver.port}/hook?token=s3cr3t"
    # Subscribe refuses credentials: a hook stored before it did.
    now = dispatcher.clock.now()
    hook, _ = dispatcher.store.add_hook(
        Hook(id="hook_legacy", owner="acme", event="party/created", target_url=url,
             created_at=now, updated_at=now, secret=generate_secret()),
        max_per_owner=None,
    )  # fmt: skip
    receiver.answer(503)
    dispatcher.emit("party/created", {"name": "Body Secret"}, owner="acme")
    dispatcher.deliver_due()
    (request,) = receiver.wait_for(1)
    (span,) = telemetry.finished("POST")
    assert span.attributes is not None
    assert f"http://***@127.0.0.1:{receiver.port}/hook?***" == span.attributes["url.full"]
    shown = repr(dict(span.attributes)) + repr(span.status.description)
    signature = request.headers["webhook-signature"]
    assert hook.secret is not None
    for secret in ("hunter2", "s3cr3t", "Body Secret", signature, hook.secret):
        assert secret not in shown


def test_an_emit_stores_the_current_span_and_makes_none(telemetry: Telemetry) -> None:
    """emit makes no span of its own: each delivery keeps the traceparent of the span current
    in the caller (the host's request), and an emit outside any span keeps none."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
    instrument(dispatcher, tracer_provider=telemetry.tracer_provider)
    dispatcher.subscribe("party/created", "https://example.com/a", owner="acme")
    dispatcher.subscribe("party/created", "https://example.com/b", owner="acme")
    tracer = telemetry.tracer_provider.get_tracer("host")
    with tracer.start_as_current_span("POST /parties") as request_span:
        made = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    context = request_span.get_span_context()
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    claims = dispatcher.store.claim_due(
        now=dispatcher.clock.now(), limit=10, lease_until=dispatcher.clock.now() + dispatcher.lease
    )
    assert {expected} == {c.trace_context for c in claims}
    assert len(made) == 2
    assert [s.name for s in telemetry.finished()] == ["POST /parties"]
    dispatcher.emit("party/created", {"id": 2}, owner="acme")  # outside any span
    later = dispatcher.store.claim_due(
        now=dispatcher.clock.now(), limit=10, lease_until=dispatcher.clock.now() + dispatcher.lease
    )
    assert [c.trace_context for c in later] == [None, None]


def test_metrics_of_a_run(telemetry: Telemetry, receiver: HookReceiver) -> None:
    """Attempts and deliveries by outcome, the duration histogram and the gauges, after a run
    against a real receiver: one delivered, one retrying, one hook gone."""
    clock = FakeClock()
    dispatcher = http_dispatcher(clock=clock)
    instrument(
        dispatcher,
        meter_provider=telemetry.meter_provider,
        outbox_max_age=0,
    )
    receiver.subscribe(dispatcher, "party/created", owner="acme", path="/ok")
    receiver.subscribe(dispatcher, "party/created", owner="acme", path="/flaky")
    receiver.subscribe(dispatcher, "party/created", owner="acme", path="/gone")
    receiver.answer(500, path="/flaky")
    receiver.answer(410, path="/gone")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()

    durations = {
        dict(point.attributes)["resthooks.outcome"]: point.count
        for point in telemetry.points()["resthooks.attempt.duration"]
    }
    assert durations == {"delivered": 1, "retry": 1, "gone": 1}, "the histogram counts attempts"
    assert "resthooks.attempts" not in telemetry.points(), "no second count of the same"
    assert telemetry.value("resthooks.deliveries", **{"resthooks.outcome": "delivered"}) == 1
    assert telemetry.value("resthooks.deliveries", **{"resthooks.outcome": "cancelled"}) == 1
    histogram = telemetry.points()["resthooks.attempt.duration"]
    assert sum(point.count for point in histogram) == 3
    clock.advance(65)  # the retry fell due 5 s after the attempt: it has waited 60 s
    assert telemetry.value("resthooks.outbox.depth") == 1
    assert telemetry.value("resthooks.deliveries.in_flight") == 0
    assert telemetry.value("resthooks.hooks", **{"resthooks.hook.state": "active"}) == 2
    age = telemetry.value("resthooks.outbox.oldest_due_age")
    assert age is not None
    assert 59 < age < 61
    assert telemetry.value("resthooks.store.up") == 1


def test_gauges_share_one_cached_store_read(telemetry: Telemetry) -> None:
    """Every gauge of a collection comes from one store read, reused within outbox_max_age."""
    reads = []

    class CountingStore(MemoryStore):
        def stats(self, *, owner: str | None = None) -> Any:
            reads.append(owner)
            return super().stats(owner=owner)

    dispatcher = Dispatcher(CountingStore(), clock=FakeClock())
    instrument(dispatcher, meter_provider=telemetry.meter_provider, outbox_max_age=3600)
    telemetry.points()
    telemetry.points()
    assert len(reads) == 1


def test_an_unreadable_store_reports_store_up_zero(tmp_path: Any, telemetry: Telemetry) -> None:
    """When the store cannot be read, store.up is 0 and the other gauges are not observed."""
    store = SQLiteStore(tmp_path / "hooks.db")
    dispatcher = Dispatcher(store, clock=FakeClock())
    instrument(dispatcher, meter_provider=telemetry.meter_provider, outbox_max_age=0)
    store.close()
    assert telemetry.value("resthooks.store.up") == 0
    assert telemetry.value("resthooks.outbox.depth") is None


def test_the_thread_worker_is_traced_too(telemetry: Telemetry, receiver: HookReceiver) -> None:
    """Spans come from the lifecycle events, so the threaded worker's attempts have them."""
    dispatcher = http_dispatcher()
    instrument(dispatcher, tracer_provider=telemetry.tracer_provider)
    receiver.subscribe(dispatcher, "party/created", owner="acme")
    for i in range(5):
        dispatcher.emit("party/created", {"id": i}, owner="acme")
    assert dispatcher.run_until_idle(workers=3).delivered == 5
    assert len(telemetry.finished("POST")) == 5


def test_close_stops_spans_and_metrics(telemetry: Telemetry) -> None:
    """After close(), emits and attempts make no spans and the observer is gone."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
    instrumentation = instrument(dispatcher, tracer_provider=telemetry.tracer_provider)
    instrumentation.close()
    assert dispatcher.emit_observer is None
    dispatcher.subscribe("party/created", "https://example.com/a", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert telemetry.finished() == []
    instrument(dispatcher, tracer_provider=telemetry.tracer_provider)  # again, after close


def test_instrumenting_twice_is_refused() -> None:
    """A second instrument() of the same Dispatcher raises instead of doubling every span."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
    instrument(dispatcher)
    with pytest.raises(ConfigurationError, match="emit observer"):
        instrument(dispatcher)


def test_without_an_sdk_everything_is_a_no_op() -> None:
    """With only the API (the global no-op providers), delivery works and nothing fails."""
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
    instrument(dispatcher)
    dispatcher.subscribe("party/created", "https://example.com/a", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")


def test_emit_many_links_every_attempt_to_the_span_it_was_made_in(telemetry: Telemetry) -> None:
    """emit_many under an instrumented Dispatcher, in the host's span: the attempt of every
    event's delivery links to that span."""
    from resthooks.testing import RecordingTransport  # noqa: PLC0415

    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
    instrument(dispatcher, tracer_provider=telemetry.tracer_provider)
    dispatcher.subscribe("party/created", "https://example.com/a", owner="acme")
    dispatcher.subscribe("task/completed", "https://example.com/b", owner="acme")
    tracer = telemetry.tracer_provider.get_tracer("host")
    with tracer.start_as_current_span("POST /import") as request:
        created = dispatcher.emit_many(
            [("party/created", {"id": 1}, "acme"), ("task/completed", {"id": 2}, "acme")]
        )
    assert len(created) == 2
    dispatcher.deliver_due()
    attempts = telemetry.finished("POST")
    assert {"party/created", "task/completed"} == {
        a.attributes["resthooks.event"]  # type: ignore[index]
        for a in attempts
    }
    for attempt in attempts:
        (link,) = attempt.links
        assert link.context.span_id == request.get_span_context().span_id


def test_deliveries_are_counted_in_the_process_and_observed(
    telemetry: Telemetry, receiver: HookReceiver
) -> None:
    """resthooks.deliveries is an observable counter over totals the instrumentation keeps:
    every outcome is reported from 0, deliveries recorded by several worker threads are all
    counted, and what was counted is still reported after close()."""
    dispatcher = http_dispatcher()
    instrumentation = instrument(dispatcher, meter_provider=telemetry.meter_provider, gauges=False)
    assert {0} == {
        telemetry.value("resthooks.deliveries", **{"resthooks.outcome": outcome})
        for outcome in ("delivered", "failed", "cancelled")
    }
    receiver.subscribe(dispatcher, "party/created", owner="acme")
    for i in range(40):
        dispatcher.emit("party/created", {"id": i}, owner="acme")
    assert dispatcher.run_until_idle(workers=4).delivered == 40
    assert telemetry.value("resthooks.deliveries", **{"resthooks.outcome": "delivered"}) == 40
    (sums,) = [
        metric.data
        for resource in telemetry.reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "resthooks.deliveries"
    ]
    assert sums.is_monotonic, "a counter: it only goes up"
    instrumentation.close()
    dispatcher.emit("party/created", {"id": 41}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1
    assert telemetry.value("resthooks.deliveries", **{"resthooks.outcome": "delivered"}) == 40
