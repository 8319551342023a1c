"""Lifecycle events: what the Dispatcher tells the host after each outcome it records.

A *listener* is any callable taking one event. Register it with
:meth:`Dispatcher.add_listener <resthooks.Dispatcher.add_listener>`; the Dispatcher calls it
after the store has recorded the outcome, in the thread that recorded it (the worker's loop,
or the caller of :meth:`~resthooks.Dispatcher.deliver_due`). A listener that raises is logged
on the ``resthooks`` logger and skipped: it never breaks delivery.

Events, per recorded outcome, in this order:

0. :class:`AttemptRefused` for an attempt whose outcome the store refused entirely (the
   delivery was claimed again by another worker since: its verdict is ``stale``); nothing
   else follows.
1. :class:`AttemptFinished` for every attempt written to the attempt log, including the
   attempt of a delivery that was cancelled while it was in flight (its hook died or was
   removed meanwhile): for that one, nothing else follows (its :class:`DeliveryCancelled`
   was sent when it was cancelled).
2. Exactly one final event for a delivery that reached a final state:
   :class:`DeliveryDelivered`, :class:`DeliveryFailed` or :class:`DeliveryCancelled`.
3. :class:`HookDead` when the last retry failed, or :class:`HookGone` when the receiver
   answered ``410 Gone``.
4. :class:`DeliveryCancelled` for each other delivery of that hook that was cancelled as a
   consequence.

:meth:`~resthooks.Dispatcher.unsubscribe` sends :class:`DeliveryCancelled` (reason
``unsubscribed``) for each delivery it cancels. A store that moves a damaged delivery row
aside sends :class:`DeliveryQuarantined` (from the worker's loop, after the claim that met it).

Every Dispatcher starts with one listener, its log lines
(:class:`resthooks.observability.LogListener`): what the ``resthooks`` logger says about
outcomes is read from these events, as the metrics and the traces are.

A listener may say which events it wants (see :class:`LifecycleListener`): an event that no
listener wants is not built at all, so a delivery pays only for what someone listens to (the
log listener wants the :class:`AttemptFinished` of a delivered attempt only when its logger
would write the ``DEBUG`` line).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias

import attrs

from .errors import ValidationError
from .model import Attempt, Hook, Outcome, OutcomeKind, QuarantinedDelivery
from .outcomes import HookEffect, RecordResult, Verdict, dead_reason

if TYPE_CHECKING:
    from .stores import HookRegistry

__all__ = [
    "EVENT_TYPES",
    "AttemptFinished",
    "AttemptRefused",
    "CancelReason",
    "DeliveryCancelled",
    "DeliveryDelivered",
    "DeliveryFailed",
    "DeliveryQuarantined",
    "HookDead",
    "HookGone",
    "LifecycleEvent",
    "LifecycleListener",
]

logger = logging.getLogger("resthooks")


class CancelReason(str, enum.Enum):
    """Why a delivery was cancelled."""

    HOOK_DEAD = "hook_dead"
    """Its hook died (another delivery of the hook ran out of retries)."""
    HOOK_GONE = "hook_gone"
    """Its hook's URL answered ``410 Gone`` (to this delivery or another one)."""
    UNSUBSCRIBED = "unsubscribed"
    """Its hook was unsubscribed."""


@attrs.frozen(kw_only=True)
class AttemptFinished:
    """An attempt was made and written to the attempt log.

    For an attempt whose delivery was cancelled while it was in flight, ``outcome`` is what
    the Dispatcher decided but the store did not apply: the delivery stays cancelled.

    Attributes:
        hook: The hook, as it was when the delivery was claimed.
        delivery_id: The delivery (its ``webhook-id``).
        attempt: The attempt's log entry (status or error, duration...).
        outcome: What the Dispatcher decided: ``delivered``, ``retry``, ``failed`` or ``gone``.
        next_attempt_at: For ``retry``: when the next attempt is due.
        verdict: :attr:`~resthooks.Verdict.APPLIED`, or :attr:`~resthooks.Verdict.LATE` when
            the delivery had been cancelled while the attempt was in flight: the attempt is
            logged, the outcome changed nothing.
        trace_context: The W3C ``traceparent`` stored with the delivery by the emit that
            created it (see :mod:`resthooks.tracing`), or ``None``.

    .. versionchanged:: 0.2.0
       ``verdict`` replaces the ``applied`` flag, which is now read from it; ``trace_context``
       is new.
    """

    hook: Hook
    delivery_id: str
    attempt: Attempt
    outcome: OutcomeKind
    next_attempt_at: datetime | None = None
    verdict: Verdict = Verdict.APPLIED
    trace_context: str | None = None

    @property
    def applied(self) -> bool:
        """Whether the outcome was applied (``False`` for a late attempt)."""
        return self.verdict is Verdict.APPLIED


