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
_MAX_VERIFY_KEY = 512


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

    Follows Standard Webhooks v1 (and v1a, see :mod:`resthooks.ed25519`): the signed content
    is ``{webhook-id}.{webhook-timestamp}.`` followed by the raw body; ``webhook-signature``
    holds space-separated ``v1,<base64>`` tokens, and the request is genuine if ANY ``v1``
    token matches (compared in constant time). Tokens of other versions, and tokens that
    cannot be read, are skipped. Header
    names are case-insensitive.

    Args:
        body: The raw request body, exactly as received (before any JSON parsing).
        headers: The request headers (any mapping, e.g. Flask's ``request.headers``).
        secret: The hook's ``whsec_`` secret, or several (during a rotation on your side):
            the request is accepted if it matches any of them. The prefix and base64's
            padding are optional; any key of 1 to 512 bytes is accepted. A ``whpk_`` ed25519
            public key verifies ``v1a`` tokens instead (the ``ed25519`` extra); a list may
            mix both kinds.
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
    # An infinite tolerance ignores the timestamp's age (the reference libraries' option).
    ignore_age = isinstance(tolerance, float) and tolerance == math.inf
    window = math.inf if ignore_age else seconds(tolerance, "tolerance")
    hmac_keys, public_keys = _keys(secret)
    if not callable(getattr(headers, "items", None)):
        # Any mapping-like object will do (werkzeug's headers are not a Mapping).
        raise VerificationError("missing_header", "no headers were given", header="webhook-id")

    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")

    _check_timestamp(stamp, window, now)
    wanted = {v for v, keys in (("v1", hmac_keys), ("v1a", public_keys)) if keys}
    tokens, seen, malformed, other = _signatures(signature, wanted)

    # Sign the timestamp as sent, and never fail on odd text in the id.
    content = f"{msg_id}.{stamp}.".encode("utf-8", "surrogatepass") + bytes(body)
    matched = False
    v1_tokens = [t for t in tokens["v1"] if len(t) == _DIGEST_SIZE]
    for key in hmac_keys:
        expected = hmac.new(key, content, hashlib.sha256).digest()
        for candidate in v1_tokens:
            # No early exit: the time taken does not depend on which token matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched and public_keys and tokens["v1a"]:
        from . import ed25519  # noqa: PLC0415 - the optional extra, only when given a key

        matched = ed25519.verify_any(public_keys, content, tokens["v1a"])
    if matched:
        return
    names = " or ".join(sorted(wanted))
    if seen:
        raise VerificationError(
            "no_match", f"no {names} signature matches", header="webhook-signature"
        )
    if malformed:
        raise VerificationError(
            "malformed_signature",
            "no webhook-signature token is 'version,signature'",
            header="webhook-signature",
        )
    raise VerificationError(
        "unsupported_version",
        f"webhook-signature has no {names} token, only {', '.join(sorted(other))}",
        header="webhook-signature",
    )


def _keys(secret: object) -> tuple[list[bytes], list[bytes]]:
    """The HMAC keys and the ed25519 public keys given to :func:`verify`; bad_secret if any
    is unusable.

    HMAC secrets are read more loosely than for signing: any key of 1 to 512 bytes, as the
    reference verifiers take (the receiver's secret is the sender's choice). A string
    starting with ``whpk_`` is an ed25519 public key (``v1a``).
    """
    if isinstance(secret, str):
        given: list[object] = [secret]
    elif isinstance(secret, Sequence) and not isinstance(secret, (bytes, bytearray)):
        given = list(secret)
    else:
        raise VerificationError(
            "bad_secret",
            f"the secret given to verify must be a string, not {type(secret).__name__}",
        )
    if not given:
        raise VerificationError("bad_secret", "no secret was given to verify")
    hmac_keys: list[bytes] = []
    public_keys: list[bytes] = []
    try:
        for item in given:
            if isinstance(item, str) and item.startswith("whsk_"):
                raise VerificationError(
                    "bad_secret",
                    "verify takes the hook's public key (whpk_...), not its secret key",
                )
            if isinstance(item, str) and item.startswith("whpk_"):
                from . import ed25519  # noqa: PLC0415 - no cryptography unless asked for

                public_keys.append(ed25519.parse_public_key(item, field="secret"))
            else:
                hmac_keys.append(parse_secret(item, min_bytes=1, max_bytes=_MAX_VERIFY_KEY))
    except ValidationError as exc:
        raise VerificationError("bad_secret", f"the secret given to verify {exc.message}") from None
    return hmac_keys, public_keys


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


def _signatures(
    signature: str, wanted: set[str]
) -> tuple[dict[str, list[bytes]], int, int, set[str]]:
    """The decoded signatures of the ``wanted`` versions (``v1``, ``v1a``); how many tokens
    of those versions there were; how many tokens were not ``version,signature``; the other
    versions.

    As the specification says, the receiver tries each signature until one matches: a token
    that cannot be used is skipped, not fatal (a sender may add tokens of its own). A token
    of a wanted version that is not the base64 of a signature simply matches nothing.
    """
    if len(signature) > _MAX_SIGNATURE_HEADER:
        raise VerificationError(
            "malformed_signature", "webhook-signature is too long", header="webhook-signature"
        )
    tokens: dict[str, list[bytes]] = {"v1": [], "v1a": []}
    seen = malformed = 0
    other: set[str] = set()
    for token in signature.split():
        version, comma, encoded = token.partition(",")
        if not comma or not version or not encoded:
            malformed += 1
            continue
        if version not in wanted:
            other.add(version[:20])
            continue
        seen += 1
        try:
            tokens[version].append(base64.b64decode(encoded.encode("ascii"), validate=True))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            continue
    if not seen and not malformed and not other:
        raise VerificationError(
            "malformed_signature", "webhook-signature has no token", header="webhook-signature"
        )
    return tokens, seen, malformed, other
