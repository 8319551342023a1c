"""Standard Webhooks v1a: ed25519 key pairs per hook, checked against PyNaCl (libsodium)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import nacl.exceptions
import nacl.signing
import pytest

from resthooks import ConfigurationError, Dispatcher, VerificationError, verify
from resthooks.api import SubscriptionAPI
from resthooks.ed25519 import (
    generate_key_pair,
    jwks,
    parse_public_key,
    public_key_of,
    public_keys_from_jwks,
    sign_v1a,
)
from resthooks.errors import ValidationError
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock, RecordingTransport

MSG_ID, TS, BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
CONTENT = f"{MSG_ID}.{TS}.".encode() + BODY


def _headers(signature: str) -> dict[str, str]:
    return {"webhook-id": MSG_ID, "webhook-timestamp": str(TS), "webhook-signature": signature}


def _raw(key: str) -> bytes:
    return base64.b64decode(key.split("_", 1)[1])


# -- key formats -------------------------------------------------------------------------------


def test_key_pair_formats() -> None:
    """whsk_ is the 64-byte seed + public key, whpk_ the 32-byte public key, as libsodium has."""
    pair = generate_key_pair()
    secret, public = _raw(pair.secret_key), _raw(pair.public_key)
    assert (len(secret), len(public)) == (64, 32)
    assert secret[32:] == public
    nacl_key = nacl.signing.SigningKey(secret[:32])
    assert bytes(nacl_key.verify_key) == public
    assert nacl_key._signing_key == secret  # libsodium's own 64-byte secret key form
    assert pair.secret_key not in repr(pair)


# -- interop, both ways ------------------------------------------------------------------------


def test_our_signature_verifies_with_pynacl() -> None:
    """A v1a token from sign_v1a verifies under PyNaCl with the whpk_ key."""
    pair = generate_key_pair()
    token = sign_v1a(pair.secret_key, MSG_ID, TS, BODY)
    version, _, signature = token.partition(",")
    assert version == "v1a"
    nacl.signing.VerifyKey(_raw(pair.public_key)).verify(CONTENT, base64.b64decode(signature))
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(_raw(pair.public_key)).verify(
            CONTENT + b" ", base64.b64decode(signature)
        )


def test_pynacl_signature_verifies_with_ours() -> None:
    """A request signed by PyNaCl passes verify() given the public key; a forged one fails."""
    nacl_key = nacl.signing.SigningKey.generate()
    public = "whpk_" + base64.b64encode(bytes(nacl_key.verify_key)).decode()
    signature = base64.b64encode(nacl_key.sign(CONTENT).signature).decode()
    verify(BODY, _headers(f"v1a,{signature}"), public, now=TS)
    with pytest.raises(VerificationError) as info:
        verify(BODY + b" ", _headers(f"v1a,{signature}"), public, now=TS)
    assert info.value.reason == "no_match"


@pytest.mark.parametrize("form", ["seed", "libsodium"])
def test_pynacl_secret_keys_sign_like_pynacl(form: str) -> None:
    """A PyNaCl key, as its 32-byte seed or libsodium's 64 bytes, signs exactly as PyNaCl
    does (ed25519 is deterministic) and its public key is PyNaCl's."""
    nacl_key = nacl.signing.SigningKey.generate()
    raw = bytes(nacl_key) if form == "seed" else nacl_key._signing_key
    secret = "whsk_" + base64.b64encode(raw).decode()
    expected = "v1a," + base64.b64encode(nacl_key.sign(CONTENT).signature).decode()
    assert expected == sign_v1a(secret, MSG_ID, TS, BODY)
    assert public_key_of(secret) == "whpk_" + base64.b64encode(bytes(nacl_key.verify_key)).decode()


def test_a_secret_key_whose_halves_disagree_is_refused() -> None:
    """64 bytes whose public half is not the seed's public key: a ValidationError, no key."""
    a, b = _raw(generate_key_pair().secret_key), _raw(generate_key_pair().secret_key)
    mixed = "whsk_" + base64.b64encode(a[:32] + b[32:]).decode()
    with pytest.raises(ValidationError) as info:
        sign_v1a(mixed, MSG_ID, TS, BODY)
    assert info.value.field == "signing_key"
    assert base64.b64encode(a).decode()[:20] not in str(info.value)


# -- verify ----------------------------------------------------------------------------------


def test_verify_mixes_v1_and_v1a_keys_and_skips_the_other_version() -> None:
    """With a public key, a v1 token beside the v1a one is skipped, and either key list works."""
    pair = generate_key_pair()
    both = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= " + sign_v1a(
        pair.secret_key, MSG_ID, TS, BODY
    )
    verify(BODY, _headers(both), pair.public_key, now=TS)
    verify(BODY, _headers(both), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now=TS)
    verify(BODY, _headers(both), [generate_key_pair().public_key, pair.public_key], now=TS)