@attrs.frozen(kw_only=True)
class AttemptRefused:
    """An attempt was made, but the store refused its outcome and logged nothing: another
    worker had claimed the delivery since (this claim's lease ran out while the attempt was
    in flight). The newer claim's attempt is the one that counts.

    Attributes:
        hook: The hook, as it was when the delivery was claimed.
        delivery_id: The delivery.
        attempt: The attempt that was made (not in the attempt log).
        outcome: What the Dispatcher decided for it.
        verdict: Always :attr:`~resthooks.Verdict.STALE`.

    .. versionadded:: 0.2.0
    """

    hook: Hook
    delivery_id: str
    attempt: Attempt
    outcome: OutcomeKind
    verdict: Verdict = Verdict.STALE


@attrs.frozen(kw_only=True)
class DeliveryDelivered:
    """A delivery got a 2xx answer.

    Attributes:
        hook: The hook, as it was when the delivery was claimed.
        delivery_id: The delivery.
        attempt: The successful attempt.
    """

    hook: Hook
    delivery_id: str
    attempt: Attempt


@attrs.frozen(kw_only=True)
class DeliveryFailed:
    """A delivery's last retry failed: it has failed for good (and its hook died).

    Attributes:
        hook: The hook, as it was when the delivery was claimed.
        delivery_id: The delivery.
        attempt: The last attempt.
        reason: Why (the number of attempts and the last error).
    """

    hook: Hook
    delivery_id: str
    attempt: Attempt
    reason: str


@attrs.frozen(kw_only=True)
class DeliveryCancelled:
    """A delivery will not be attempted again (unless redelivered).

    Attributes:
        hook: The hook, as it was before it died or was removed.
        delivery_id: The cancelled delivery.
        reason: :class:`CancelReason`.
    """

    hook: Hook
    delivery_id: str
    reason: CancelReason


@attrs.frozen(kw_only=True)
class HookDead:
    """A hook died: its retries ran out. It receives nothing more until revived.

    This is the event to tell the hook's owner about.

    Attributes:
        hook: The hook, now dead (``dead_reason`` and ``dead_at`` set).
        reason: Why it died.
        cancelled: Ids of its other deliveries that were cancelled.
    """

    hook: Hook
    reason: str
    cancelled: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class HookGone:
    """A receiver answered ``410 Gone``: the hook was removed at once.

    Attributes:
        hook: The hook as it was (it no longer exists in the store).
        delivery_id: The delivery that was answered 410.
        cancelled: Ids of its other deliveries that were cancelled.
    """

    hook: Hook
    delivery_id: str
    cancelled: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class DeliveryQuarantined:
    """The store could not read a delivery's row and moved it aside (see
    :class:`~resthooks.model.QuarantinedDelivery`). It will not be attempted; tell an
    operator (``resthooks check`` shows what was found).

    Attributes:
        delivery_id: The delivery, as far as its row still tells it.
        reason: What was wrong with the row.

    .. versionadded:: 0.2.0
    """

    delivery_id: str
    reason: str


LifecycleEvent: TypeAlias = (
    AttemptFinished
    | AttemptRefused
    | DeliveryDelivered
    | DeliveryFailed
    | DeliveryCancelled
    | HookDead
    | HookGone
    | DeliveryQuarantined
)
"""Any of the lifecycle event types."""


EVENT_TYPES: tuple[type[LifecycleEvent], ...] = (
    AttemptFinished,
    AttemptRefused,
    DeliveryDelivered,
    DeliveryFailed,
    DeliveryCancelled,
    HookDead,
    HookGone,
    DeliveryQuarantined,
)
"""Every lifecycle event type, in the order of :data:`LifecycleEvent`."""


