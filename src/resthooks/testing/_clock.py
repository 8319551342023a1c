from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

__all__ = ["FakeClock"]

_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


class FakeClock:
    """A clock that moves only when told to, for tests.

    Args:
        start: The initial time (aware; converted to UTC). Default 2026-01-01T00:00:00Z.

    ``sleep_until`` jumps the clock forward to the deadline at once (like trio's autojump),
    unless ``wake`` is already set, so a worker loop driven by a FakeClock plays out a whole
    retry schedule in milliseconds.

    With the threaded worker (:class:`resthooks.worker.Worker`): the worker sleeps on the
    clock only when it has nothing else to do, and never up to the leases of its own
    attempts in flight (it waits for them instead), so a delivery's schedule plays out at
    exact fake times. If another delivery falls due while attempts are in flight, time may
    jump to it before they finish, as real time would pass. ``run_until_idle()`` never
    sleeps on the clock: time stands still while it runs.

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
        ValueError: FakeClock cannot go backwards
    """

    def __init__(self, start: datetime = _EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current fake time."""
        with self._lock:
            return self._now

    def advance(self, delta: float | timedelta) -> None:
        """Move forward by ``delta`` seconds (or a timedelta).

        Raises:
            ValueError: If ``delta`` is negative.
        """
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("FakeClock cannot go backwards")
        with self._lock:
            self._now += step

    def set(self, when: datetime) -> None:
        """Move forward to ``when``.

        Raises:
            ValueError: If ``when`` is earlier than now or naive.
        """
        if when.tzinfo is None:
            raise ValueError("when must be an aware datetime")
        with self._lock:
            if when < self._now:
                raise ValueError("FakeClock cannot go backwards")
            self._now = when.astimezone(timezone.utc)

    def sleep_until(self, deadline: datetime, wake: threading.Event | None = None) -> None:
        """Jump to ``deadline`` unless ``wake`` is set; never waits for real."""
        if wake is not None and wake.is_set():
            return
        with self._lock:
            if deadline > self._now:
                self._now = deadline.astimezone(timezone.utc)

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"
