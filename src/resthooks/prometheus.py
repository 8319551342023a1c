"""Prometheus metrics for hosts using ``prometheus_client`` (the ``resthooks[prometheus]`` extra).

The figures are :data:`resthooks.observability.METRICS`, under Prometheus names (a test holds
this table to it):

=============================================  =========  ========================================
name                                           type       labels
=============================================  =========  ========================================
``resthooks_deliveries_total``                 counter    ``outcome``
``resthooks_attempt_duration_seconds``         histogram  ``outcome`` (its ``_count``: attempts)
``resthooks_outbox_depth``                     gauge
``resthooks_outbox_due``                       gauge
``resthooks_outbox_retrying``                  gauge
``resthooks_outbox_oldest_due_age_seconds``    gauge
``resthooks_deliveries_in_flight``             gauge
``resthooks_hooks``                            gauge      ``state``
``resthooks_store_up``                         gauge
=============================================  =========  ========================================

The counters and the histogram are ``prometheus_client`` metrics fed by a lifecycle listener
(:func:`instrument`), so they work in ``prometheus_client``'s multiprocess mode (gunicorn with
several workers, ``PROMETHEUS_MULTIPROC_DIR`` set): each process writes its own file and a
scrape adds them up. The gauges come from :class:`OutboxCollector`, which reads the store (with
a cache) when scraped: they describe the whole store, so they are collected once per scrape,
by the process that serves ``/metrics`` (:func:`metrics_registry`).

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from resthooks import Dispatcher
    >>> from resthooks.stores import MemoryStore
    >>> from resthooks.testing import FakeClock, RecordingTransport
    >>> registry = CollectorRegistry()
    >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
    >>> instrumentation = instrument(dispatcher, registry=registry)
    >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    >>> _ = dispatcher.deliver_due()
    >>> text = generate_latest(registry).decode()
    >>> 'resthooks_attempt_duration_seconds_count{outcome="delivered"} 1.0' in text
    True
    >>> 'resthooks_hooks{state="active"} 1.0' in text
    True
    >>> instrumentation.close()

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.exposition import start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - tested in a subprocess without the package
    raise ImportError(
        "resthooks.prometheus needs prometheus_client: install the extra, "
        "pip install 'resthooks[prometheus]'"
    ) from exc

from . import observability
from .clock import Clock
from .errors import ConfigurationError, ResthooksError
from .lifecycle import LifecycleEvent
from .observability import (
    METRICS,
    STORE_UP,
    MetricsListener,
    OutboxMonitor,
)
from .stores import Store

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

__all__ = [
    "Instrumentation",
    "MetricsServer",
    "OutboxCollector",
    "instrument",
    "metrics_registry",
    "multiprocess_mode",
    "serve_metrics",
]


def multiprocess_mode() -> bool:
    """Whether ``prometheus_client`` runs in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``
    is set)."""
    # prometheus_client also honours the old lower-case name.
    return any(
        name in os.environ for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
    )


class OutboxCollector(Collector):
    """A collector of the store's figures: the gauges, read when scraped.

    Reads go through an :class:`~resthooks.observability.OutboxMonitor` (one store read per
    ``max_age`` seconds, however many scrapes). When the store cannot be read, only
    ``resthooks_store_up 0`` is reported.

    Args:
        store: The store to read.
        clock: The Dispatcher's clock (for the age of the oldest due delivery). Default: the
            system clock.
        max_age: Seconds a reading is reused. Default 10 s.
    """

    def __init__(self, store: Store, *, clock: Clock | None = None, max_age: float = 10.0) -> None:
        self.outbox = OutboxMonitor(store, clock=clock, max_age=max_age)

    def describe(self) -> list[Metric]:
        """No description up front: a registry must not read the store when this is added."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The gauges, from the latest reading."""
        up = GaugeMetricFamily(STORE_UP.prometheus_name, STORE_UP.description)
        try:
            figures = self.outbox.figures()
        except ResthooksError:
            up.add_metric([], 0)
            yield up
            return
        families: dict[observability.Metric, GaugeMetricFamily] = {}
        for metric, value, label in figures.gauges():
            family = families.get(metric)
            if family is None:
                labels = [metric.prometheus_label] if metric.prometheus_label else []
                family = families[metric] = GaugeMetricFamily(
                    metric.prometheus_name, metric.description, labels=labels
                )
            family.add_metric([label] if label is not None else [], value)
        yield from families.values()
        up.add_metric([], 1)
        yield up


