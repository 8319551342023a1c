"""Checks of the arguments every face of the engine takes (the Dispatcher, the async face,
the subscription API, the CLI). Not public: each raises a ValidationError naming the field."""

from __future__ import annotations

import re

from .errors import ValidationError

__all__ = ["MAX_OWNER_LENGTH", "object_id", "owner"]

MAX_OWNER_LENGTH = 255
"""The longest owner resthooks stores."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def owner(value: object) -> str:
    """``value`` if it is an owner: a non-empty string of at most 255 characters, without
    control characters or lone surrogates.

    Example:
        >>> owner("acme")
        'acme'
        >>> owner("")
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: owner: must not be empty
    """
    if not isinstance(value, str):
        raise ValidationError("owner", f"must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError("owner", "must not be empty")
    if len(value) > MAX_OWNER_LENGTH:
        raise ValidationError("owner", f"must be at most {MAX_OWNER_LENGTH} characters")
    if _CONTROL.search(value):
        raise ValidationError("owner", "must not contain control characters or lone surrogates")
    return value


def object_id(value: object, field: str) -> str:
    """``value`` if it is a string (an id of a hook or a delivery), naming ``field`` if not."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    return value
