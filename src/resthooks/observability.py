"""What resthooks measures, in one place: the figures every exporter shows.

The OpenTelemetry (:mod:`resthooks.otel`) and Prometheus (:mod:`resthooks.prometheus`)
integrations, the health check (:mod:`resthooks.health`) and the ``resthooks worker`` live
view are all built from the two sources defined here, so they can never disagree (and the
log lines of :class:`LogListener`, every Dispatcher's first listener, from the same events):

- :class:`MetricsListener`, a lifecycle listener (see :mod:`resthooks.lifecycle`) that turns
  every recorded outcome into measurements: attempt durations by outcome (a histogram, whose
  count is the number of attempts), deliveries that reached a final state by outcome. It
  decides nothing: it reads the events the Dispatcher sends after the store has recorded
  each outcome, from any worker (threads, asyncio, or ``deliver_due``).
- :class:`OutboxMonitor`, read-only store queries behind a cache: outbox depth, deliveries
  due now, in flight and waiting for a retry, the age of the oldest due delivery, and hooks
  by state. The cache keeps frequent scrapes (several Prometheus servers, an OpenTelemetry
  reader, a probe) from becoming frequent store queries.

This module imports nothing optional. The metric definitions (:data:`METRICS`) are the one
table both exporters read: each figure's name, kind, unit, description, label and its values,
and a histogram's buckets, from which each exporter derives its own spelling
(``resthooks.attempt.duration`` in OpenTelemetry is ``resthooks_attempt_duration_seconds``
in Prometheus).

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Literal

import attrs

from ._log import LogListener
from .clock import Clock, SystemClock
from .lifecycle import AttemptFinished, DeliveryCancelled, LifecycleEvent
from .model import DeliveryState, HookState, OutboxStats, OutcomeKind
from .outcomes import Verdict
from .stores import Store

__all__ = [
    "ATTEMPT_DURATION",
    "ATTEMPT_DURATION_BUCKETS",
    "DELIVERIES",
    "DELIVERIES_IN_FLIGHT",
    "HOOKS",
    "METRICS",
    "OUTBOX_DEPTH",
    "OUTBOX_DUE",
    "OUTBOX_OLDEST_DUE_AGE",
    "OUTBOX_RETRYING",
    "STORE_UP",
    "LogListener",
    "Metric",
    "MetricsListener",
    "OutboxFigures",
    "OutboxMonitor",
    "attempt_outcome",
    "read_outbox",
]

MetricKind = Literal["counter", "histogram", "gauge"]


@attrs.frozen(cache_hash=True)  # a key of the exporters' tables, hashed per measurement
class Metric:
    """One figure resthooks exports: its name, kind, unit and description.

    Attributes:
        name: The OpenTelemetry name, dotted (``resthooks.attempt.duration``).
        kind: ``counter``, ``histogram`` or ``gauge``.
        unit: UCUM unit: ``s`` for seconds, ``{attempt}``, ``{delivery}``, ``{hook}``.
        description: One sentence.
        label: The one label the figure is broken down by, or ``None``. Its OpenTelemetry
            attribute is ``resthooks.<label>`` (``resthooks.outcome``,
            ``resthooks.hook.state``); its Prometheus label is the last part (``outcome``,
            ``state``).
        values: The values ``label`` takes (exporters start each series at 0).
        buckets: A histogram's bucket bounds (empty for the other kinds).

    .. versionchanged:: 0.2.0
       ``buckets``.

    Example:
        >>> ATTEMPT_DURATION.prometheus_name, ATTEMPT_DURATION.attribute
        ('resthooks_attempt_duration_seconds', 'resthooks.outcome')
        >>> DELIVERIES.prometheus_name
        'resthooks_deliveries_total'
    """

    name: str
    kind: MetricKind
    unit: str
    description: str
    label: str | None = None
    values: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def attribute(self) -> str | None:
        """The OpenTelemetry attribute key of :attr:`label`."""
        return None if self.label is None else f"resthooks.{self.label}"

    @property
    def prometheus_label(self) -> str | None:
        """The Prometheus label name of :attr:`label`."""
        return None if self.label is None else self.label.rpartition(".")[2]

    @property
    def prometheus_name(self) -> str:
        """The Prometheus name (underscores, the unit as a suffix, ``_total`` on counters)."""
        name = self.name.replace(".", "_")
        if self.unit == "s":
            name += "_seconds"
        if self.kind == "counter":
            name += "_total"
        return name


ATTEMPT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    30.0,
)
"""Histogram bucket bounds for :data:`ATTEMPT_DURATION`, in seconds: loopback answers to the
default 15 s deadline of an attempt."""

DELIVERIES = Metric(
    "resthooks.deliveries",
    "counter",
    "{delivery}",
    "Deliveries that reached a final state, by outcome: delivered, failed or cancelled.",
    label="outcome",
    values=("delivered", "failed", "cancelled"),
)
"""Deliveries that reached a final state, by outcome (a counter)."""
ATTEMPT_DURATION = Metric(
    "resthooks.attempt.duration",
    "histogram",
    "s",
    "How long attempts took, from the first byte sent to the answer or the error, by outcome: "
    "delivered, retry, failed, gone, or late (the delivery was cancelled while the attempt was "
    "in flight). Its count is the number of attempts written to the attempt log.",
    label="outcome",
    values=("delivered", "retry", "failed", "gone", "late"),
    buckets=ATTEMPT_DURATION_BUCKETS,
)
"""Attempt durations in seconds, by outcome (a histogram; its count counts the attempts).

