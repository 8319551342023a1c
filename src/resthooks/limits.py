"""The limits a Dispatcher enforces, as one value validated once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from .errors import ConfigurationError

__all__ = ["Limits"]

# The largest limit accepted: what every store can hold in a 64-bit integer column.
_LARGEST = 2**63 - 1


def _count(minimum: int, *, optional: bool = False) -> Callable[[object, Any, object], None]:
    def check(_: object, attribute: Any, value: object) -> None:
        if value is None and optional:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (minimum <= value <= _LARGEST)
        ):
            what = "None or an int" if optional else "an int"
            raise ConfigurationError(
                f"{attribute.name} must be {what} from {minimum} to {_LARGEST}, not {value!r}"
            )

    return check


@attrs.frozen(kw_only=True)
class Limits:
    """The limits a :class:`~resthooks.Dispatcher` enforces, in one value.

    Like :class:`~resthooks.RetryPolicy` and :class:`~resthooks.Timeouts`, an immutable
    value, checked once when it is made: every part of the engine that needs a limit (the
    Dispatcher's subscribe and emit, the attempt, the thread and asyncio workers, the
    subscription API) reads it from the Dispatcher's ``limits``. Change one with
    ``attrs.evolve``.

    Attributes:
        payload_bytes: The largest JSON body an emit may produce, in bytes. Default 256 KiB.
        response_bytes: How much of a response body is read and kept in the attempt log,
            in bytes. Default 4 KiB.
        description_length: The longest hook description, in characters. Default 255.
        hooks_per_owner: How many hooks one owner may have (Capsule: 20), or ``None`` for no
            cap.
        in_flight_per_host: Deliveries to one target host in flight at once, across the
            workers sharing the store, or ``None`` for no limit. Default 4.

    Raises:
        ConfigurationError: Naming the field, for a value that is not an int in range (a
            ``bool`` is not an int here); nothing is built.

    .. versionadded:: 0.2.0

    Example:
        >>> from resthooks import Dispatcher, Limits
        >>> from resthooks.stores import MemoryStore
        >>> limits = Limits(hooks_per_owner=100, payload_bytes=64 * 1024)
        >>> limits
        Limits(payload_bytes=65536, response_bytes=4096, description_length=255,
               hooks_per_owner=100, in_flight_per_host=4)
        >>> Dispatcher(MemoryStore(), limits=limits).limits.hooks_per_owner
        100
        >>> Limits(in_flight_per_host=0)
        Traceback (most recent call last):
        ...
        resthooks.errors.ConfigurationError: in_flight_per_host must be None or an int ..., not 0
    """

    payload_bytes: int = attrs.field(default=256 * 1024, validator=_count(0))
    response_bytes: int = attrs.field(default=4096, validator=_count(0))
    description_length: int = attrs.field(default=255, validator=_count(0))
    hooks_per_owner: int | None = attrs.field(default=20, validator=_count(1, optional=True))
    in_flight_per_host: int | None = attrs.field(default=4, validator=_count(1, optional=True))