class LifecycleListener(Protocol):
    """What a listener is: a callable taking one event and returning nothing.

    It runs in the thread that records outcomes, so keep it quick: hand slow work (sending an
    email) to a queue of your own. An exception it raises is logged and otherwise ignored.

    Two optional attributes let a listener say what it wants, so that nobody pays for events
    it ignores (an event no listener wants is not even built):

    - ``lifecycle_events``: the event types it is called with (a collection of the classes
      of :data:`LifecycleEvent`). Without it, it is called with every event.
    - ``wants_attempt(outcome, verdict)``: asked, for each recorded outcome, before its
      :class:`AttemptFinished` is built; ``False`` skips this listener for that event. It is
      given the :class:`~resthooks.Outcome` and its :class:`~resthooks.Verdict` (``applied``
      or ``late``), and must be quick and must not raise.

    The Dispatcher reads both when the listener is added; :meth:`Dispatcher.add_listener
    <resthooks.Dispatcher.add_listener>` refuses a listener whose ``lifecycle_events`` holds
    anything but event types or whose ``wants_attempt`` cannot be called.

    .. versionchanged:: 0.2.0
       ``lifecycle_events`` and ``wants_attempt``.

    Example:
        >>> seen = []
        >>> def listener(event: LifecycleEvent) -> None:
        ...     if isinstance(event, HookDead):
        ...         seen.append(event.hook.id)
        >>> class DeadHooks:
        ...     lifecycle_events = frozenset({HookDead})  # called with nothing else
        ...     def __call__(self, event: LifecycleEvent) -> None:
        ...         seen.append(event.hook.id)
    """

    def __call__(self, event: LifecycleEvent, /) -> None:
        """Handle one event."""
        ...


AttemptFilter = Callable[[Outcome, Verdict], bool]
"""A listener's ``wants_attempt``."""


def check_listener(listener: object) -> None:
    """Refuse what cannot be a listener: not callable, or a bad ``lifecycle_events`` or
    ``wants_attempt``.

    Raises:
        ValidationError: Naming ``listener``.
    """
    if not callable(listener):
        raise ValidationError("listener", "must be callable")
    events = getattr(listener, "lifecycle_events", None)
    if events is not None and (
        isinstance(events, str | bytes)
        or not isinstance(events, Collection)  # read again at every add: not a generator
        or not all(isinstance(kind, type) and kind in EVENT_TYPES for kind in events)
    ):
        raise ValidationError(
            "listener", "lifecycle_events must be a collection of lifecycle event types"
        )
    wants = getattr(listener, "wants_attempt", None)
    if wants is not None and not callable(wants):
        raise ValidationError("listener", "wants_attempt must be callable")


class Listeners(tuple[LifecycleListener, ...]):
    """A Dispatcher's listeners, in order, with who takes which event type: worked out once
    when a listener is added or removed, read at every recorded outcome.

    Attributes:
        routes: Event type -> the listeners called with it, in order, each with its
            ``wants_attempt`` for :class:`AttemptFinished` (``None`` for the others).
    """

    routes: dict[type[LifecycleEvent], tuple[tuple[LifecycleListener, AttemptFilter | None], ...]]

    def __new__(cls, listeners: Iterable[LifecycleListener] = ()) -> Listeners:
        self = super().__new__(cls, listeners)
        self.routes = {}
        for kind in EVENT_TYPES:
            route = []
            for listener in self:
                wanted: Collection[type] | None = getattr(listener, "lifecycle_events", None)
                if wanted is None or kind in wanted:
                    wants = getattr(listener, "wants_attempt", None)
                    route.append((listener, wants if kind is AttemptFinished else None))
            self.routes[kind] = tuple(route)
        return self

    def to(self, kind: type[LifecycleEvent]) -> tuple[LifecycleListener, ...]:
        """The listeners called with events of type ``kind``, in order."""
        return tuple(listener for listener, _ in self.routes[kind])


def _routes(listeners: Sequence[LifecycleListener]) -> Listeners:
    return listeners if isinstance(listeners, Listeners) else Listeners(listeners)


def _call(listener: LifecycleListener, event: LifecycleEvent) -> None:
    try:
        listener(event)
    except Exception:  # a host's listener must never break delivery
        logger.exception(
            "lifecycle listener %r raised on %s",
            listener,
            type(event).__name__,
            extra={"listener": repr(listener), "lifecycle_event": type(event).__name__},
        )


def _send(route: Iterable[tuple[LifecycleListener, object]], event: LifecycleEvent) -> None:
    for listener, _ in route:
        _call(listener, event)


def notify(listeners: Sequence[LifecycleListener], event: LifecycleEvent) -> None:
    """Call every listener that wants ``event``; log and swallow what any of them raises."""
    _send(_routes(listeners).routes[type(event)], event)


# Read once: an enum member read from its class costs ten times a global's read, and these
# are read per recorded outcome.
_STALE, _APPLIED = Verdict.STALE, Verdict.APPLIED
_DELIVERED, _FAILED, _GONE = OutcomeKind.DELIVERED, OutcomeKind.FAILED, OutcomeKind.GONE


