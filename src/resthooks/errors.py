"""Typed errors raised by resthooks: one tree.

Every error a caller can see derives from :class:`ResthooksError`, so one ``except`` clause
catches them all. Validation errors name the field that was wrong; not-found errors are their
own types, so an HTTP layer can map them to ``404``. No public call lets a bare
``ValueError``, ``TypeError`` or ``KeyError`` out for bad input. The tree::

    ResthooksError
    ├── ValidationError (also ValueError)  input refused, naming the field; nothing stored
    │   ├── HookLimitReached               the owner's hook cap
    │   └── PayloadError                   an event payload that cannot be sent
    ├── ConfigurationError (also ValueError)  options that cannot work together
    │   └── AppError                       ``--app`` names no usable Dispatcher
    ├── NotFound (also LookupError)
    │   ├── HookNotFound
    │   └── DeliveryNotFound
    ├── InvalidStateError                  the object is not in a state for this
    │   └── SubscriptionExists             another hook already has this event and URL
    ├── StoreError                         a store could not do it (driver errors wrapped)
    │   ├── SchemaError
    │   └── DamagedRowError
    ├── TransportError                     no HTTP status; ``kind`` a TransportErrorKind
    └── VerificationError                  a received webhook failed verify()
"""

from __future__ import annotations

import enum

__all__ = [
    "AppError",
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
    "SubscriptionExists",
    "TransportError",
    "TransportErrorKind",
    "ValidationError",
    "VerificationError",
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
    """An event payload cannot be encoded as JSON, is larger than allowed, or (with
    ``Dispatcher(validate_payloads=True)``) does not match its event's JSON Schema.

    Attributes:
        path: Where in the body the receiver would get the payload is wrong, as a JSON path
            (``$.payload[0].address.city``), when a schema check failed; else ``None``.

    .. versionchanged:: 0.2.0
       ``path``.

    Example:
        >>> err = PayloadError("'x' is not of type 'integer'", path="$.payload[0].id")
        >>> err.field, err.path, str(err)
        ('payload', '$.payload[0].id', "payload: $.payload[0].id: 'x' is not of type 'integer'")
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__("payload", f"{path}: {message}" if path else message)


class NotFound(ResthooksError, LookupError):
    """Something with this id does not exist, or belongs to another owner.

    An owner never learns whether another owner's object exists: both cases raise this.
    """

    kind = "object"

    def __init__(self, object_id: str, *, why: str | None = None) -> None:
        self.id = object_id
        text = f"no {self.kind} with id {object_id!r}"
        super().__init__(f"{text}: {why}" if why else text)


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


class SubscriptionExists(InvalidStateError):
    """Updating a hook would give it the event and target URL of another hook of its owner.

    Attributes:
        hook_id: The other hook's id (the owner's own: safe to show it).

    .. versionadded:: 0.2.0
    """

    def __init__(self, hook_id: str) -> None:
        self.hook_id = hook_id
        super().__init__(f"hook {hook_id!r} already delivers this event to this target URL")


class ConfigurationError(ResthooksError, ValueError):
    """The Dispatcher, a store or a transport was built with options that cannot work."""


class AppError(ConfigurationError):
    """``resthooks --app`` (or ``$RESTHOOKS_APP``) names no usable Dispatcher.

    The module cannot be found or raised while it was imported, the attribute is missing, it
    is neither a :class:`~resthooks.Dispatcher` nor a factory returning one, or the factory
    raised. The message names the spec and says which; an exception of the host's is quoted
    with URL credentials, query strings and ``password=`` values masked.

    Attributes:
        spec: The ``module:attribute`` given.

    Example:
        >>> err = AppError("myproject.hooks:dispatcher", "no module named 'myproject'")
        >>> str(err)
        "--app 'myproject.hooks:dispatcher': no module named 'myproject'"

    .. versionadded:: 0.2.0
    """

    def __init__(self, spec: str, message: str) -> None:
        self.spec = spec
        super().__init__(f"--app {spec!r}: {message}")


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


class TransportErrorKind(str, enum.Enum):
    """Why an attempt got no HTTP status: the ``kind`` of a :class:`TransportError`, and
    what an :class:`~resthooks.Attempt` logs as its ``error_kind``.

    Each transport maps its client's exceptions to these with a table (see
    ``resthooks.transports``), so the same failure has the same kind whichever transport
    sent the request.

    .. versionadded:: 0.2.0
    """

    TIMEOUT = "timeout"
    """The connection or the answer did not come within the attempt's deadline."""
    CONNECTION = "connection"
    """The connection could not be made, or broke (refused, reset, no DNS answer)."""
    TLS = "tls"
    """The TLS handshake failed (a certificate that does not verify, say)."""
    BLOCKED = "blocked"
    """The network policy refused the target's address or scheme."""
    PROTOCOL = "protocol"
    """Anything else, such as a garbage answer, an invalid URL or a transport that broke."""
    TOO_LARGE = "too_large"
    """The request was larger than allowed, so it was not sent."""


class TransportError(ResthooksError):
    """A request could not be completed: no HTTP status is available.

    Args:
        kind: A :class:`TransportErrorKind`, or its value (a custom transport's unknown word
            is read as ``protocol``).
        message: What happened, without secrets.

    Attributes:
        kind: The :class:`TransportErrorKind` (a ``str`` enum: it compares equal to its
            value, ``"timeout"``...).
        message: What happened.

    Example:
        >>> err = TransportError("timeout", "no answer within 15 s")
        >>> err.kind is TransportErrorKind.TIMEOUT, str(err)
        (True, 'timeout: no answer within 15 s')
    """

    def __init__(self, kind: TransportErrorKind | str, message: str) -> None:
        try:
            self.kind = TransportErrorKind(kind)
        except ValueError:
            self.kind = TransportErrorKind.PROTOCOL
        self.message = message
        super().__init__(f"{self.kind.value}: {message}")


class VerificationError(ResthooksError):
    """A webhook request failed :func:`~resthooks.verify`: do not act on it.

    Also importable from ``resthooks.verification``, where it lived before 0.2.0.

    Attributes:
        reason: Why, as a machine-readable word:

            - ``missing_header``: ``webhook-id``, ``webhook-timestamp`` or
              ``webhook-signature`` is absent or empty (``header`` says which);
            - ``ambiguous_header``: a header is given twice, in different case, with
              different values;
            - ``malformed_timestamp``: ``webhook-timestamp`` is not Unix seconds;
            - ``timestamp_too_old`` / ``timestamp_too_new``: it is further from now than the
              tolerance;
            - ``malformed_signature``: a token is not ``version,base64``, or a ``v1`` token is
              not the base64 of 32 bytes;
            - ``unsupported_version``: no ``v1`` token, only other versions;
            - ``no_match``: no ``v1`` signature matches (wrong secret or altered request);
            - ``bad_secret``: the secret given to :func:`~resthooks.verify` is not a valid secret.
        header: The header at fault, when there is one.

    The message never contains the secret or a signature.

    Example:
        >>> from resthooks import verify
        >>> try:
        ...     verify(b"{}", {}, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        ... except VerificationError as err:
        ...     print(err.reason, err.header)
        missing_header webhook-id
    """

    def __init__(self, reason: str, message: str, *, header: str | None = None) -> None:
        self.reason = reason
        self.header = header
        self.message = message
        super().__init__(f"{reason}: {message}")
