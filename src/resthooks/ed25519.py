"""Standard Webhooks ``v1a`` signatures: ed25519, with per-hook key pairs.

With ``v1`` the receiver holds the same secret as the sender, so anyone who can verify can
also forge. With ``v1a`` each hook has its own ed25519 key pair: the sender signs with the
secret key (``whsk_...``, never shown), receivers verify with the public key (``whpk_...``),
which may be published: :func:`jwks` builds a JWKS-style document of an owner's keys.

The cryptography is `cryptography <https://cryptography.io>`_'s, an optional dependency:
``pip install 'resthooks[ed25519]'``. This module imports it only when a key is used, so
``import resthooks`` never does.

Key formats: a public key is ``whpk_`` and the base64 of its 32 bytes. A secret key is
``whsk_`` and the base64 of 64 bytes, the 32-byte seed followed by the public key (the form
libsodium and Svix use); the 32-byte seed alone is accepted too.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ConfigurationError, ValidationError
from .signing import signed_content

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "PUBLIC_KEY_PREFIX",
    "SECRET_KEY_PREFIX",
    "KeyPair",
    "available",
    "generate_key_pair",
    "jwks",
    "parse_public_key",
    "parse_secret_key",
    "public_key_of",
    "public_keys_from_jwks",
    "sign_v1a",
    "verify_any",
]

SECRET_KEY_PREFIX = "whsk_"  # noqa: S105 - a prefix, not a secret
PUBLIC_KEY_PREFIX = "whpk_"
_SEED, _PUBLIC, _SIGNATURE = 32, 32, 64


def _backend() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415
    except ImportError:  # pragma: no cover - the tests run with the extra installed
        raise ConfigurationError(
            "v1a (ed25519) signatures need the 'cryptography' package: "
            "pip install 'resthooks[ed25519]'"
        ) from None
    return ed25519


def available() -> bool:
    """Whether the ``ed25519`` extra (the ``cryptography`` package) is installed.

    Example:
        >>> available()
        True
    """
    try:
        _backend()
    except ConfigurationError:  # pragma: no cover
        return False
    return True


@attrs.frozen
class KeyPair:
    """A hook's ed25519 key pair, both halves serialised.

    Attributes:
        secret_key: ``whsk_...``: signs; keep it like a password. Never shown in ``repr``.
        public_key: ``whpk_...``: verifies; give it to the receiver, or publish it.
    """

    secret_key: str = attrs.field(repr=False)
    public_key: str


def _decode(text: str, prefix: str, sizes: tuple[int, ...], field: str, what: str) -> bytes:
    body = text.removeprefix(prefix)
    if len(body) > 100:
        raise ValidationError(field, "is too long")
    try:
        data = body.encode("ascii")
        raw = base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValidationError(field, f"must be '{prefix}' followed by base64") from None
    if len(raw) not in sizes:
        raise ValidationError(field, f"must be {what}, not {len(raw)} bytes")
    return raw


def _private_key(secret_key: object, field: str = "signing_key") -> Ed25519PrivateKey:
    if not isinstance(secret_key, str) or not secret_key.startswith(SECRET_KEY_PREFIX):
        raise ValidationError(field, f"must be a '{SECRET_KEY_PREFIX}' ed25519 secret key")
    raw = _decode(secret_key, SECRET_KEY_PREFIX, (_SEED, _SEED + _PUBLIC), field, "32 or 64 bytes")
    key = _backend().Ed25519PrivateKey.from_private_bytes(raw[:_SEED])
    if len(raw) > _SEED and key.public_key().public_bytes_raw() != raw[_SEED:]:
        raise ValidationError(field, "holds a public half that does not match its seed")
    return key  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=1024)
def _cached_private_key(secret_key: str) -> Ed25519PrivateKey:
    # Every attempt signs: parse each hook's key once.
    return _private_key(secret_key)


def parse_secret_key(secret_key: object, *, field: str = "signing_key") -> None:
    """Check that ``secret_key`` is a usable ``whsk_`` key.

    Raises:
        ValidationError: Naming ``field``; the message never contains the key.
        ConfigurationError: If the ``ed25519`` extra is not installed.
    """
    _private_key(secret_key, field)


def parse_public_key(public_key: object, *, field: str = "public_key") -> bytes:
    """The 32 bytes of a ``whpk_`` public key.

    Raises:
        ValidationError: Naming ``field``.

    Example:
        >>> len(parse_public_key(generate_key_pair().public_key))
        32
    """
    if not isinstance(public_key, str) or not public_key.startswith(PUBLIC_KEY_PREFIX):
        raise ValidationError(field, f"must be a '{PUBLIC_KEY_PREFIX}' ed25519 public key")
    return _decode(public_key, PUBLIC_KEY_PREFIX, (_PUBLIC,), field, "32 bytes")


def _serialise(key: Ed25519PrivateKey) -> KeyPair:
    public = key.public_key().public_bytes_raw()
    secret = base64.b64encode(key.private_bytes_raw() + public).decode("ascii")
    return KeyPair(
        secret_key=SECRET_KEY_PREFIX + secret,
        public_key=PUBLIC_KEY_PREFIX + base64.b64encode(public).decode("ascii"),
    )


def generate_key_pair() -> KeyPair:
    """A new ed25519 key pair from the operating system's randomness.

    Example:
        >>> pair = generate_key_pair()
        >>> pair.secret_key.startswith("whsk_"), pair.public_key.startswith("whpk_")
        (True, True)
        >>> public_key_of(pair.secret_key) == pair.public_key
        True
    """
    return _serialise(_backend().Ed25519PrivateKey.generate())


@functools.lru_cache(maxsize=1024)
def public_key_of(secret_key: str) -> str:
    """The ``whpk_`` public key of a ``whsk_`` secret key.

    Raises:
        ValidationError: Naming ``signing_key``, if it is not such a key.
    """
    return _serialise(_private_key(secret_key)).public_key


def sign_v1a(secret_key: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1a,<base64>`` signature token of one request: ed25519 over the same content as
    ``v1`` (:func:`~resthooks.signing.signed_content`).

    Raises:
        ValidationError: Naming ``signing_key``, ``msg_id``, ``timestamp`` or ``body``.

    Example:
        >>> from resthooks import verify
        >>> pair = generate_key_pair()
        >>> token = sign_v1a(pair.secret_key, "msg_1", 1614265330, b"{}")
        >>> headers = {"webhook-id": "msg_1", "webhook-timestamp": "1614265330",
        ...            "webhook-signature": token}
        >>> verify(b"{}", headers, pair.public_key, now=1614265330)
    """
    key = (
        _cached_private_key(secret_key) if isinstance(secret_key, str) else _private_key(secret_key)
    )
    signature = key.sign(signed_content(msg_id, timestamp, body))
    return "v1a," + base64.b64encode(signature).decode("ascii")