@pytest.mark.parametrize(
    ("signature", "secret", "reason"),
    [
        ("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "public", "unsupported_version"),
        ("v1a,AAAA", "public", "no_match"),
        ("v1a," + base64.b64encode(b"\0" * 64).decode(), "public", "no_match"),
        ("v1a,x", "whsk", "bad_secret"),
        ("v1a,x", "whpk_short", "bad_secret"),
        ("v1a,x", "whpk_!!!", "bad_secret"),
    ],
)
def test_v1a_refusals(signature: str, secret: str, reason: str) -> None:
    """Each way a v1a request or key is wrong has its reason (a secret key is not a verifier)."""
    pair = generate_key_pair()
    key = {"public": pair.public_key, "whsk": pair.secret_key}.get(secret, secret)
    with pytest.raises(VerificationError) as info:
        verify(BODY, _headers(signature), key, now=TS)
    assert info.value.reason == reason
    assert pair.secret_key.removeprefix("whsk_")[:20] not in str(info.value)


# -- the Dispatcher and the API ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("versions", "tokens"), [({"v1a"}, ["v1a"]), ({"v1", "v1a"}, ["v1", "v1a"])]
)
def test_hooks_sign_with_their_key_pair(versions: set[str], tokens: list[str]) -> None:
    """With v1a on, each hook gets its own key pair; requests carry the chosen signatures, and
    the receiver verifies with the public key the API showed (never the secret key)."""
    transport = RecordingTransport()
    dispatcher = Dispatcher(
        MemoryStore(), clock=FakeClock(), transport=transport, signature_versions=versions
    )
    api = SubscriptionAPI(dispatcher)
    created = api.create(
        {"restHook": {"targetUrl": "https://example.com/h", "event": "party/created"}},
        owner="acme",
    )
    assert created.status == 201
    assert created.body is not None
    document = created.body["restHook"]
    hook = dispatcher.get_hook(document["id"], owner="acme")
    assert hook.signing_key is not None
    assert "whsk_" not in created.content.decode()
    assert document["publicKey"] == public_key_of(hook.signing_key)
    assert ("secret" in document) == ("v1" in versions)
    other = dispatcher.subscribe("party/created", "https://example.com/h2", owner="acme")
    assert other.signing_key != hook.signing_key
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    request = next(r for r in transport.requests if r.url == "https://example.com/h")
    signature = request.headers["webhook-signature"]
    assert [t.partition(",")[0] for t in signature.split()] == tokens
    now = dispatcher.clock.now()
    verify(request.body, request.headers, document["publicKey"], now=now)
    with pytest.raises(VerificationError):
        verify(request.body, request.headers, public_key_of(other.signing_key or ""), now=now)


def test_jwks_document_of_an_owner(tmp_path: object) -> None:
    """The API serves the owner's public keys as JWKS (kid = hook id); a receiver reads them
    back and verifies with them. Other owners' keys are not in it. The key lives in SQLite."""
    store = SQLiteStore(f"{tmp_path}/keys.db")
    transport = RecordingTransport()
    dispatcher = Dispatcher(
        store, clock=FakeClock(), transport=transport, signature_versions={"v1a"}
    )
    mine = dispatcher.subscribe("party/created", "https://example.com/a", owner="acme")
    dispatcher.subscribe("party/created", "https://example.com/b", owner="other")
    answer = SubscriptionAPI(dispatcher).public_keys(owner="acme")
    assert answer.status == 200
    document = json.loads(answer.content)
    (entry,) = document["keys"]
    assert (entry["kid"], entry["kty"], entry["crv"], entry["alg"]) == (
        mine.id,
        "OKP",
        "Ed25519",
        "EdDSA",
    )
    keys = public_keys_from_jwks(document)
    assert keys == {mine.id: public_key_of(mine.signing_key or "")}
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    (request,) = transport.requests
    verify(request.body, request.headers, list(keys.values()), now=dispatcher.clock.now())
    store.close()


def test_jwks_round_trip_and_bad_documents() -> None:
    """jwks() and public_keys_from_jwks() are inverses; other key types are skipped."""
    pair = generate_key_pair()
    document = jwks({"hook_1": pair.public_key})
    document["keys"].append({"kty": "RSA", "n": "x", "e": "AQAB"})
    assert public_keys_from_jwks(document) == {"hook_1": pair.public_key}
    assert parse_public_key(pair.public_key) == _raw(pair.public_key)
    for bad in (
        None,
        [],
        {"keys": "x"},
        {"keys": [1]},
        {"keys": [{"kty": "OKP", "crv": "Ed25519"}]},
    ):
        with pytest.raises(ValidationError):
            public_keys_from_jwks(bad)


@pytest.mark.parametrize("versions", [(), ("v2",), "v1", ["v1", "v1b"]])
def test_bad_signature_versions_are_a_configuration_error(versions: object) -> None:
    """Only 'v1', 'v1a' or both."""
    with pytest.raises(ConfigurationError):
        Dispatcher(MemoryStore(), signature_versions=versions)  # type: ignore[arg-type]


def test_a_bad_signing_key_at_subscribe_names_the_field() -> None:
    """subscribe(signing_key=...) validates the key; nothing is stored."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
    with pytest.raises(ValidationError) as info:
        dispatcher.subscribe("party/created", "https://e.com/", owner="a", signing_key="whsk_x")
    assert info.value.field == "signing_key"
    assert dispatcher.hooks(owner="a") == []


def test_core_import_does_not_import_cryptography() -> None:
    """import resthooks (and v1 signing and verifying) leaves cryptography and nacl unimported."""
    code = (
        "import sys, resthooks, resthooks.api, resthooks.ed25519, resthooks.stores\n"
        "import resthooks.testing\n"
        "from resthooks import Dispatcher, sign, verify\n"
        "from resthooks.stores import MemoryStore\n"
        "from resthooks.testing import FakeClock, RecordingTransport\n"
        "d = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())\n"
        "d.subscribe('party/created', 'https://example.com/h', owner='a')\n"
        "d.emit('party/created', {}, owner='a'); d.deliver_due()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('cryptography', 'nacl'))\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