.. versionchanged:: 0.2.0
   It counts the attempts: the ``resthooks.attempts`` counter beside it, which counted the
   same, is gone."""
OUTBOX_DEPTH = Metric(
    "resthooks.outbox.depth",
    "gauge",
    "{delivery}",
    "Deliveries not yet final: pending (due now or later) or in flight.",
)
"""Deliveries not yet final (a gauge)."""
OUTBOX_DUE = Metric(
    "resthooks.outbox.due",
    "gauge",
    "{delivery}",
    "Deliveries due now and not yet claimed (or whose claim expired).",
)
"""Deliveries due now (a gauge)."""
OUTBOX_RETRYING = Metric(
    "resthooks.outbox.retrying",
    "gauge",
    "{delivery}",
    "Pending deliveries with at least one failed attempt, waiting for their next one.",
)
"""Pending deliveries waiting for a retry (a gauge)."""
OUTBOX_OLDEST_DUE_AGE = Metric(
    "resthooks.outbox.oldest_due_age",
    "gauge",
    "s",
    "How long the oldest due delivery has been due (0 when nothing is due): the delivery lag.",
)
"""Seconds the oldest due delivery has waited (a gauge)."""
DELIVERIES_IN_FLIGHT = Metric(
    "resthooks.deliveries.in_flight",
    "gauge",
    "{delivery}",
    "Deliveries claimed by a worker and not yet recorded, in every process.",
)
"""Deliveries claimed and not yet recorded, in every process (a gauge)."""
HOOKS = Metric(
    "resthooks.hooks",
    "gauge",
    "{hook}",
    "Hooks by state: active or dead.",
    label="hook.state",
    values=tuple(s.value for s in HookState),
)
"""Hooks by state (a gauge)."""
STORE_UP = Metric(
    "resthooks.store.up",
    "gauge",
    "1",
    "1 when the store's figures could be read at the last observation, 0 when not.",
)
"""Whether the store could be read at the last observation (a gauge, 1 or 0)."""

METRICS: tuple[Metric, ...] = (
    DELIVERIES,
    ATTEMPT_DURATION,
    OUTBOX_DEPTH,
    OUTBOX_DUE,
    OUTBOX_RETRYING,
    OUTBOX_OLDEST_DUE_AGE,
    DELIVERIES_IN_FLIGHT,
    HOOKS,
    STORE_UP,
)
"""Every figure, in the order the exporters list them."""


def attempt_outcome(event: AttemptFinished) -> str:
    """The outcome label of an attempt: the Dispatcher's decision, or ``late``.

    ``late`` is an attempt whose delivery was cancelled while it was in flight: logged, but
    it changed nothing (see :class:`~resthooks.DeliverySummary`).

    Example:
        >>> from datetime import datetime, timezone
        >>> from resthooks import Attempt, Hook, OutcomeKind, Verdict
        >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> hook = Hook(id="hook_1", owner="acme", event="party/created",
        ...             target_url="https://example.com/h", created_at=at, updated_at=at)
        >>> attempt = Attempt(delivery_id="msg_1", number=1, started_at=at, duration=0.1,
        ...                   status=500, error_kind="http", error="HTTP 500")
        >>> event = AttemptFinished(hook=hook, delivery_id="msg_1", attempt=attempt,
        ...                         outcome=OutcomeKind.RETRY, next_attempt_at=at)
        >>> attempt_outcome(event)
        'retry'
        >>> attempt_outcome(attrs.evolve(event, verdict=Verdict.LATE))
        'late'
    """
    return "late" if event.verdict is _LATE else _OUTCOME_LABELS[event.outcome]


# Read per attempt: an enum's .value is a property call, a member read from its class a
# lookup chain.
_OUTCOME_LABELS = {kind: kind.value for kind in OutcomeKind}
_LATE, _APPLIED = Verdict.LATE, Verdict.APPLIED


# A delivery reaches its final state with the applied attempt that delivered it or made it
# fail for good (the Dispatcher then sends DeliveryDelivered or DeliveryFailed, which need not
# be built for the metrics), or with a DeliveryCancelled.
_FINAL = {OutcomeKind.DELIVERED: "delivered", OutcomeKind.FAILED: "failed"}

Recorder = Callable[[Metric, float, "str | None"], None]
"""What :class:`MetricsListener` reports to, called as ``record(metric, value, label_value)``
(a counter is added ``value``, a histogram observes it)."""


class MetricsListener:
    """A lifecycle listener turning outcomes into measurements for a ``record`` callable.

    Per :class:`~resthooks.lifecycle.AttemptFinished`: :data:`ATTEMPT_DURATION` observed,
    labelled by :func:`attempt_outcome` (the histogram's count is the attempts). Per delivery
    that reached a final state: :data:`DELIVERIES` + 1, labelled ``delivered``, ``failed`` or
    ``cancelled``: read from the applied ``AttemptFinished`` that delivered it or made it fail
    for good (the attempt the :class:`~resthooks.lifecycle.DeliveryDelivered` or
    ``DeliveryFailed`` is sent for), and from each
    :class:`~resthooks.lifecycle.DeliveryCancelled`. Those two event types are the only
    ones it is called with (:attr:`lifecycle_events`). The exporters give it their own
    ``record``.

    .. versionchanged:: 0.2.0
       Deliveries delivered or failed are counted from their last ``AttemptFinished``, so
       that a Dispatcher with no other listener of them does not build their final events.

    Args:
        record: Called as ``record(metric, value, label_value)``.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import FakeClock, RecordingTransport
        >>> seen = []
        >>> dispatcher = Dispatcher(
        ...     MemoryStore(), clock=FakeClock(), transport=RecordingTransport()
        ... )
        >>> _ = dispatcher.add_listener(
        ...     MetricsListener(lambda metric, value, label: seen.append((metric.name, label)))
        ... )
        >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        >>> _ = dispatcher.deliver_due()
        >>> seen
        [('resthooks.attempt.duration', 'delivered'), ('resthooks.deliveries', 'delivered')]
    """

    lifecycle_events = frozenset({AttemptFinished, DeliveryCancelled})
    """The events it reads; the Dispatcher sends it no other."""

    def __init__(self, record: Recorder) -> None:
        self.record = record

    def __call__(self, event: LifecycleEvent, /) -> None:
        """Record the measurements of one event."""
        if type(event) is AttemptFinished:
            self.record(ATTEMPT_DURATION, event.attempt.duration, attempt_outcome(event))
            final = _FINAL.get(event.outcome) if event.verdict is _APPLIED else None
            if final is not None:
                self.record(DELIVERIES, 1, final)
        elif type(event) is DeliveryCancelled:
            self.record(DELIVERIES, 1, "cancelled")

    def __repr__(self) -> str:
        return f"<MetricsListener record={self.record!r}>"


@attrs.frozen(kw_only=True)
class OutboxFigures:
    """The store's figures at one moment (:func:`read_outbox`).

    Attributes:
        at: When they were read (the Dispatcher's clock).
        hooks: Hook state -> count.
        deliveries: Delivery state -> count.
        due: Deliveries due at ``at`` (pending and due, or in flight with an expired lease),
            or ``None`` when the store cannot count them.
        retrying: Pending deliveries with at least one attempt, or ``None`` when the store
            cannot count them.
        oldest_due_at: Since when the oldest due delivery has been due, or ``None`` when
            nothing is due.

    Example:
        >>> from datetime import datetime, timezone
        >>> at = datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc)
        >>> figures = OutboxFigures(
        ...     at=at,
        ...     hooks={"active": 1, "dead": 0},
        ...     deliveries={"pending": 2, "in_flight": 1, "delivered": 5},
        ...     oldest_due_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ... )
        >>> figures.depth, figures.in_flight, figures.oldest_due_age
        (3, 1, 60.0)
    """

    at: datetime
    hooks: Mapping[str, int]
    deliveries: Mapping[str, int]
    due: int | None = None
    retrying: int | None = None
    oldest_due_at: datetime | None = None

    @property
    def pending(self) -> int:
        """Pending deliveries (due now or later)."""
        return self.deliveries.get(DeliveryState.PENDING.value, 0)

    @property
    def in_flight(self) -> int:
        """Deliveries claimed and not yet recorded."""
        return self.deliveries.get(DeliveryState.IN_FLIGHT.value, 0)

    @property
    def depth(self) -> int:
        """Deliveries not yet final (pending plus in flight)."""
        return self.pending + self.in_flight

    @property
    def oldest_due_age(self) -> float:
        """Seconds the oldest due delivery has been due at :attr:`at`; 0 when none is."""
        if self.oldest_due_at is None:
            return 0.0
        return max((self.at - self.oldest_due_at).total_seconds(), 0.0)

    def gauges(self) -> Iterator[tuple[Metric, float, str | None]]:
        """The gauge readings, as ``(metric, value, label_value)``: what every exporter shows.

        :data:`OUTBOX_DUE` and :data:`OUTBOX_RETRYING` are left out when the store cannot
        count them.
        """
        yield OUTBOX_DEPTH, self.depth, None
        if self.due is not None:
            yield OUTBOX_DUE, self.due, None
        if self.retrying is not None:
            yield OUTBOX_RETRYING, self.retrying, None
        yield OUTBOX_OLDEST_DUE_AGE, self.oldest_due_age, None
        yield DELIVERIES_IN_FLIGHT, self.in_flight, None
        for state, count in self.hooks.items():
            yield HOOKS, count, state


def read_outbox(store: Store, *, now: datetime) -> OutboxFigures:
    """Read the figures from ``store``: read-only queries, nothing is changed.

    Raises:
        StoreError: If the store cannot be read.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import FakeClock
        >>> clock = FakeClock()
        >>> dispatcher = Dispatcher(MemoryStore(), clock=clock)
        >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        >>> clock.advance(30)
        >>> figures = read_outbox(dispatcher.store, now=clock.now())
        >>> figures.depth, figures.due, figures.oldest_due_age, figures.hooks["active"]
        (1, 1, 30.0, 1)
    """
    stats = store.stats()
    outbox_stats: Callable[..., OutboxStats] | None = getattr(store, "outbox_stats", None)
    if outbox_stats is not None:
        due = outbox_stats(now=now)
        return OutboxFigures(
            at=now,
            hooks=dict(stats.hooks),
            deliveries=dict(stats.deliveries),
            due=due.due,
            retrying=due.retrying,
            oldest_due_at=due.oldest_due_at,
        )
    # A store of one's own without outbox_stats(): the oldest due time is still known.
    next_due = store.next_due_at()
    return OutboxFigures(
        at=now,
        hooks=dict(stats.hooks),
        deliveries=dict(stats.deliveries),
        oldest_due_at=next_due if next_due is not None and next_due <= now else None,
    )


class OutboxMonitor:
    """:func:`read_outbox` behind a cache: at most one store read per ``max_age`` seconds.

    Thread-safe: callers arriving while a read is under way wait for it and share it.

    Args:
        store: The store to read.
        clock: Gives ``now`` for the figures (the age of the oldest due delivery). Default:
            the system clock.
        max_age: Seconds a reading is reused. Default 10 s: a Prometheus scrape every 15 s or
            an OpenTelemetry export every 60 s costs one read each; ten scrapers at once
            still cost one. ``0`` reads every time.
        monotonic: The timer of the cache (real seconds). Default ``time.monotonic``.

    Example:
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import FakeClock
        >>> ticks = iter([0.0, 1.0, 11.0])
        >>> monitor = OutboxMonitor(MemoryStore(), clock=FakeClock(), monotonic=lambda: next(ticks))
        >>> first = monitor.figures()
        >>> monitor.figures() is first, monitor.figures() is first
        (True, False)
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        max_age: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if (
            isinstance(max_age, bool)
            or not isinstance(max_age, (int, float))
            or not 0 <= max_age < float("inf")
        ):
            from .errors import ConfigurationError  # noqa: PLC0415 - only on bad input

            raise ConfigurationError("max_age must be a finite number of seconds >= 0")
        self.store = store
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.max_age = float(max_age)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._figures: OutboxFigures | None = None
        self._read_at = 0.0

    def figures(self) -> OutboxFigures:
        """The latest reading, read afresh when it is older than ``max_age``.

        Raises:
            StoreError: If the store cannot be read (the next call tries again).
        """
        with self._lock:
            now = self._monotonic()
            if self._figures is None or now - self._read_at >= self.max_age:
                self._figures = read_outbox(self.store, now=self.clock.now())
                self._read_at = now
            return self._figures

    def __repr__(self) -> str:
        return f"<OutboxMonitor store={self.store!r} max_age={self.max_age}>"
