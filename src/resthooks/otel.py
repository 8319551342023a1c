"""OpenTelemetry traces and metrics for a Dispatcher (the ``resthooks[otel]`` extra).

:func:`instrument` adds, to one :class:`~resthooks.Dispatcher`:

- at every :meth:`~resthooks.Dispatcher.emit`, the W3C ``traceparent`` of the span current
  in the caller (the host's request span, say) is stored with each delivery it creates; no
  span of its own is made for the emit (it would cost as much as the attempt's and tell
  nothing the caller's span does not);
- a ``CLIENT`` span per attempt, following the HTTP client semantic conventions, *linked* to
  the span the emit was made in, even when the attempt is made minutes later by a worker in
  another process (an emit made outside any span has nothing to link to);
- the metrics of :mod:`resthooks.observability`: attempt durations by outcome (a histogram,
  which counts the attempts too), deliveries by outcome (an observable counter, read at each
  collection from totals kept in the process: a delivery pays an addition, not an SDK
  measurement), and observable gauges over read-only, cached store queries (outbox depth,
  due, retrying, in flight, age of the oldest due delivery, hooks by state).

Like every library, resthooks depends on ``opentelemetry-api`` only and never configures the
SDK: without a tracer or meter provider set by the application, everything is a no-op. The
spans of attempts are made from :class:`~resthooks.lifecycle.AttemptFinished` events, after
the store recorded the outcome, with the attempt's own start time and duration (read from the
Dispatcher's clock), so they come from any worker that sends the lifecycle events (threads,
asyncio, ``deliver_due``).

What a span never carries: the query string or credentials of the URL, the body, headers or
signature of the request, or the response. ``url.full`` is left out unless
``record_url=True``, and then masked (credentials and query string replaced by ``***``):
the paths of webhook URLs often hold a token of their own.

Example:
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    ...     InMemorySpanExporter,
    ... )
    >>> from resthooks import Dispatcher
    >>> from resthooks.stores import MemoryStore
    >>> from resthooks.testing import FakeClock, RecordingTransport
    >>> exporter = InMemorySpanExporter()
    >>> provider = TracerProvider()
    >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
    >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
    >>> instrumentation = instrument(dispatcher, tracer_provider=provider)
    >>> _ = dispatcher.subscribe("party/created", "https://example.com/h?t=1", owner="acme")
    >>> tracer = provider.get_tracer("host")
    >>> with tracer.start_as_current_span("POST /parties") as request:
    ...     _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    >>> _ = dispatcher.deliver_due()
    >>> request_span, attempt = exporter.get_finished_spans()
    >>> attempt.name, attempt.attributes["http.response.status_code"]
    ('POST', 204)
    >>> attempt.links[0].context.span_id == request.get_span_context().span_id
    True
    >>> instrumentation.close()

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from importlib.metadata import version
from typing import TYPE_CHECKING

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import Histogram, Observation
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
except ImportError as exc:  # pragma: no cover - tested in a subprocess without the package
    raise ImportError(
        "resthooks.otel needs OpenTelemetry's API: install the extra, pip install 'resthooks[otel]'"
    ) from exc

from .errors import ConfigurationError, ResthooksError
from .lifecycle import AttemptFinished, LifecycleEvent
from .observability import (
    METRICS,
    STORE_UP,
    Metric,
    MetricsListener,
    OutboxMonitor,
    attempt_outcome,
)
from .tracing import EmitTrace, valid_traceparent
from .urls import mask_url

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider
    from opentelemetry.trace import TracerProvider

    from .dispatcher import Dispatcher

__all__ = ["Instrumentation", "instrument"]

logger = logging.getLogger("resthooks")

_SCOPE = "resthooks"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CLIENT = SpanKind.CLIENT  # read once: an enum member read from its class costs a lookup chain
_NOTHING_TO_DO = nullcontext()  # what the emit observer returns: it works before the store call


class Instrumentation:
    """What :func:`instrument` installed on one Dispatcher; :meth:`close` takes it off.

    Attributes:
        dispatcher: The instrumented Dispatcher.
        tracer: The tracer spans are made with.
        meter: The meter of the metrics.
        outbox: The cached store queries behind the gauges.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        outbox_max_age: float,
        record_url: bool,
        gauges: bool,
    ) -> None:
        self.dispatcher = dispatcher
        self.record_url = record_url
        self.closed = False
        release = version("resthooks")
        self.tracer = trace.get_tracer(_SCOPE, release, tracer_provider=tracer_provider)
        self.meter = metrics.get_meter(_SCOPE, release, meter_provider=meter_provider)
        self.outbox = OutboxMonitor(
            dispatcher.store, clock=dispatcher.clock, max_age=outbox_max_age
        )
        # Keyed by name: a str's hash is cached by Python itself, a Metric's is a method call.
        self._histograms: dict[str, tuple[Histogram, dict[str | None, dict[str, str] | None]]] = {}
        # The counters' totals, per figure and label value: what their observable counters
        # report at each collection. An addition here costs a delivery far less than a
        # synchronous counter's add (the SDK hashes the attributes of every measurement).
        self._totals: dict[str, dict[str | None, float]] = {}
        self._totals_lock = threading.Lock()
        for metric in METRICS:
            if metric.kind == "counter":
                self._totals[metric.name] = dict.fromkeys(metric.values or (None,), 0)
                self.meter.create_observable_counter(
                    metric.name,
                    callbacks=[self._counter_callback(metric)],
                    unit=metric.unit,
                    description=metric.description,
                )
            elif metric.kind == "histogram":
                histogram = self.meter.create_histogram(
                    metric.name,
                    unit=metric.unit,
                    description=metric.description,
                    explicit_bucket_boundaries_advisory=metric.buckets,
                )
                # One attribute dict per label value, built once: the SDK reads it per record.
                labels = {v: _labelled(metric, v) for v in metric.values or (None,)}
                self._histograms[metric.name] = (histogram, labels)
            elif gauges:
                self.meter.create_observable_gauge(
                    metric.name,
                    callbacks=[self._gauge_callback(metric)],
                    unit=metric.unit,
                    description=metric.description,
                )
        self._metrics = MetricsListener(self._record)

    # -- metrics -----------------------------------------------------------------------------

    def _record(self, metric: Metric, value: float, label: str | None) -> None:
        name = metric.name
        histogram = self._histograms.get(name)
        if histogram is not None:
            instrument, labels = histogram
            attributes = labels.get(label) if label in labels else _labelled(metric, label)
            instrument.record(value, attributes)
            return
        totals = self._totals[name]
        with self._totals_lock:  # several threads may record outcomes at once
            totals[label] = totals.get(label, 0) + value

    def _counter_callback(
        self, metric: Metric
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        totals = self._totals[metric.name]

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            # Counted since instrument(), and still reported after close(): a counter
            # only goes up, and what was counted stays counted.
            with self._totals_lock:
                counted = list(totals.items())
            return [Observation(value, _labelled(metric, label)) for label, value in counted]

        return observe

    def _gauge_callback(self, metric: Metric) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if self.closed:
                return []
            try:
                figures = self.outbox.figures()
            except ResthooksError as exc:
                if metric is STORE_UP:
                    return [Observation(0)]
                logger.warning(
                    "metrics: the store could not be read (%s); %s not observed",
                    type(exc).__name__,
                    metric.name,
                )
                return []
            if metric is STORE_UP:
                return [Observation(1)]
            return [
                Observation(value, _labelled(metric, label))
                for m, value, label in figures.gauges()
                if m is metric
            ]

        return observe

    # -- the lifecycle listener ----------------------------------------------------------------

    lifecycle_events = MetricsListener.lifecycle_events
    """The events it reads (:class:`~resthooks.lifecycle.AttemptFinished` for the spans and
    both metrics, :class:`~resthooks.lifecycle.DeliveryCancelled` for the deliveries
    cancelled); the Dispatcher sends it no other, and builds none for it."""

    def __call__(self, event: LifecycleEvent, /) -> None:
        """The lifecycle listener: a span per attempt, and the metrics of every event."""
        if self.closed:
            return
        if type(event) is AttemptFinished:
            self._attempt_span(event)
        self._metrics(event)

    def _attempt_span(self, event: AttemptFinished) -> None:
        attempt = event.attempt
        hook = event.hook
        # What only the hook decides is read from one cached tuple per hook and URL.
        address, port, masked = _target(hook.target_url)
        attributes: dict[str, str | int] = {
            "http.request.method": "POST",
            "server.address": address,
            "server.port": port,
            "resthooks.delivery.id": event.delivery_id,
            "resthooks.hook.id": hook.id,
            "resthooks.event": hook.event,
            "resthooks.outcome": attempt_outcome(event),
        }
        if attempt.number > 1:
            attributes["http.request.resend_count"] = attempt.number - 1
        if self.record_url:
            attributes["url.full"] = masked
        status = attempt.status
        if status is not None:
            attributes["http.response.status_code"] = status
            error_type = None if 200 <= status < 300 else str(status)
        else:  # no answer: the kind of transport error
            error_type = attempt.error_kind or "_OTHER"
        if error_type is not None:
            attributes["error.type"] = error_type
        context = _span_context(event.trace_context) if event.trace_context else None
        start = int(attempt.started_at.timestamp() * 1e9)
        span = self.tracer.start_span(
            "POST",
            kind=_CLIENT,
            attributes=attributes,
            links=(Link(context),) if context is not None else None,
            start_time=start,
        )
        if error_type is not None:
            # The Dispatcher redacted the error already (no credentials, no query string).
            span.set_status(Status(StatusCode.ERROR, attempt.error or error_type))
        span.end(end_time=start + int(attempt.duration * 1e9))

    # -- the emit observer ---------------------------------------------------------------------

    def _observe_emit(self, emit: EmitTrace) -> AbstractContextManager[object]:
        # The caller's current span is the emit's context: its traceparent is stored with
        # the deliveries, for their attempts' spans to link to. No span of our own, and no
        # context attached: each would cost as much as the rest of the emit.
        if not self.closed:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:  # no span current (or the no-op tracer's): nothing to store
                emit.trace_context = (
                    f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
                )
        return _NOTHING_TO_DO

    def close(self) -> None:
        """Stop: remove the listener and the emit observer; the gauges observe nothing more."""
        self.closed = True
        self.dispatcher.remove_listener(self)
        if self.dispatcher.emit_observer == self._observe_emit:
            self.dispatcher.emit_observer = None

    def __repr__(self) -> str:
        return f"<Instrumentation dispatcher={self.dispatcher!r}>"


def instrument(
    dispatcher: Dispatcher,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    outbox_max_age: float = 10.0,
    record_url: bool = False,
    gauges: bool = True,
) -> Instrumentation:
    """Trace and measure ``dispatcher`` with OpenTelemetry.

    Args:
        dispatcher: The Dispatcher to instrument (once).
        tracer_provider: Default: the global one (a no-op until the application sets one).
        meter_provider: Default: the global one.
        outbox_max_age: Seconds the store's figures are reused between two observations of
            the gauges (see :class:`~resthooks.observability.OutboxMonitor`). Default 10 s.
        record_url: Put the masked target URL in ``url.full``. Default off: a webhook URL's
            path often carries a token.
        gauges: Register the observable gauges. Turn them off in processes that only emit
            (web servers) when a worker process reports them already: every process would
            report the same store-wide figures.

    Returns:
        The :class:`Instrumentation`; its :meth:`~Instrumentation.close` undoes this.

    Raises:
        ConfigurationError: If the Dispatcher already has an emit observer.
    """
    if dispatcher.emit_observer is not None:
        raise ConfigurationError(
            "this Dispatcher already has an emit observer (is it instrumented already?)"
        )
    instrumentation = Instrumentation(
        dispatcher,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        outbox_max_age=outbox_max_age,
        record_url=record_url,
        gauges=gauges,
    )
    dispatcher.emit_observer = instrumentation._observe_emit
    dispatcher.add_listener(instrumentation)
    return instrumentation


def _labelled(metric: Metric, label: str | None) -> dict[str, str] | None:
    """The attributes of one measurement of ``metric`` with the label value ``label``."""
    return {metric.attribute: label} if metric.attribute and label is not None else None


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[str, int, str]:
    """``server.address``, ``server.port`` and the masked URL of a target (one parse per URL)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "", 0, "<unparseable URL>"
    return (
        parts.hostname or "",
        port if port is not None else _DEFAULT_PORTS.get(parts.scheme.lower(), 0),
        mask_url(url),
    )


@lru_cache(maxsize=1024)
def _span_context(traceparent: str) -> SpanContext | None:
    """The remote span context of a stored ``traceparent`` (as
    :func:`resthooks.tracing.valid_traceparent` keeps them), or ``None``."""
    if valid_traceparent(traceparent) is None:
        return None
    _, trace_id, span_id, flags = traceparent.split("-")
    return SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(flags, 16)),
    )
