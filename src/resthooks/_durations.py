"""The one rule for "a number of seconds" given to resthooks. Not public.

A duration is an ``int`` or ``float`` (not a ``bool``) or a :class:`~datetime.timedelta`,
finite, not negative (or, where asked, above zero), and at most :data:`MAX_SECONDS`: any
longer and a time computed from it (``now + delay``) would not fit a ``datetime`` for
long, and a delay of 10\\ :sup:`12` seconds once made a delivery due "never", which the
worker read as "now", 1,461 times in 3 s.
"""

from __future__ import annotations

import math
from datetime import timedelta

from .errors import ConfigurationError, ValidationError

__all__ = ["MAX_SECONDS", "seconds", "to_timedelta"]

MAX_SECONDS = 100 * 366 * 86400.0
"""The longest duration resthooks takes: about 100 years (3.16e9 s)."""


def seconds(
    value: object,
    field: str,
    *,
    positive: bool = False,
    config: bool = True,
) -> float:
    """``value`` as a number of seconds, or a typed error naming ``field``.

    Args:
        value: An int, a float or a timedelta.
        field: The option or argument name, for the error.
        positive: Refuse zero too.
        config: Raise :class:`~resthooks.errors.ConfigurationError` (an option of a value
            being built); otherwise :class:`~resthooks.errors.ValidationError` (a call's
            argument).

    Example:
        >>> seconds(1.5, "lease"), seconds(timedelta(minutes=1), "lease")
        (1.5, 60.0)
        >>> seconds(1e12, "delays")
        Traceback (most recent call last):
        ...
        resthooks.errors.ConfigurationError: delays must be a number of seconds, finite and ...
    """
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        number = math.nan
    low = "> 0" if positive else ">= 0"
    if not (
        math.isfinite(number)
        and (number > 0 if positive else number >= 0)
        and number <= MAX_SECONDS
    ):
        shown = (
            type(value).__name__
            if math.isnan(number) and not isinstance(value, float)
            else repr(value)
        )
        message = (
            f"must be a number of seconds, finite and {low}, at most {MAX_SECONDS:.3g}: not {shown}"
        )
        if config:
            raise ConfigurationError(f"{field} {message}")
        raise ValidationError(field, message)
    return number


def to_timedelta(
    value: object, field: str, *, positive: bool = False, config: bool = True
) -> timedelta:
    """Like :func:`seconds`, as a timedelta (a timedelta given is returned as it is)."""
    number = seconds(value, field, positive=positive, config=config)
    return value if isinstance(value, timedelta) else timedelta(seconds=number)
