"""Reading a ``Retry-After`` header (RFC 9110, section 10.2.3). Not public."""

from __future__ import annotations

import email.utils
import re
from datetime import datetime, timezone

__all__ = ["parse_retry_after"]

_SECONDS = re.compile(r"[0-9]{1,10}")


def parse_retry_after(value: str, *, now: datetime) -> float | None:
    """Seconds to wait from ``now`` as ``value`` asks, or ``None`` if it is not understood.

    ``value`` is either a number of seconds or an HTTP date; a date in the past means 0.

    Example:
        >>> from datetime import datetime, timezone
        >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> parse_retry_after("120", now=now)
        120.0
        >>> parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", now=now)
        120.0
        >>> parse_retry_after("soon", now=now) is None
        True
    """
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=timezone.utc)
    return max((when - now).total_seconds(), 0.0)
