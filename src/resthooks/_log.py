"""The Dispatcher's log lines: one per attempt, on the ``resthooks`` logger. Not public.

Nothing secret is logged: target URLs are masked (no credentials, no query string) and the
same parts are redacted from error messages, which can quote the URL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from .model import Hook, Outcome, OutcomeKind
from .outcomes import RecordResult, Verdict
from .urls import mask_url, redact_url

__all__ = ["HOW_TO_ALLOW", "log_outcomes", "logger"]

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


def log_outcomes(
    outcomes: Sequence[Outcome], results: Sequence[RecordResult], hooks: Mapping[str, Hook]
) -> None:
    """Log one line per recorded attempt: DEBUG when delivered, INFO for a failed attempt
    that will be retried, WARNING when a delivery failed for good or its hook answered 410,
    and WARNING for every attempt the network policy refused (a configuration problem of the
    sender's, which no retry fixes: it must be seen, even where logging is not configured)."""
    for outcome, result in zip(outcomes, results, strict=True):
        attempt = outcome.attempt
        if attempt is None:
            continue
        hook = hooks.get(outcome.delivery_id)
        if result.verdict is Verdict.LATE:
            logger.info(
                "attempt %d of delivery %s logged: the delivery was cancelled while it was in "
                "flight (its hook died or was removed)",
                attempt.number,
                outcome.delivery_id,
                extra={"delivery_id": outcome.delivery_id, "hook_id": result.hook_id},
            )
            continue
        if result.verdict is Verdict.STALE:
            logger.info(
                "outcome of attempt %d of delivery %s refused: another worker claimed it since",
                attempt.number,
                outcome.delivery_id,
                extra={"delivery_id": outcome.delivery_id, "hook_id": result.hook_id},
            )
            continue
        blocked = attempt.error_kind == "blocked"
        level = logging.WARNING if blocked else _LEVELS.get(outcome.kind, logging.DEBUG)
        if not logger.isEnabledFor(level):
            continue
        target = mask_url(hook.target_url) if hook is not None else None
        error = (
            redact_url(attempt.error, hook.target_url) if attempt.error and hook else attempt.error
        )
        extra = {
            "hook_id": result.hook_id,
            "delivery_id": outcome.delivery_id,
            "attempt": attempt.number,
            "status": attempt.status,
            "duration": attempt.duration,
            "outcome": outcome.kind.value,
            "error_kind": attempt.error_kind,
            "target": target,
            "owner": hook.owner if hook is not None else None,
            "event": hook.event if hook is not None else None,
            "next_attempt_at": (
                outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else None
            ),
        }
        what = f"HTTP {attempt.status}" if attempt.status is not None else attempt.error_kind
        if outcome.kind is OutcomeKind.DELIVERED:
            tail = "delivered"
        elif outcome.kind is OutcomeKind.RETRY:
            tail = f"retry at {extra['next_attempt_at']}"
        elif outcome.kind is OutcomeKind.FAILED:
            tail = "failed for good; the hook is dead"
        else:
            tail = "410 Gone; the hook was removed"
        if blocked:
            what = f"refused by the network policy ({error or 'blocked'}; {HOW_TO_ALLOW})"
        elif error and attempt.status is None:
            what = f"{what} ({error})"
        logger.log(
            level,
            "attempt %d of delivery %s to %s: %s in %.3f s, %s",
            attempt.number,
            outcome.delivery_id,
            target or result.hook_id,
            what,
            attempt.duration,
            tail,
            extra=extra,
        )