def notify_recorded(
    listeners: Sequence[LifecycleListener],
    outcomes: Sequence[Outcome],
    results: Sequence[RecordResult],
    hooks: Mapping[str, Hook],
    registry: HookRegistry,
    *,
    trace_contexts: Mapping[str, str] | None = None,
) -> None:
    """Send the events of a recorded batch (see the module's docs for which, in which order).

    ``trace_contexts`` maps delivery ids to the trace context their claims carried, for
    :attr:`AttemptFinished.trace_context`.

    ``hooks`` maps delivery ids to their hooks as claimed; an outcome whose hook is unknown,
    or without an attempt (a release), sends nothing; one that the store refused without
    logging its attempt (stale) sends only :class:`AttemptRefused`; one that the store
    refused but logged (its delivery was cancelled while in flight) sends only
    :class:`AttemptFinished`. An event is built only when a listener wants it.
    """
    routes = _routes(listeners).routes
    to_finished = routes[AttemptFinished]
    for outcome, result in zip(outcomes, results, strict=True):
        hook = hooks.get(outcome.delivery_id)
        attempt = outcome.attempt
        if hook is None or attempt is None:
            continue
        verdict = result.verdict
        delivery_id = outcome.delivery_id
        if verdict is _STALE:
            if routes[AttemptRefused]:
                _send(
                    routes[AttemptRefused],
                    AttemptRefused(
                        hook=hook, delivery_id=delivery_id, attempt=attempt, outcome=outcome.kind
                    ),
                )
            continue
        finished: AttemptFinished | None = None
        for listener, wants in to_finished:
            if wants is not None and not wants(outcome, verdict):
                continue
            if finished is None:  # built for the first listener that wants it, once
                finished = AttemptFinished(
                    hook=hook,
                    delivery_id=delivery_id,
                    attempt=attempt,
                    outcome=outcome.kind,
                    next_attempt_at=outcome.next_attempt_at,
                    verdict=verdict,
                    trace_context=trace_contexts.get(delivery_id) if trace_contexts else None,
                )
            _call(listener, finished)
        if verdict is not _APPLIED:
            continue
        kind = outcome.kind
        if kind is _DELIVERED:
            if routes[DeliveryDelivered]:
                _send(
                    routes[DeliveryDelivered],
                    DeliveryDelivered(hook=hook, delivery_id=delivery_id, attempt=attempt),
                )
        elif kind is _FAILED:
            reason = dead_reason(outcome)
            if routes[DeliveryFailed]:
                _send(
                    routes[DeliveryFailed],
                    DeliveryFailed(
                        hook=hook, delivery_id=delivery_id, attempt=attempt, reason=reason
                    ),
                )
            if result.hook_effect is HookEffect.DEAD:
                if routes[HookDead]:  # the store is read only for someone who listens
                    dead = registry.get_hook(hook.id) or hook
                    _send(
                        routes[HookDead],
                        HookDead(hook=dead, reason=reason, cancelled=result.cancelled),
                    )
                _cancelled(routes, hook, result.cancelled, CancelReason.HOOK_DEAD)
        elif kind is _GONE:
            _cancelled(routes, hook, (delivery_id,), CancelReason.HOOK_GONE)
            if result.hook_effect is HookEffect.REMOVED:
                if routes[HookGone]:
                    _send(
                        routes[HookGone],
                        HookGone(hook=hook, delivery_id=delivery_id, cancelled=result.cancelled),
                    )
                _cancelled(routes, hook, result.cancelled, CancelReason.HOOK_GONE)


def notify_quarantined(
    listeners: Sequence[LifecycleListener], entries: Sequence[QuarantinedDelivery]
) -> None:
    """Send :class:`DeliveryQuarantined` for each row a store moved aside."""
    to = _routes(listeners).routes[DeliveryQuarantined]
    if to:
        for entry in entries:
            _send(to, DeliveryQuarantined(delivery_id=entry.delivery_id, reason=entry.reason))


def notify_unsubscribed(
    listeners: Sequence[LifecycleListener], hook: Hook, cancelled: Sequence[str]
) -> None:
    """Send :class:`DeliveryCancelled` for each delivery an unsubscribe cancelled."""
    _cancelled(_routes(listeners).routes, hook, cancelled, CancelReason.UNSUBSCRIBED)


def _cancelled(
    routes: Mapping[type[LifecycleEvent], tuple[tuple[LifecycleListener, object], ...]],
    hook: Hook,
    delivery_ids: Sequence[str],
    reason: CancelReason,
) -> None:
    to = routes[DeliveryCancelled]
    if not to:
        return
    for delivery_id in delivery_ids:
        _send(to, DeliveryCancelled(hook=hook, delivery_id=delivery_id, reason=reason))
