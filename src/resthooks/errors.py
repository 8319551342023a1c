"""Typed errors raised by resthooks.

Every error a caller can see derives from :class:`ResthooksError`, so one ``except`` clause
catches them all. Validation errors name the field that was wrong; not-found errors are their
own types, so an HTTP layer can map them to ``404``.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DamagedRowError",
    "DeliveryNotFound",
    "HookLimitReached",
    "HookNotFound",
    "InvalidStateError",
    "NotFound",
    "PayloadError",
    "ResthooksError",
    "SchemaError",
    "StoreError",
    "TransportError",
    "ValidationError",
]


class ResthooksError(Exception):
    """Base class of every error resthooks raises on purpose."""


class ValidationError(ResthooksError, ValueError):
    """Input was refused; nothing was stored.

    Attributes:
        field: The name of the offending field, as the Python API calls it (``event``,
            ``target_url``, ``description``, ``owner``, ``payload``, ...), or ``None`` when the
            error is not about one field.
        message: A sentence for a human, without secrets.

    Example:
        >>> err = ValidationError("target_url", "must be an absolute http or https URL")
        >>> err.field, str(err)
        ('target_url', 'target_url: must be an absolute http or https URL')
    """

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class HookLimitReached(ValidationError):
    """The owner already has as many hooks as the Dispatcher allows (Capsule: 20)."""

    def __init__(self, owner_limit: int) -> None:
        self.limit = owner_limit
        super().__init__(None, f"an owner may have at most {owner_limit} hooks")


class PayloadError(ValidationError):
    """An event payload cannot be encoded as JSON, or is larger than allowed."""

    def __init__(self, message: str) -> None:
        super().__init__("payload", message)


class NotFound(ResthooksError, LookupError):
    """Something with this id does not exist, or belongs to another owner.

    An owner never learns whether another owner's object exists: both cases raise this.
    """

    kind = "object"

    def __init__(self, object_id: str) -> None:
        self.id = object_id
        super().__init__(f"no {self.kind} with id {object_id!r}")


class HookNotFound(NotFound):
    """No hook with this id for this owner."""

    kind = "hook"


class DeliveryNotFound(NotFound):
    """No delivery with this id for this owner."""

    kind = "delivery"


class InvalidStateError(ResthooksError):
    """The operation does not apply to the object in its current state.

    For example, redelivering a delivery that is still pending, or reviving a hook that is
    not dead.
    """


class ConfigurationError(ResthooksError, ValueError):
    """The Dispatcher, a store or a transport was built with options that cannot work."""


class StoreError(ResthooksError):
    """A store could not do what was asked (locked past its timeout, unreadable file...).

    Driver exceptions never escape a store; they arrive wrapped in this type with the
    original as ``__cause__``.
    """


class DamagedRowError(StoreError):
    """A stored row cannot be read back: a value out of range, an unknown state, a missing
    column (a damaged or hand-edited database).

    Reads that meet one raise this; the worker's claims move such delivery rows aside instead
    (see :class:`~resthooks.model.QuarantinedDelivery`). ``resthooks check`` lists them.

    Attributes:
        table: The table the row is in (``hooks``, ``deliveries``, ``attempts``).
        key: The row's id, as far as it can be told.

    .. versionadded:: 0.2.0
    """

    def __init__(self, table: str, key: str, message: str) -> None:
        self.table = table
        self.key = key
        super().__init__(f"a row of {table} ({key!r}) cannot be read: {message}")


class SchemaError(StoreError):
    """The database is not a resthooks database, or was written by a newer version."""


class TransportError(ResthooksError):
    """A request could not be completed: no HTTP status is available.

    Attributes:
        kind: A short machine-readable word: ``timeout``, ``connection``, ``tls``,
            ``blocked`` (refused by the network policy), ``protocol`` or ``too_large``.
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")
