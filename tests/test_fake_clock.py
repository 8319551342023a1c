"""FakeClock: aware UTC time that moves only forward, and only when told."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from resthooks import Clock
from resthooks.testing import FakeClock


def test_now_is_aware_utc_and_still() -> None:
    """now() is an aware UTC datetime that does not move by itself."""
    clock = FakeClock()

    first = clock.now()

    assert first.tzinfo is timezone.utc
    assert first == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert clock.now() == first
    assert isinstance(clock, Clock)


def test_start_in_another_zone_is_converted_to_utc() -> None:
    """A start in another time zone is the same instant, expressed in UTC."""
    clock = FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))))

    assert clock.now() == datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)
    assert clock.now().tzinfo is timezone.utc


def test_naive_start_is_refused() -> None:
    """A naive start datetime is refused."""
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2026, 1, 1))


def test_advance_by_seconds_or_timedelta() -> None:
    """advance takes seconds (int or float) or a timedelta."""
    clock = FakeClock()
    start = clock.now()

    clock.advance(5)
    clock.advance(0.25)
    clock.advance(timedelta(minutes=1))
    clock.advance(0)

    assert clock.now() - start == timedelta(seconds=65.25)


def test_advance_refuses_to_go_backwards() -> None:
    """A negative advance raises and leaves the time unchanged."""
    clock = FakeClock()
    before = clock.now()

    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-0.001)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))

    assert clock.now() == before


def test_set_moves_forward_only() -> None:
    """set() jumps forward to a given instant and refuses an earlier or naive one."""
    clock = FakeClock()
    later = datetime(2026, 1, 2, 3, 0, tzinfo=timezone(timedelta(hours=3)))

    clock.set(later)

    assert clock.now() == later
    assert clock.now().tzinfo is timezone.utc
    with pytest.raises(ValueError, match="backwards"):
        clock.set(datetime(2026, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(ValueError, match="aware"):
        clock.set(datetime(2027, 1, 1))
    assert clock.now() == later


def test_sleep_until_jumps_to_the_deadline_without_waiting() -> None:
    """sleep_until moves the clock to the deadline at once, never backwards."""
    clock = FakeClock()
    deadline = clock.now() + timedelta(hours=1)

    clock.sleep_until(deadline)
    clock.sleep_until(deadline - timedelta(minutes=30))

    assert clock.now() == deadline


def test_sleep_until_returns_at_once_when_woken() -> None:
    """With wake already set, sleep_until leaves the clock where it is."""
    clock = FakeClock()
    wake = threading.Event()
    wake.set()
    before = clock.now()

    clock.sleep_until(before + timedelta(hours=1), wake)

    assert clock.now() == before
