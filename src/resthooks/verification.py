"""Verification of Standard Webhooks signatures, for the receiving side."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from ._durations import seconds
from .errors import ConfigurationError, ValidationError, VerificationError
from .signing import parse_secret

__all__ = ["VerificationError", "verify"]

_TIMESTAMP = re.compile(r"\A[0-9]{1,15}\Z")
_MAX_SIGNATURE_HEADER = 8192  # a few dozen tokens; more is an attack, not a rotation
_DIGEST_SIZE = hashlib.sha256().digest_size


def _header(headers: Mapping[str, str], name: str) -> str:
    found: str | None = None
    for key, value in headers.items():
        if not isinstance(key, str) or key.lower() != name:
            continue
        if not isinstance(value, str):
            raise VerificationError("missing_header", f"{name} is not text", header=name)
        if found is not None and found != value:
            raise VerificationError(
                "ambiguous_header", f"{name} is given twice with different values", header=name
            )
        found = value
    if not found:
        raise VerificationError("missing_header", f"{name} is missing", header=name)
    return found


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: float | timedelta = 300.0,
    now: datetime | float | None = None,
) -> None:
    """Check that a request was signed with ``secret`` recently; raise if not.

    Follows Standard Webhooks v1: the signed content is ``{webhook-id}.{webhook-timestamp}.``
    followed by the raw body; ``webhook-signature`` holds space-separated ``v1,<base64>``
    tokens, and the request is genuine if ANY ``v1`` token matches (compared in constant
    time). Tokens of other versions are ignored. Header names are case-insensitive.

    Args:
        body: The raw request body, exactly as received (before any JSON parsing).
        headers: The request headers (any mapping, e.g. Flask's ``request.headers``).
        secret: The hook's ``whsec_`` secret, or several (during a rotation on your side):
            the request is accepted if it matches any of them.
        tolerance: How far ``webhook-timestamp`` may be from now, either way, in seconds or
            as a :class:`~datetime.timedelta`. Default 5 minutes.
        now: The current time (an aware datetime or Unix seconds). Default: the system clock.

    Raises:
        VerificationError: With a ``reason`` saying why the request is refused (``bad_secret``
            for a ``secret`` that is not a secret, ``None`` included). No other exception
            comes from the request's content.
        ConfigurationError: If ``tolerance`` is not a duration or ``now`` not a time.
        ValidationError: If ``body`` is not bytes.

    Example (the specification's test vector):
        >>> headers = {
        ...     "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        ...     "webhook-timestamp": "1614265330",
        ...     "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ... }
        >>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        >>> verify(b'{"test": 2432232314}', headers, secret, now=1614265330)
        >>> verify(b'{"test": 0}', headers, secret, now=1614265330)
        Traceback (most recent call last):
        ...
        resthooks.errors.VerificationError: no_match: no v1 signature matches
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ValidationError(
            "body", f"must be the raw bytes of the request, not {type(body).__name__}"
        )
    window = seconds(tolerance, "tolerance")
    if isinstance(secret, str):
        secrets = [secret]
    elif isinstance(secret, Sequence) and all(isinstance(s, str) for s in secret):
        secrets = list(secret)
    else:
        raise VerificationError(
            "bad_secret",
            f"the secret given to verify must be a whsec_ string or a list of them, "
            f"not {type(secret).__name__}",
        )
    try:
        keys = [parse_secret(s) for s in secrets]
    except ValidationError as exc:
        raise VerificationError("bad_secret", f"the secret given to verify {exc.message}") from None
    if not keys:
        raise VerificationError("bad_secret", "no secret was given to verify")

    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")

    _check_timestamp(stamp, window, now)
    candidates = _v1_signatures(signature)

    # Sign the timestamp as sent, and never fail on odd text in the id.
    content = f"{msg_id}.{stamp}.".encode("utf-8", "surrogatepass") + bytes(body)
    matched = False
    for key in keys:
        expected = hmac.new(key, content, hashlib.sha256).digest()
        for candidate in candidates:
            # No early exit: the time taken does not depend on which token matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise VerificationError("no_match", "no v1 signature matches", header="webhook-signature")


def _check_timestamp(stamp: str, window: float, now: datetime | float | None) -> None:
    if not _TIMESTAMP.match(stamp):
        raise VerificationError(
            "malformed_timestamp",
            "webhook-timestamp is not Unix seconds",
            header="webhook-timestamp",
        )
    timestamp = int(stamp)
    if now is None:
        current = time.time()
    elif isinstance(now, datetime):
        current = now.timestamp()
    elif isinstance(now, (int, float)) and not isinstance(now, bool):
        current = float(now)
    else:
        raise ConfigurationError(
            f"now must be a datetime or Unix seconds, not {type(now).__name__}"
        )
    if not math.isfinite(current):
        raise ConfigurationError("now must be a finite time")
    if current - timestamp > window:
        raise VerificationError(
            "timestamp_too_old",
            f"webhook-timestamp is {current - timestamp:.0f} s old (tolerance {window:.0f} s)",
            header="webhook-timestamp",
        )
    if timestamp - current > window:
        raise VerificationError(
            "timestamp_too_new",
            f"webhook-timestamp is {timestamp - current:.0f} s ahead (tolerance {window:.0f} s)",
            header="webhook-timestamp",
        )


def _v1_signatures(signature: str) -> list[bytes]:
    if len(signature) > _MAX_SIGNATURE_HEADER:
        raise VerificationError(
            "malformed_signature", "webhook-signature is too long", header="webhook-signature"
        )
    tokens = signature.split()
    if not tokens:
        raise VerificationError(
            "malformed_signature", "webhook-signature has no token", header="webhook-signature"
        )
    candidates: list[bytes] = []
    for token in tokens:
        version, comma, encoded = token.partition(",")
        if not comma or not version or not encoded:
            raise VerificationError(
                "malformed_signature",
                "a webhook-signature token is not 'version,signature'",
                header="webhook-signature",
            )
        if version != "v1":
            continue
        try:
            decoded = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            decoded = b""
        if len(decoded) != _DIGEST_SIZE:
            raise VerificationError(
                "malformed_signature",
                "a v1 token is not the base64 of an HMAC-SHA256",
                header="webhook-signature",
            )
        candidates.append(decoded)
    if not candidates:
        raise VerificationError(
            "unsupported_version", "webhook-signature has no v1 token", header="webhook-signature"
        )
    return candidates
