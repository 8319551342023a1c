"""The retry rules, as one value: the schedule, jitter, the timeout penalty and Retry-After."""

from __future__ import annotations

import email.utils
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import ClassVar

import attrs

from ._durations import seconds
from .errors import ConfigurationError, TransportErrorKind, ValidationError
from .model import Attempt

__all__ = ["CAPSULE_SCHEDULE", "RetryPolicy"]

CAPSULE_SCHEDULE: tuple[float, ...] = (5.0, 60.0, 300.0, 900.0, 900.0)
"""Capsule's delays in seconds between a failed attempt and the next: 5 s, 1 min, 5 min,
15 min, 15 min (36 min 5 s in all)."""

_SECONDS = re.compile(r"[0-9]{1,10}")


def _to_delays(value: Sequence[float | timedelta]) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"delays must be a sequence of seconds, not {type(value).__name__}"
        )
    return tuple(seconds(v, "delays") for v in value)


def _to_penalty(value: object) -> float:
    return seconds(value, "timeout_penalty")


def _to_cap(value: object) -> float:
    return seconds(value, "max_retry_after")


def _to_jitter(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigurationError(f"jitter must be a fraction in [0, 1), not {value!r}")
    return float(value)


def _to_statuses(value: Iterable[int]) -> frozenset[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigurationError("retry_after_statuses must be a set of HTTP statuses")
    found = frozenset(value)
    if not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in found):
        raise ConfigurationError("retry_after_statuses must be HTTP statuses (100-599)")
    return found


@attrs.frozen
class RetryPolicy:
    """When to retry a failed attempt, and when to give up: every retry rule in one value.

    After the n-th failed attempt (n starting at 1) the next attempt is due ``delays[n-1]``
    seconds later (times a random factor in ``[1 - jitter, 1 + jitter]``), but no sooner
    than ``timeout_penalty`` after an attempt that timed out, and no sooner than a
    ``Retry-After`` header of a status in ``retry_after_statuses`` asks (capped at
    ``max_retry_after``). When the attempt that fails is the last one (``len(delays) + 1``
    attempts in all), the policy gives up: the delivery has failed for good and its hook
    dies.

    Args:
        delays: Seconds (or timedeltas) between attempts. Default: Capsule's schedule.
        jitter: A fraction in ``[0, 1)``. Default 0: exactly the schedule.
        timeout_penalty: After a timeout, wait at least this many seconds (Svix's rule: a
            receiver too slow to answer gets room). Default 60 s.
        max_retry_after: The longest wait a ``Retry-After`` header can impose. Default 1 h.
        retry_after_statuses: The statuses whose ``Retry-After`` is obeyed. Default
            :attr:`RETRY_AFTER_STATUSES` (429 and 503).

    Raises:
        ConfigurationError: Naming the option, for a value that cannot work (a negative,
            infinite or absurdly long delay, a jitter outside ``[0, 1)``...).

    Example:
        >>> policy = RetryPolicy()
        >>> policy.max_attempts
        6
        >>> [policy.delay_after(n) for n in range(1, 7)]
        [5.0, 60.0, 300.0, 900.0, 900.0, None]
        >>> RetryPolicy(delays=[1, 2]).total
        3.0

    .. versionchanged:: 0.2.0
       ``timeout_penalty``, ``max_retry_after`` and ``retry_after_statuses`` moved here from
       the Dispatcher; :meth:`next_attempt_at` applies them all.
    """

    RETRY_AFTER_STATUSES: ClassVar[frozenset[int]] = frozenset({429, 503})
    """The statuses whose ``Retry-After`` header is obeyed by default."""

    delays: tuple[float, ...] = attrs.field(default=CAPSULE_SCHEDULE, converter=_to_delays)
    jitter: float = attrs.field(default=0.0, converter=_to_jitter)
    timeout_penalty: float = attrs.field(default=60.0, converter=_to_penalty)
    max_retry_after: float = attrs.field(default=3600.0, converter=_to_cap)
    retry_after_statuses: frozenset[int] = attrs.field(
        default=RETRY_AFTER_STATUSES, converter=_to_statuses
    )

    @property
    def max_attempts(self) -> int:
        """How many attempts in all, the first one and one per delay."""
        return len(self.delays) + 1

    @property
    def total(self) -> float:
        """Seconds from the first attempt to the last, without jitter."""
        return float(sum(self.delays))

    def delay_after(self, failed_attempts: int, rng: random.Random | None = None) -> float | None:
        """The schedule alone: seconds to wait after ``failed_attempts`` failures (with
        jitter), or ``None`` to give up.

        Raises:
            ValidationError: If ``failed_attempts`` is not an int >= 1.
        """
        if isinstance(failed_attempts, bool) or not isinstance(failed_attempts, int):
            raise ValidationError("failed_attempts", "must be an int >= 1")
        if failed_attempts < 1:
            raise ValidationError("failed_attempts", "must be an int >= 1")
        if failed_attempts > len(self.delays):
            return None
        delay = self.delays[failed_attempts - 1]
        if self.jitter:
            delay *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return delay

    def next_attempt_at(
        self,
        attempt: Attempt,
        *,
        finished: datetime,
        headers: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """When to try again after the failed ``attempt``, or ``None``: give up.

        Args:
            attempt: The failed attempt (its ``number``, ``status`` and ``error_kind``).
            finished: When it ended.
            headers: The response's headers, if an answer came (for ``Retry-After``).
            rng: Where jitter comes from. Default: the ``random`` module.

        Example:
            >>> from datetime import datetime, timezone
            >>> from resthooks import Attempt
            >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
            >>> busy = Attempt(delivery_id="msg_1", number=1, started_at=t, duration=0.1,
            ...                status=429, error_kind="http")
            >>> RetryPolicy().next_attempt_at(busy, finished=t, headers={"Retry-After": "120"})
            datetime.datetime(2026, 1, 1, 0, 2, tzinfo=datetime.timezone.utc)
            >>> last = Attempt(delivery_id="msg_1", number=6, started_at=t, duration=0.1,
            ...                status=500, error_kind="http")
            >>> RetryPolicy().next_attempt_at(last, finished=t) is None
            True
        """
        delay = self.delay_after(attempt.number, rng)
        if delay is None:
            return None
        if attempt.error_kind == TransportErrorKind.TIMEOUT:
            delay = max(delay, self.timeout_penalty)
        if headers is not None and attempt.status in self.retry_after_statuses:
            header = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            wait = None if header is None else self.parse_retry_after(header, now=finished)
            if wait is not None:
                delay = max(delay, min(wait, self.max_retry_after))
        return finished + timedelta(seconds=delay)

    @staticmethod
    def parse_retry_after(value: str, *, now: datetime) -> float | None:
        """Seconds to wait from ``now`` as a ``Retry-After`` value asks, or ``None`` if it is
        not understood (RFC 9110, section 10.2.3).

        ``value`` is either a number of seconds or an HTTP date; a date in the past means 0.

        Example:
            >>> from datetime import datetime, timezone
            >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
            >>> RetryPolicy.parse_retry_after("120", now=now)
            120.0
            >>> RetryPolicy.parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", now=now)
            120.0
            >>> RetryPolicy.parse_retry_after("soon", now=now) is None
            True
        """
        value = value.strip()
        if _SECONDS.fullmatch(value):
            return float(int(value))
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # an HTTP date is always GMT
            when = when.replace(tzinfo=timezone.utc)
        return max((when - now).total_seconds(), 0.0)
