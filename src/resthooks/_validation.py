"""The checks every public entry point applies to what it is given. Not public.

One place for each rule: the Dispatcher, the subscription API and the command line call
these before a store sees anything, so no store meets a value it cannot hold (a lone
surrogate or NUL in a text column, an integer past 64 bits, a time past year 9999).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ._durations import to_timedelta
from .errors import DeliveryNotFound, HookNotFound, NotFound, ValidationError

__all__ = [
    "MAX_LIMIT",
    "MAX_OWNER_LENGTH",
    "aware_datetime",
    "delivery_id",
    "hook_id",
    "id_filter",
    "iso_datetime",
    "limit",
    "ordering_arguments",
    "ordering_key",
    "owner",
    "purge_before",
    "string",
]

MAX_OWNER_LENGTH = 255
MAX_ID_LENGTH = 255
#: The longest ordering key an emit takes.
MAX_ORDERING_KEY_LENGTH = 255
#: The largest ``limit`` a listing takes (what a 32-bit signed integer holds).
MAX_LIMIT = 2**31 - 1

# What no stored text may contain: controls and lone surrogates (a UTF-8 database cannot
# encode them; PostgreSQL's text cannot hold NUL at all).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def owner(value: object) -> str:
    """An owner: a non-empty string of at most 255 characters, without controls."""
    if not isinstance(value, str):
        raise ValidationError("owner", f"must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError("owner", "must not be empty")
    if len(value) > MAX_OWNER_LENGTH:
        raise ValidationError("owner", f"must be at most {MAX_OWNER_LENGTH} characters")
    if _CONTROL.search(value):
        raise ValidationError("owner", "must not contain control characters or lone surrogates")
    return value


def ordering_key(value: object) -> str | None:
    """An emit's ordering key: ``None``, or a non-empty string of at most 255 characters
    without controls or lone surrogates."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            "ordering_key", f"must be a string or None, not {type(value).__name__}"
        )
    if not value:
        raise ValidationError("ordering_key", "must not be empty (pass None for no key)")
    if len(value) > MAX_ORDERING_KEY_LENGTH:
        raise ValidationError(
            "ordering_key", f"must be at most {MAX_ORDERING_KEY_LENGTH} characters"
        )
    if _CONTROL.search(value):
        raise ValidationError(
            "ordering_key", "must not contain control characters or lone surrogates"
        )
    return value


def ordering_arguments(value: object) -> dict[str, str]:
    """The validated ordering key as the keyword a store's ``enqueue`` takes, or nothing: a
    store of your own without ``ordering_key`` keeps working until a key is used."""
    key = ordering_key(value)
    return {} if key is None else {"ordering_key": key}


def string(value: object, field: str) -> str:
    """Any string: only the type is checked (a host's programming error, not input)."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    return value


def _lookup(value: object, field: str, not_found: type[NotFound]) -> str:
    value = string(value, field)
    if not value or len(value) > MAX_ID_LENGTH or _CONTROL.search(value):
        # No object ever has such an id: it is unknown, like any other unknown id (404).
        raise not_found(value)
    return value


def hook_id(value: object) -> str:
    """A hook id to look up: a string (else ValidationError); one that no hook can have
    (empty, too long, controls, lone surrogates) raises HookNotFound."""
    return _lookup(value, "hook_id", HookNotFound)


def delivery_id(value: object) -> str:
    """A delivery id to look up; like :func:`hook_id`, raising DeliveryNotFound."""
    return _lookup(value, "delivery_id", DeliveryNotFound)


def id_filter(value: object, field: str) -> str:
    """An id used as a filter: one no object can have is refused, naming ``field``."""
    value = string(value, field)
    if not value or len(value) > MAX_ID_LENGTH or _CONTROL.search(value):
        raise ValidationError(
            field, f"is not an id: empty, longer than {MAX_ID_LENGTH} or with control characters"
        )
    return value


def limit(value: object) -> int:
    """A listing's limit: an int from 0 to :data:`MAX_LIMIT`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
        raise ValidationError("limit", f"must be an int from 0 to {MAX_LIMIT}")
    return value


def purge_before(older_than: object, now: datetime) -> datetime:
    """The cut-off of a purge: ``now`` minus an age (seconds or a timedelta), which must be
    a duration by the one rule (:func:`resthooks._durations.seconds`: finite, not negative,
    at most about 100 years) and not reach past the first year a datetime holds."""
    age = to_timedelta(older_than, "older_than", config=False)
    try:
        return now - age
    except OverflowError:
        limit_days = (now - datetime.min.replace(tzinfo=now.tzinfo)).days
        raise ValidationError(
            "older_than", f"must be at most {limit_days} days (the calendar starts at year 1)"
        ) from None


def aware_datetime(value: object, field: str) -> datetime:
    """A point in time given as a datetime: it must be aware; returned in UTC."""
    if not isinstance(value, datetime):
        raise ValidationError(field, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, "must be an aware datetime (with a time zone)")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # year 1 or 9999 with an offset that leaves the calendar
        raise ValidationError(field, "is outside the calendar") from None


def iso_datetime(value: object, field: str) -> datetime:
    """A point in time given as text: ISO 8601 with a time zone (``2026-01-01T00:00:00Z``,
    ``...+02:00``), at most 64 characters; returned in UTC."""
    if not isinstance(value, str):
        raise ValidationError(
            field,
            f"must be an ISO 8601 time such as 2026-01-01T00:00:00Z, not {type(value).__name__}",
        )
    if len(value) > 64 or _CONTROL.search(value):
        raise ValidationError(field, "must be an ISO 8601 time such as 2026-01-01T00:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            field, "must be an ISO 8601 time such as 2026-01-01T00:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise ValidationError(field, "must say its time zone (end it with Z for UTC)")
    return aware_datetime(parsed, field)
