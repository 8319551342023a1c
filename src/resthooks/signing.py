"""Standard Webhooks v1 signatures: secrets and the signing of outgoing requests."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
import secrets

from .errors import ValidationError

__all__ = ["SECRET_PREFIX", "generate_secret", "parse_secret", "sign", "signed_content"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_MIN_KEY, _MAX_KEY = 24, 64


def generate_secret() -> str:
    """A new secret: ``whsec_`` and the base64 of 32 random bytes from :mod:`secrets`.

    Example:
        >>> s = generate_secret()
        >>> s.startswith("whsec_") and len(parse_secret(s))
        32
    """
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _b64decode_lenient(text: str) -> bytes:
    """Decode standard base64, padded or not (the reference libraries accept both)."""
    data = text.encode("ascii")
    missing = -len(data) % 4
    if missing == 3:
        raise ValueError("not base64")
    return base64.b64decode(data + b"=" * missing, validate=True)


def parse_secret(
    secret: object, *, field: str = "secret", min_bytes: int = _MIN_KEY, max_bytes: int = _MAX_KEY
) -> bytes:
    """Return the key bytes of a ``whsec_`` secret.

    The prefix is optional (some providers show secrets without it), and so is base64's
    ``=`` padding (as the reference libraries accept). The key must be ``min_bytes`` to
    ``max_bytes`` (by default 24 to 64, the specification's range) after decoding.

    Raises:
        ValidationError: Naming ``field``, if the secret is not such a string. The message
            never contains the secret.

    Example:
        >>> len(parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr"))  # unpadded
        25

    .. versionchanged:: 0.2.0
        Unpadded base64 is accepted; ``min_bytes`` and ``max_bytes``.
    """
    if not isinstance(secret, str):
        raise ValidationError(field, f"must be a string, not {type(secret).__name__}")
    text = secret.removeprefix(SECRET_PREFIX)
    if len(text) > 4 * max_bytes // 3 + 4:
        raise ValidationError(field, "is too long")
    try:
        key = _b64decode_lenient(text)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValidationError(field, "must be 'whsec_' followed by base64") from None
    if not min_bytes <= len(key) <= max_bytes:
        raise ValidationError(
            field, f"must decode to {min_bytes} to {max_bytes} bytes, not {len(key)}"
        )
    return key


@functools.lru_cache(maxsize=1024)
def _key_of(secret: str) -> bytes:
    # Every attempt signs; decode each hook's secret once, not once per attempt.
    return parse_secret(secret)


# What a webhook-id may hold so that "id.timestamp.body" has one reading and the id fits in
# a header: printable ASCII without "." (the specification's rule) or whitespace.
_MSG_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,255}")
_MAX_TIMESTAMP = 10**15 - 1  # what verify() reads as Unix seconds (15 digits)


def signed_content(msg_id: object, timestamp: object, body: object) -> bytes:
    """The bytes a signature covers: ``{msg_id}.{timestamp}.`` followed by ``body``.

    Refuses what could be signed ambiguously or not sent at all: an id that is empty,
    longer than 255 characters, or holds a ``.``, whitespace, a control or non-ASCII
    character; a timestamp that is not a non-negative integer (``bool`` and ``float``
    included) of at most 15 digits; a body that is not bytes.

    Raises:
        ValidationError: Naming ``msg_id``, ``timestamp`` or ``body``.

    Example:
        >>> signed_content("msg_1", 1614265330, b"{}")
        b'msg_1.1614265330.{}'
        >>> signed_content("msg.1", 1614265330, b"{}")
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: msg_id: must be 1 to 255 printable ASCII characters ...

    .. versionadded:: 0.2.0
    """
    if not isinstance(msg_id, str) or not _MSG_ID.fullmatch(msg_id):
        raise ValidationError(
            "msg_id", "must be 1 to 255 printable ASCII characters without '.' or whitespace"
        )
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int)
        or not 0 <= timestamp <= _MAX_TIMESTAMP
    ):
        raise ValidationError(
            "timestamp", "must be an int of Unix seconds >= 0 (15 digits at most)"
        )
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ValidationError("body", f"must be bytes, not {type(body).__name__}")
    return f"{msg_id}.{timestamp}.".encode("ascii") + bytes(body)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature token of one request.

    The signed content is :func:`~resthooks.signing.signed_content` (``"{msg_id}.{timestamp}."``
    and the body), signed with HMAC-SHA256 under the decoded secret.

    Raises:
        ValidationError: Naming ``secret``, ``msg_id``, ``timestamp`` or ``body``.

    Example (the specification's test vector):
        >>> sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
        ...      1614265330, b'{"test": 2432232314}')
        'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
        >>> sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1614265330.5, b"{}")
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: timestamp: must be an int of Unix seconds >= 0 ...

    .. versionchanged:: 0.2.0
        Refuses a timestamp that is not an integer and an id that cannot be signed
        unambiguously.
    """
    key = _key_of(secret) if isinstance(secret, str) else parse_secret(secret)
    content = signed_content(msg_id, timestamp, body)
    digest = hmac.digest(key, content, "sha256")
    return "v1," + base64.b64encode(digest).decode("ascii")
