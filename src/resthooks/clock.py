"""Time, as the Dispatcher sees it. The core never reads the wall clock directly."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Where the Dispatcher reads the time and waits for it.

    Implementations: :class:`SystemClock` (the default) and
    :class:`resthooks.testing.FakeClock` for tests.
    """

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime. Never goes backwards."""
        ...

    def sleep_until(self, deadline: datetime, wake: threading.Event | None = None) -> None:
        """Return at ``deadline``, or earlier once ``wake`` is set (if given)."""
        ...


class SystemClock:
    """The real time: ``datetime.now(timezone.utc)`` and blocking waits.

    Example:
        >>> SystemClock().now().tzinfo is timezone.utc
        True
    """

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(timezone.utc)

    def sleep_until(self, deadline: datetime, wake: threading.Event | None = None) -> None:
        """Block until ``deadline`` or until ``wake`` is set."""
        seconds = (deadline - self.now()).total_seconds()
        if seconds <= 0:
            return
        if wake is None:
            time.sleep(seconds)
        else:
            wake.wait(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"
