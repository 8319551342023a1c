"""Standard Webhooks v1 signatures: secrets and the signing of outgoing requests."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import secrets

from .errors import ValidationError

__all__ = ["SECRET_PREFIX", "generate_secret", "parse_secret", "sign"]

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


def parse_secret(secret: object, *, field: str = "secret") -> bytes:
    """Return the key bytes of a ``whsec_`` secret.

    The prefix is optional (some providers show secrets without it). The key must be 24 to
    64 bytes after base64 decoding.

    Raises:
        ValidationError: Naming ``field``, if the secret is not such a string. The message
            never contains the secret.
    """
    if not isinstance(secret, str):
        raise ValidationError(field, f"must be a string, not {type(secret).__name__}")
    text = secret.removeprefix(SECRET_PREFIX)
    if len(text) > 200:
        raise ValidationError(field, "is too long")
    try:
        key = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValidationError(field, "must be 'whsec_' followed by base64") from None
    if not _MIN_KEY <= len(key) <= _MAX_KEY:
        raise ValidationError(
            field, f"must decode to {_MIN_KEY} to {_MAX_KEY} bytes, not {len(key)}"
        )
    return key


@functools.lru_cache(maxsize=1024)
def _key_of(secret: str) -> bytes:
    # Every attempt signs; decode each hook's secret once, not once per attempt.
    return parse_secret(secret)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature token of one request.

    The signed content is ``"{msg_id}.{timestamp}.".encode() + body``, signed with
    HMAC-SHA256 under the decoded secret.

    Example (the specification's test vector):
        >>> sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
        ...      1614265330, b'{"test": 2432232314}')
        'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
    """
    key = _key_of(secret) if isinstance(secret, str) else parse_secret(secret)
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.digest(key, content, "sha256")
    return "v1," + base64.b64encode(digest).decode("ascii")
