"""The Dispatcher's log lines, as the lifecycle listener every Dispatcher starts with.

:class:`resthooks.observability.LogListener` (defined here, where the Dispatcher reads it
without importing the exporters) turns the lifecycle events into log lines, reading the
verdict of each outcome like every other listener: there is one path from a recorded outcome
to whatever reports it.

Nothing secret is logged: target URLs are masked (no credentials, no query string) and the
same parts are redacted from error messages, which can quote the URL.
"""

from __future__ import annotations

import logging

from .lifecycle import AttemptFinished, AttemptRefused, DeliveryQuarantined, LifecycleEvent
from .model import Outcome, OutcomeKind
from .outcomes import Verdict
from .urls import mask_url, redact_url

__all__ = ["HOW_TO_ALLOW", "LogListener", "logger"]

logger = logging.getLogger("resthooks")

HOW_TO_ALLOW = (
    "to deliver to that network on purpose, list it in the Dispatcher's "
    "NetworkPolicy(allow_networks=[...])"
)
"""What a refused attempt's log line says to do about it."""

_LEVELS = {
    OutcomeKind.DELIVERED: logging.DEBUG,
    OutcomeKind.RETRY: logging.INFO,
    OutcomeKind.FAILED: logging.WARNING,
    OutcomeKind.GONE: logging.WARNING,
}
_LATE = Verdict.LATE  # read per outcome: a global is cheaper than the enum's class lookup
_TAILS = {
    OutcomeKind.DELIVERED: "delivered",
    OutcomeKind.FAILED: "failed for good; the hook is dead",
    OutcomeKind.GONE: "410 Gone; the hook was removed",
}


class LogListener:
    """The log lines of a Dispatcher, on the ``resthooks`` logger: a lifecycle listener.

    Every :class:`~resthooks.Dispatcher` starts with one (its
    :attr:`~resthooks.Dispatcher.log_listener`); remove it with
    :meth:`~resthooks.Dispatcher.remove_listener` to silence resthooks without touching the
    logging configuration. It writes:

    - per :class:`~resthooks.lifecycle.AttemptFinished` whose verdict is ``applied``, one line:
      ``DEBUG`` when delivered, ``INFO`` for a failed attempt that will be retried,
      ``WARNING`` when the delivery failed for good (its hook died) or the receiver answered
      ``410``, and ``WARNING`` for every attempt the network policy refused (a configuration
      problem of the sender's, which no retry fixes: it must be seen, even where logging is
      not configured), with structured fields in ``extra`` (see :doc:`worker`);
    - per ``AttemptFinished`` whose verdict is ``late``, an ``INFO`` line saying the attempt was
      logged although its delivery had been cancelled while it was in flight;
    - per :class:`~resthooks.lifecycle.AttemptRefused`, an ``INFO`` line saying the outcome was
      refused because another worker claimed the delivery since;
    - per :class:`~resthooks.lifecycle.DeliveryQuarantined`, an ``ERROR`` line.

    The target URL is masked (no credentials, no query string) and the same parts are removed
    from error messages.

    It is called with those three event types only (:attr:`lifecycle_events`), and, through
    :meth:`wants_attempt`, with the ``AttemptFinished`` of an outcome only when the logger
    would write its line: with ``DEBUG`` off (the default), a delivered attempt builds no
    event and no line for it.

    .. versionadded:: 0.2.0

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> dispatcher = Dispatcher(MemoryStore())
        >>> isinstance(dispatcher.log_listener, LogListener)
        True
    """

    lifecycle_events = frozenset({AttemptFinished, AttemptRefused, DeliveryQuarantined})
    """The events it logs; the Dispatcher sends it no other."""

    def wants_attempt(self, outcome: Outcome, verdict: Verdict) -> bool:
        """Whether the ``AttemptFinished`` of ``outcome`` would make a line: whether the
        ``resthooks`` logger is enabled for that line's level (read afresh every time, so a
        change of the logging configuration counts at once).

        Example:
            >>> import logging
            >>> from datetime import datetime, timezone
            >>> from resthooks import Attempt, Outcome, OutcomeKind, Verdict
            >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
            >>> attempt = Attempt(delivery_id="msg_1", number=1, started_at=at, duration=0.1,
            ...                   status=204)
            >>> delivered = Outcome(delivery_id="msg_1", token="claim_1",
            ...                     kind=OutcomeKind.DELIVERED, attempt=attempt)
            >>> logging.getLogger("resthooks").setLevel(logging.INFO)
            >>> LogListener().wants_attempt(delivered, Verdict.APPLIED)
            False
            >>> logging.getLogger("resthooks").setLevel(logging.DEBUG)
            >>> LogListener().wants_attempt(delivered, Verdict.APPLIED)
            True
            >>> logging.getLogger("resthooks").setLevel(logging.NOTSET)
        """
        attempt = outcome.attempt
        error_kind = attempt.error_kind if attempt is not None else None
        return logger.isEnabledFor(_level(outcome.kind, verdict, error_kind))

    def __call__(self, event: LifecycleEvent, /) -> None:
        """Log one event (the events that are not about attempts or rows log nothing)."""
        kind = type(event)
        if kind is AttemptFinished:
            assert isinstance(event, AttemptFinished)
            _attempt(event)
        elif kind is AttemptRefused:
            assert isinstance(event, AttemptRefused)
            logger.info(
                "outcome of attempt %d of delivery %s refused: another worker claimed it since",
                event.attempt.number,
                event.delivery_id,
                extra={"delivery_id": event.delivery_id, "hook_id": event.hook.id},
            )
        elif kind is DeliveryQuarantined:
            assert isinstance(event, DeliveryQuarantined)
            logger.error(
                "delivery %s was quarantined: its stored row cannot be used (%s); it was "
                "moved aside and will not be attempted (see 'resthooks check')",
                event.delivery_id,
                event.reason,
                extra={"delivery_id": event.delivery_id},
            )

    def __repr__(self) -> str:
        return "<LogListener logger='resthooks'>"


