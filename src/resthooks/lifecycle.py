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
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias

import attrs

from .model import Attempt, Hook, Outcome, OutcomeKind, QuarantinedDelivery
from .outcomes import HookEffect, RecordResult, Verdict, dead_reason

if TYPE_CHECKING:
    from .stores import HookRegistry

__all__ = [
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


class LifecycleListener(Protocol):
    """What a listener is: a callable taking one event and returning nothing.

    It runs in the thread that records outcomes, so keep it quick: hand slow work (sending an
    email) to a queue of your own. An exception it raises is logged and otherwise ignored.

    Example:
        >>> seen = []
        >>> def listener(event: LifecycleEvent) -> None:
        ...     if isinstance(event, HookDead):
        ...         seen.append(event.hook.id)
    """

    def __call__(self, event: LifecycleEvent, /) -> None:
        """Handle one event."""
        ...


def notify(listeners: Sequence[LifecycleListener], event: LifecycleEvent) -> None:
    """Call every listener with ``event``; log and swallow what any of them raises."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # a host's listener must never break delivery
            logger.exception(
                "lifecycle listener %r raised on %s",
                listener,
                type(event).__name__,
                extra={"listener": repr(listener), "lifecycle_event": type(event).__name__},
            )


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
    :class:`AttemptFinished`.
    """
    for outcome, result in zip(outcomes, results, strict=True):
        hook = hooks.get(outcome.delivery_id)
        attempt = outcome.attempt
        if hook is None or attempt is None:
            continue
        verdict = result.verdict
        delivery_id = outcome.delivery_id
        if verdict is Verdict.STALE:
            notify(
                listeners,
                AttemptRefused(
                    hook=hook, delivery_id=delivery_id, attempt=attempt, outcome=outcome.kind
                ),
            )
            continue
        notify(
            listeners,
            AttemptFinished(
                hook=hook,
                delivery_id=delivery_id,
                attempt=attempt,
                outcome=outcome.kind,
                next_attempt_at=outcome.next_attempt_at,
                verdict=verdict,
                trace_context=trace_contexts.get(delivery_id) if trace_contexts else None,
            ),
        )
        if verdict is not Verdict.APPLIED:
            continue
        if outcome.kind is OutcomeKind.DELIVERED:
            notify(
                listeners, DeliveryDelivered(hook=hook, delivery_id=delivery_id, attempt=attempt)
            )
        elif outcome.kind is OutcomeKind.FAILED:
            reason = dead_reason(outcome)
            notify(
                listeners,
                DeliveryFailed(hook=hook, delivery_id=delivery_id, attempt=attempt, reason=reason),
            )
            if result.hook_effect is HookEffect.DEAD:
                dead = registry.get_hook(hook.id) or hook
                notify(listeners, HookDead(hook=dead, reason=reason, cancelled=result.cancelled))
                _cancelled(listeners, hook, result.cancelled, CancelReason.HOOK_DEAD)
        elif outcome.kind is OutcomeKind.GONE:
            _cancelled(listeners, hook, (delivery_id,), CancelReason.HOOK_GONE)
            if result.hook_effect is HookEffect.REMOVED:
                notify(
                    listeners,
                    HookGone(hook=hook, delivery_id=delivery_id, cancelled=result.cancelled),
                )
                _cancelled(listeners, hook, result.cancelled, CancelReason.HOOK_GONE)


def notify_quarantined(
    listeners: Sequence[LifecycleListener], entries: Sequence[QuarantinedDelivery]
) -> None:
    """Send :class:`DeliveryQuarantined` for each row a store moved aside."""
    for entry in entries:
        notify(listeners, DeliveryQuarantined(delivery_id=entry.delivery_id, reason=entry.reason))


def notify_unsubscribed(
    listeners: Sequence[LifecycleListener], hook: Hook, cancelled: Sequence[str]
) -> None:
    """Send :class:`DeliveryCancelled` for each delivery an unsubscribe cancelled."""
    _cancelled(listeners, hook, cancelled, CancelReason.UNSUBSCRIBED)


def _cancelled(
    listeners: Sequence[LifecycleListener],
    hook: Hook,
    delivery_ids: Sequence[str],
    reason: CancelReason,
) -> None:
    for delivery_id in delivery_ids:
        notify(listeners, DeliveryCancelled(hook=hook, delivery_id=delivery_id, reason=reason))