class _Instruments:
    """The counters and the histogram of one registry (shared by every Dispatcher on it)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counters: dict[observability.Metric, Counter] = {}
        self.histograms: dict[observability.Metric, Histogram] = {}
        for metric in METRICS:
            labels = [metric.prometheus_label] if metric.prometheus_label else []
            if metric.kind == "counter":
                counter = Counter(
                    metric.prometheus_name, metric.description, labels, registry=registry
                )
                self.counters[metric] = counter
                for value in metric.values:
                    counter.labels(value)
            elif metric.kind == "histogram":
                histogram = Histogram(
                    metric.prometheus_name,
                    metric.description,
                    labels,
                    registry=registry,
                    buckets=metric.buckets,
                )
                self.histograms[metric] = histogram
                for value in metric.values:
                    histogram.labels(value)

    def record(self, metric: observability.Metric, value: float, label: str | None) -> None:
        counter = self.counters.get(metric)
        if counter is not None:
            (counter.labels(label) if label is not None else counter).inc(value)
        else:
            histogram = self.histograms[metric]
            (histogram.labels(label) if label is not None else histogram).observe(value)


_INSTRUMENTS: weakref.WeakKeyDictionary[CollectorRegistry, _Instruments] = (
    weakref.WeakKeyDictionary()
)
_INSTRUMENTS_LOCK = threading.Lock()


def _instruments(registry: CollectorRegistry) -> _Instruments:
    with _INSTRUMENTS_LOCK:
        found = _INSTRUMENTS.get(registry)
        if found is None:
            found = _INSTRUMENTS[registry] = _Instruments(registry)
        return found


class Instrumentation:
    """What :func:`instrument` installed; :meth:`close` takes it off.

    Attributes:
        dispatcher: The instrumented Dispatcher.
        registry: Where the counters and histogram are (and the collector, if registered).
        collector: The :class:`OutboxCollector` registered, or ``None``.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        registry: CollectorRegistry,
        collector: OutboxCollector | None,
    ) -> None:
        self.dispatcher = dispatcher
        self.registry = registry
        self.collector = collector
        self._metrics = MetricsListener(_instruments(registry).record)

    lifecycle_events = MetricsListener.lifecycle_events
    """The events it reads; the Dispatcher sends it no other, and builds none for it."""

    def __call__(self, event: LifecycleEvent, /) -> None:
        """The lifecycle listener: counts outcomes and observes durations."""
        self._metrics(event)

    def close(self) -> None:
        """Remove the listener and unregister the collector (the counters stay, at their
        values: Prometheus counters only go up)."""
        self.dispatcher.remove_listener(self)
        if self.collector is not None:
            self.registry.unregister(self.collector)
            self.collector = None

    def __repr__(self) -> str:
        return f"<prometheus.Instrumentation dispatcher={self.dispatcher!r}>"


def instrument(
    dispatcher: Dispatcher,
    *,
    registry: CollectorRegistry | None = None,
    gauges: bool | None = None,
    max_age: float = 10.0,
) -> Instrumentation:
    """Count ``dispatcher``'s outcomes in ``prometheus_client`` metrics.

    Args:
        dispatcher: The Dispatcher whose lifecycle events are counted.
        registry: Where the metrics go. Default: ``prometheus_client``'s global ``REGISTRY``.
            Dispatchers instrumented on the same registry share the same metrics.
        gauges: Also register an :class:`OutboxCollector` on ``registry``. Default: yes,
            except in multiprocess mode, where the gauges belong to the scrape's own registry
            (see :func:`metrics_registry`).
        max_age: Seconds the collector reuses a reading of the store. Default 10 s.

    Returns:
        The :class:`Instrumentation`.
    """
    registry = registry if registry is not None else REGISTRY
    if gauges is None:
        gauges = not multiprocess_mode()
    collector = None
    if gauges:
        collector = OutboxCollector(dispatcher.store, clock=dispatcher.clock, max_age=max_age)
        registry.register(collector)
    instrumentation = Instrumentation(dispatcher, registry, collector)
    dispatcher.add_listener(instrumentation)
    return instrumentation


def metrics_registry(
    store: Store, *, clock: Clock | None = None, max_age: float = 10.0
) -> CollectorRegistry:
    """A registry to serve ``/metrics`` from in multiprocess mode: every process's counters
    (``MultiProcessCollector``) plus the store's gauges, collected once.

    Raises:
        ConfigurationError: If ``PROMETHEUS_MULTIPROC_DIR`` is not set.
    """
    if not multiprocess_mode():
        raise ConfigurationError(
            "metrics_registry() is for prometheus_client's multiprocess mode: set "
            "PROMETHEUS_MULTIPROC_DIR (without it, serve the registry given to instrument())"
        )
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call] # untyped upstream
    registry.register(OutboxCollector(store, clock=clock, max_age=max_age))
    return registry


class MetricsServer:
    """``/metrics`` served over HTTP on a thread (:func:`serve_metrics`).

    Attributes:
        host: The address listened on.
        port: The port listened on (the one picked, if 0 was asked).
    """

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.host = host
        self.port = int(self._server.server_port)

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


def serve_metrics(
    dispatcher: Dispatcher,
    *,
    port: int,
    host: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
) -> tuple[Instrumentation, MetricsServer]:
    """Instrument ``dispatcher`` and serve its metrics on ``http://host:port/metrics``.

    What ``resthooks worker --metrics-port`` does. In multiprocess mode the server shows
    every process's counters (:func:`metrics_registry`); otherwise ``registry`` (default: a
    new one, so that two workers in one process do not collide).

    Args:
        dispatcher: The Dispatcher to instrument.
        port: The port; 0 picks a free one (see :attr:`MetricsServer.port`).
        host: The address to listen on. Default loopback only: give ``0.0.0.0`` for a
            scraper on another machine (a container's).
        registry: Outside multiprocess mode, where the metrics go.

    Returns:
        The instrumentation and the running server; close both when done.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError("port must be an int from 0 to 65535")
    if multiprocess_mode():
        instrumentation = instrument(dispatcher, gauges=False)
        served = metrics_registry(dispatcher.store, clock=dispatcher.clock)
    else:
        served = registry if registry is not None else CollectorRegistry()
        instrumentation = instrument(dispatcher, registry=served)
    try:
        server = MetricsServer(served, host=host, port=port)
    except OSError as exc:
        instrumentation.close()
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return instrumentation, server
