"""The retry schedule, as a value."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta

import attrs

__all__ = ["CAPSULE_SCHEDULE", "RetryPolicy"]

CAPSULE_SCHEDULE: tuple[float, ...] = (5.0, 60.0, 300.0, 900.0, 900.0)
"""Capsule's delays in seconds between a failed attempt and the next: 5 s, 1 min, 5 min,
15 min, 15 min (36 min 5 s in all)."""


def _to_delays(value: Sequence[float | timedelta]) -> tuple[float, ...]:
    delays = tuple(v.total_seconds() if isinstance(v, timedelta) else float(v) for v in value)
    for d in delays:
        if not d >= 0 or d == float("inf"):
            raise ValueError(f"retry delays must be finite and >= 0, got {d!r}")
    return delays


def _check_jitter(_: object, __: object, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"jitter must be in [0, 1), got {value!r}")


@attrs.frozen
class RetryPolicy:
    """When to retry a failed attempt, and when to give up.

    After the n-th failed attempt (n starting at 1) the next attempt is due ``delays[n-1]``
    seconds later; when the attempt that fails is the last one (``len(delays) + 1`` attempts in
    all), the delivery has failed for good and its hook dies.

    Args:
        delays: Seconds (or timedeltas) between attempts. Default: Capsule's schedule.
        jitter: A fraction; each delay is multiplied by a random factor in
            ``[1 - jitter, 1 + jitter]``. Default 0: exactly the schedule.

    Example:
        >>> policy = RetryPolicy()
        >>> policy.max_attempts
        6
        >>> [policy.delay_after(n) for n in range(1, 7)]
        [5.0, 60.0, 300.0, 900.0, 900.0, None]
        >>> RetryPolicy(delays=[1, 2]).total
        3.0
    """

    delays: tuple[float, ...] = attrs.field(default=CAPSULE_SCHEDULE, converter=_to_delays)
    jitter: float = attrs.field(default=0.0, converter=float, validator=_check_jitter)

    @property
    def max_attempts(self) -> int:
        """How many attempts in all, the first one and one per delay."""
        return len(self.delays) + 1

    @property
    def total(self) -> float:
        """Seconds from the first attempt to the last, without jitter."""
        return float(sum(self.delays))

    def delay_after(self, failed_attempts: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after ``failed_attempts`` failures, or ``None`` to give up."""
        if failed_attempts < 1:
            raise ValueError("failed_attempts starts at 1")
        if failed_attempts > len(self.delays):
            return None
        delay = self.delays[failed_attempts - 1]
        if self.jitter:
            factor = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
            delay *= factor
        return delay