def verify_any(public_keys: Iterable[bytes], content: bytes, signatures: Iterable[bytes]) -> bool:
    """Whether any of ``signatures`` (raw 64 bytes each) verifies ``content`` under any of
    ``public_keys`` (raw 32 bytes each). :func:`resthooks.verify` calls it for ``v1a``
    tokens; signatures of another length are skipped.

    Example:
        >>> pair = generate_key_pair()
        >>> token = sign_v1a(pair.secret_key, "msg_1", 0, b"{}")
        >>> verify_any([parse_public_key(pair.public_key)], b"msg_1.0.{}",
        ...            [base64.b64decode(token[4:])])
        True
    """
    backend = _backend()
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 - optional

    candidates = [s for s in signatures if len(s) == _SIGNATURE]
    for raw in public_keys:
        key = backend.Ed25519PublicKey.from_public_bytes(raw)
        for signature in candidates:
            try:
                key.verify(signature, content)
            except InvalidSignature:
                continue
            return True
    return False


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def jwks(public_keys: Mapping[str, str]) -> dict[str, Any]:
    """A JWKS-style document (RFC 7517, OKP keys of RFC 8037) of ``{key id: whpk_ key}``.

    Serve it (say at ``/.well-known/webhook-keys.json``) so that receivers can fetch the
    public keys of their hooks instead of copying them;
    :meth:`Dispatcher.public_keys <resthooks.Dispatcher.public_keys>` builds the ``{hook id:
    key}`` mapping of an owner. Each key carries ``kid`` (the hook id), ``kty`` ``OKP``,
    ``crv`` ``Ed25519``, ``x`` (the key, base64url), ``use`` ``sig`` and ``alg`` ``EdDSA``.

    Example:
        >>> key = "whpk_" + "A" * 43 + "="
        >>> jwks({"hook_1": key})["keys"][0]["x"]
        'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
    """
    return {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": _b64url(parse_public_key(key)),
                "kid": kid,
                "use": "sig",
                "alg": "EdDSA",
            }
            for kid, key in public_keys.items()
        ]
    }


def public_keys_from_jwks(document: object) -> dict[str, str]:
    """``{kid: whpk_ key}`` from a JWKS document: the receiving side of :func:`jwks`.

    Keys that are not ed25519 signing keys are skipped.

    Raises:
        ValidationError: Naming ``jwks``, if the document is not ``{"keys": [...]}`` or an
            ed25519 key is malformed.

    Example:
        >>> public_keys_from_jwks(jwks({"hook_1": "whpk_" + "A" * 43 + "="}))
        {'hook_1': 'whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='}
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValidationError("jwks", 'must be a JSON object {"keys": [...]}')
    found: dict[str, str] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping):
            raise ValidationError("jwks", "every key must be a JSON object")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        if entry.get("use", "sig") != "sig":
            continue
        x, kid = entry.get("x"), entry.get("kid", "")
        if not isinstance(x, str) or not isinstance(kid, str):
            raise ValidationError("jwks", "an Ed25519 key needs a string 'x' (and 'kid')")
        try:
            raw = base64.urlsafe_b64decode(x.encode("ascii") + b"=" * (-len(x) % 4))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise ValidationError("jwks", "an Ed25519 key's 'x' is not base64url") from None
        if len(raw) != _PUBLIC:
            raise ValidationError("jwks", "an Ed25519 key's 'x' is not 32 bytes")
        found[kid] = PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")
    return found
