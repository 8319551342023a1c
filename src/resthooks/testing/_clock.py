from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone

from .._durations import seconds
from ..errors import ValidationError

__all__ = ["FakeClock"]

_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _aware(value: object, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError(field, f"must be an aware datetime, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValidationError(field, "must be an aware datetime, not a naive one")
    return value.astimezone(timezone.utc)


class FakeClock:
    """A clock for tests: it moves when told to, or at a fixed rate of real time.

    Args:
        start: The initial time (aware; converted to UTC). Default 2026-01-01T00:00:00Z.
        rate: Fake seconds per real second. Default 0: time moves only when told
            (:meth:`advance`, :meth:`set`, or a :meth:`sleep_until` that jumps). With a
            rate, time also runs on its own, ``rate`` times as fast as real time, and
            ``sleep_until`` waits for real (the matching fraction of the wait) instead of
            jumping: ``resthooks demo`` plays Capsule's 36-minute schedule in seconds on
            ``FakeClock(rate=600)``.

    Without a rate, ``sleep_until`` jumps the clock forward to the deadline at once (like
    trio's autojump), unless ``wake`` is already set, so a worker loop driven by a FakeClock
    plays out a whole retry schedule in milliseconds.

    With the threaded worker (:class:`resthooks.worker.Worker`): the worker sleeps on the
    clock only when it has nothing else to do, and never up to the leases of its own
    attempts in flight (it waits for them instead), so a delivery's schedule plays out at
    exact fake times. If another delivery falls due while attempts are in flight, time may
    jump to it before they finish, as real time would pass. ``run_until_idle()`` never
    sleeps on the clock: time stands still while it runs.

    Raises:
        ValidationError: For a naive or non-datetime ``start``, or a ``rate`` that is not a
            finite number >= 0.

    Example:
        >>> clock = FakeClock()
        >>> clock.now().isoformat()
        '2026-01-01T00:00:00+00:00'
        >>> clock.advance(5)
        >>> clock.now().isoformat()
        '2026-01-01T00:00:05+00:00'
        >>> clock.advance(-1)
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: delta: FakeClock cannot go backwards
        >>> fast = FakeClock(rate=1000)
        >>> before = fast.now()
        >>> fast.sleep_until(before + timedelta(seconds=5))  # about 5 ms of real time
        >>> fast.now() - before >= timedelta(seconds=5)
        True

    .. versionchanged:: 0.2.0
       ``rate``; bad arguments raise :class:`~resthooks.errors.ValidationError` (still a
       ``ValueError``).
    """

    def __init__(self, start: datetime = _EPOCH, *, rate: float = 0.0) -> None:
        self._base = _aware(start, "start")
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not math.isfinite(rate)
            or rate < 0
        ):
            raise ValidationError("rate", f"must be a finite number >= 0, not {rate!r}")
        self.rate = float(rate)
        self._origin = time.monotonic()
        self._lock = threading.Lock()

    def _now(self) -> datetime:
        if not self.rate:
            return self._base
        return self._base + timedelta(seconds=(time.monotonic() - self._origin) * self.rate)

    def now(self) -> datetime:
        """The current fake time."""
        with self._lock:
            return self._now()

    def advance(self, delta: float | timedelta) -> None:
        """Move forward by ``delta`` seconds (or a timedelta).

        Raises:
            ValidationError: If ``delta`` is negative, or not a finite number of seconds.
        """
        if isinstance(delta, timedelta) and delta < timedelta(0):
            raise ValidationError("delta", "FakeClock cannot go backwards")
        if isinstance(delta, (int, float)) and not isinstance(delta, bool) and delta < 0:
            raise ValidationError("delta", "FakeClock cannot go backwards")
        step = timedelta(seconds=seconds(delta, "delta", config=False))
        with self._lock:
            self._base += step

    def set(self, when: datetime) -> None:
        """Move forward to ``when``.

        Raises:
            ValidationError: If ``when`` is earlier than now, or naive.
        """
        target = _aware(when, "when")
        with self._lock:
            now = self._now()
            if target < now:
                raise ValidationError("when", "FakeClock cannot go backwards")
            self._base += target - now

    def sleep_until(self, deadline: datetime, wake: threading.Event | None = None) -> None:
        """Without a rate, jump to ``deadline`` unless ``wake`` is set, never waiting for
        real; with one, wait the real fraction of the time left, or until ``wake`` is set."""
        if not self.rate:
            if wake is not None and wake.is_set():
                return
            with self._lock:
                if deadline > self._base:
                    self._base = deadline.astimezone(timezone.utc)
            return
        while True:
            left = (deadline - self.now()).total_seconds() / self.rate
            if left <= 0 or (wake is not None and wake.is_set()):
                return
            if wake is None:
                time.sleep(left)
            elif wake.wait(left):
                return

    def __repr__(self) -> str:
        rate = f", rate={self.rate:g}" if self.rate else ""
        return f"FakeClock({self.now().isoformat()}{rate})"