def _level(outcome: OutcomeKind, verdict: Verdict, error_kind: str | None) -> int:
    """The level of an attempt's line: the one rule :meth:`LogListener.wants_attempt` and the
    line itself read."""
    if verdict is _LATE:
        return logging.INFO
    if error_kind == "blocked":
        return logging.WARNING
    return _LEVELS.get(outcome, logging.DEBUG)


def _attempt(event: AttemptFinished) -> None:
    attempt, hook = event.attempt, event.hook
    level = _level(event.outcome, event.verdict, attempt.error_kind)
    if not logger.isEnabledFor(level):
        return
    if event.verdict is Verdict.LATE:
        logger.log(
            level,
            "attempt %d of delivery %s logged: the delivery was cancelled while it was in "
            "flight (its hook died or was removed)",
            attempt.number,
            event.delivery_id,
            extra={"delivery_id": event.delivery_id, "hook_id": hook.id},
        )
        return
    outcome = event.outcome
    blocked = attempt.error_kind == "blocked"
    target = mask_url(hook.target_url)
    error = redact_url(attempt.error, hook.target_url) if attempt.error else attempt.error
    next_at = event.next_attempt_at.isoformat() if event.next_attempt_at else None
    extra = {
        "hook_id": hook.id,
        "delivery_id": event.delivery_id,
        "attempt": attempt.number,
        "status": attempt.status,
        "duration": attempt.duration,
        "outcome": outcome.value,
        "error_kind": attempt.error_kind,
        "target": target,
        "owner": hook.owner,
        "event": hook.event,
        "next_attempt_at": next_at,
    }
    what = f"HTTP {attempt.status}" if attempt.status is not None else attempt.error_kind
    if blocked:
        what = f"refused by the network policy ({error or 'blocked'}; {HOW_TO_ALLOW})"
    elif error and attempt.status is None:
        what = f"{what} ({error})"
    tail = f"retry at {next_at}" if outcome is OutcomeKind.RETRY else _TAILS.get(outcome, "")
    logger.log(
        level,
        "attempt %d of delivery %s to %s: %s in %.3f s, %s",
        attempt.number,
        event.delivery_id,
        target,
        what,
        attempt.duration,
        tail,
        extra=extra,
    )
