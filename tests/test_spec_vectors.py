"""The Standard Webhooks reference libraries' own test suites, ported: resthooks agrees.

Each case below is a test of the specification repository's libraries (Python, JavaScript,
Go, Rust, PHP, Java), with its inputs and expected result unchanged: "ok" where the reference
verifier accepts, "error" where it refuses (our verify raises a VerificationError), or the
exact signature where it signs. Only the clock is fixed: where a reference test reads the
system time, the port reads ``NOW`` (with a fractional second, as a real clock has).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from resthooks import ValidationError, VerificationError, sign, verify

NOW = 1_733_100_000.437  # the port's "time.Now()"
TOLERANCE = 5 * 60

# Python, JavaScript, Go, PHP and Java share these.
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
PAYLOAD = b'{"test": 2432232314}'
SECRET = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# Rust's.
RUST_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
RUST_ID = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"
RUST_PAYLOAD = b'{"email":"test@example.com","username":"test_user"}'
# PHP's TestPayload signs a payload of its own.
PHP_PAYLOAD = b'{"test": 2432232315}'

WRONG = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="


def _signature(secret: str, msg_id: str, timestamp: int, payload: bytes) -> str:
    """What the reference tests compute by hand: base64(HMAC-SHA256(b64decode(secret), ...))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass
class Case:
    """One reference test: a request built like the reference's test payload, then changed."""

    name: str
    expected: str  # "ok" or "error"
    secret: object = SECRET
    signing_secret: str | None = None  # when the test signs with another spelling
    msg_id: str = MSG_ID
    payload: bytes = PAYLOAD
    offset: float = 0.0  # seconds from NOW of the payload's timestamp
    change: Callable[[dict[str, str]], None] | None = None
    ignore_timestamp: bool = False  # Go's VerifyIgnoringTimestamp
    headers: dict[str, str] = field(default_factory=dict)

    def build(self) -> dict[str, str]:
        timestamp = math.floor(NOW + self.offset)
        usable = isinstance(self.secret, str) and self.secret.removeprefix("whsec_")
        # The empty-secret cases refuse the secret itself: sign their request with the default.
        secret = self.signing_secret or (str(self.secret) if usable else SECRET)
        headers = {
            "webhook-id": self.msg_id,
            "webhook-signature": _signature(secret, self.msg_id, timestamp, self.payload),
            "webhook-timestamp": str(timestamp),
        }
        if self.change is not None:
            self.change(headers)
        return headers


def _drop(*names: str) -> Callable[[dict[str, str]], None]:
    def change(headers: dict[str, str]) -> None:
        for name in names:
            del headers[name]

    return change


def _signature_is(value: str | Callable[[str], str]) -> Callable[[dict[str, str]], None]:
    def change(headers: dict[str, str]) -> None:
        old = headers["webhook-signature"]
        headers["webhook-signature"] = value(old) if callable(value) else value

    return change


def _timestamp_is(value: str) -> Callable[[dict[str, str]], None]:
    def change(headers: dict[str, str]) -> None:
        headers["webhook-timestamp"] = value

    return change


def _multi(valid: str) -> str:
    return " ".join([WRONG, "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", valid, WRONG])


def _rust_multi(valid: str) -> str:
    return " ".join(
        [
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=",
            "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
            valid,
            "v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
        ]
    )


def _mixed_case(headers: dict[str, str]) -> None:
    values = dict(headers)
    headers.clear()
    headers["Webhook-Id"] = values["webhook-id"]
    headers["WEBHOOK-TIMESTAMP"] = values["webhook-timestamp"]
    headers["webhook-SIGNATURE"] = values["webhook-signature"]


RUST = {"secret": RUST_SECRET, "msg_id": RUST_ID, "payload": RUST_PAYLOAD}

CASES = [
    # libraries/python/tests/test_webhooks.py
    Case("python: missing id raises error", "error", change=_drop("webhook-id")),
    Case("python: timestamp raises error", "error", change=_drop("webhook-timestamp")),
    Case("python: invalid timestamp raises error", "error", change=_timestamp_is("hello")),
    Case("python: missing signature raises error", "error", change=_drop("webhook-signature")),
    Case(
        "python: invalid signature raises error",
        "error",
        change=_signature_is("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
    ),
    Case("python: valid signature is valid", "ok"),
    Case("python: valid unbranded signature is valid", "ok"),
    Case("python: old timestamp fails", "error", offset=-TOLERANCE - 1),
    Case("python: new timestamp fails", "error", offset=TOLERANCE + 1),
    Case("python: multi sig payload is valid", "ok", change=_signature_is(_multi)),
    Case("python: verification without prefix", "ok"),
    Case("python: verification with prefix", "ok", secret="whsec_" + SECRET),
    Case("python: unpadded secret, no padding needed", "ok"),
    Case(
        "python: unpadded secret, one padding",
        "ok",
        secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
        signing_secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS=",
    ),
    Case(
        "python: unpadded secret, two padding",
        "ok",
        secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
        signing_secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr==",
    ),
    Case(
        "python: unpadded secret, two padding, with prefix",
        "ok",
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
        signing_secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr==",
    ),
    Case("python: empty secret raises error ('')", "error", secret=""),
    Case("python: empty secret raises error (b'')", "error", secret=b""),
    Case("python: empty secret raises error ('whsec_')", "error", secret="whsec_"),
    # libraries/javascript/src/webhook.test.ts
    Case("js: empty key raises error ('')", "error", secret=""),
    Case("js: empty key raises error (undefined)", "error", secret=None),
    Case("js: empty key raises error (null)", "error", secret=None),
    Case("js: empty key raises error ('whsec_')", "error", secret="whsec_"),
    Case("js: missing id raises error", "error", change=_drop("webhook-id")),
    Case("js: missing timestamp raises error", "error", change=_drop("webhook-timestamp")),
    Case("js: invalid timestamp throws error", "error", change=_timestamp_is("hello")),
    Case("js: missing signature raises error", "error", change=_drop("webhook-signature")),
    Case(
        "js: invalid signature throws error",
        "error",
        change=_signature_is("v1,dawfeoifkpqwoekfpqoekf"),
    ),
    Case(
        "js: partial signature throws error (8 chars)",
        "error",
        change=_signature_is(lambda s: s[:8]),
    ),
    Case("js: partial signature throws error ('v1,')", "error", change=_signature_is("v1,")),
    Case("js: valid signature is valid", "ok"),
    Case("js: valid unbranded signature is valid", "ok"),
    Case("js: old timestamp fails", "error", offset=-TOLERANCE - 1),
    Case("js: new timestamp fails", "error", offset=TOLERANCE + 1),
    Case("js: multi sig payload is valid", "ok", change=_signature_is(_multi)),
    Case("js: verification works without prefix", "ok"),
    Case("js: verification works with prefix", "ok", secret="whsec_" + SECRET),
    Case("js: empty payload returns undefined", "ok", payload=b""),
    # libraries/go/webhook_test.go
    Case("go: valid signature is valid", "ok"),
    Case("go: missing id returns error", "error", change=_drop("webhook-id")),
    Case("go: missing timestamp returns error", "error", change=_drop("webhook-timestamp")),
    Case("go: missing signature returns error", "error", change=_drop("webhook-signature")),
    Case("go: invalid signature is invalid", "error", change=_signature_is(WRONG)),
    Case("go: partial signature is invalid", "error", change=_signature_is("v1,")),
    Case("go: old timestamp fails", "error", offset=-TOLERANCE),
    Case("go: new timestamp fails", "error", offset=TOLERANCE + 1),
    Case("go: valid multi sig is valid", "ok", change=_signature_is(_multi)),
    Case(
        "go: old timestamp passes when ignoring tolerance",
        "ok",
        offset=-TOLERANCE,
        ignore_timestamp=True,
    ),
    Case(
        "go: new timestamp passes when ignoring tolerance",
        "ok",
        offset=TOLERANCE,
        ignore_timestamp=True,
    ),
    Case("go: valid timestamp passes when ignoring tolerance", "ok", ignore_timestamp=True),
    Case(
        "go: invalid timestamp fails when ignoring tolerance",
        "error",
        change=_timestamp_is("946684800"),  # 2000-01-01T00:00:00Z
        ignore_timestamp=True,
    ),
    Case("go: prefix, without", "ok"),
    Case("go: prefix, with", "ok", secret="whsec_" + SECRET),
    Case("go: no empty secrets", "error", secret=""),
    Case("go: no empty prefixed secrets", "error", secret="whsec_"),
    Case("go: raw, no empty secrets", "error", secret=b""),
    # libraries/rust/src/lib.rs
    Case("rust: verify", "ok", **RUST),  # type: ignore[arg-type]
    Case(
        "rust: no verify",
        "error",
        change=_signature_is("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU="),
        **RUST,  # type: ignore[arg-type]
    ),
    Case(
        "rust: partial signature ('v1,')",
        "error",
        change=_signature_is(lambda s: s.split(",")[0] + ","),
        **RUST,  # type: ignore[arg-type]
    ),
    Case(
        "rust: partial signature (first 8 bytes)",
        "error",
        change=_signature_is(lambda s: s[:8]),
        **RUST,  # type: ignore[arg-type]
    ),
    Case("rust: incorrect timestamp (old)", "error", offset=-(TOLERANCE + 1), **RUST),  # type: ignore[arg-type]
    Case("rust: incorrect timestamp (new)", "error", offset=TOLERANCE + 1, **RUST),  # type: ignore[arg-type]
    Case(
        "rust: verify with multiple signatures",
        "ok",
        change=_signature_is(_rust_multi),
        **RUST,  # type: ignore[arg-type]
    ),
    Case(
        "rust: no verify with multiple signatures",
        "error",
        change=_signature_is(_rust_multi("")),
        **RUST,  # type: ignore[arg-type]
    ),
    Case("rust: missing webhook-id", "error", change=_drop("webhook-id"), **RUST),  # type: ignore[arg-type]
    Case(
        "rust: missing webhook-id, webhook-signature",
        "error",
        change=_drop("webhook-id", "webhook-signature"),
        **RUST,  # type: ignore[arg-type]
    ),
    Case(
        "rust: missing all three headers",
        "error",
        change=_drop("webhook-id", "webhook-signature", "webhook-timestamp"),
        **RUST,  # type: ignore[arg-type]
    ),
    # libraries/php/tests/WebhookTest.php
    Case("php: valid signature is valid and returns json", "ok", payload=PHP_PAYLOAD),
    Case("php: valid brandless signature", "ok", payload=PHP_PAYLOAD),
    Case(
        "php: invalid signature throws",
        "error",
        payload=PHP_PAYLOAD,
        change=_signature_is("v1,dawfeoifkpqwoekfpqoekf"),
    ),
    Case("php: missing id throws", "error", payload=PHP_PAYLOAD, change=_drop("webhook-id")),
    Case(
        "php: missing timestamp throws",
        "error",
        payload=PHP_PAYLOAD,
        change=_drop("webhook-timestamp"),
    ),
    Case(
        "php: missing signature throws",
        "error",
        payload=PHP_PAYLOAD,
        change=_drop("webhook-signature"),
    ),
    Case("php: old timestamp throws", "error", payload=PHP_PAYLOAD, offset=-TOLERANCE - 1),
    Case("php: new timestamp throws", "error", payload=PHP_PAYLOAD, offset=TOLERANCE + 1),
    Case(
        "php: multi sig payload is valid", "ok", payload=PHP_PAYLOAD, change=_signature_is(_multi)
    ),
    Case("php: verification without prefix", "ok", payload=PHP_PAYLOAD),
    Case("php: verification with prefix", "ok", payload=PHP_PAYLOAD, secret="whsec_" + SECRET),
    Case("php: rejects empty secret", "error", secret=""),
    Case("php: rejects empty prefixed secret", "error", secret="whsec_"),
    # libraries/java/src/test/java/com/standardwebhooks/WebhookTest.java (TestScenario)
    Case("java: valid payload and headers", "ok"),
    Case("java: multiple signatures is valid", "ok", change=_signature_is(_multi)),
    Case("java: missing id throws", "error", change=_drop("webhook-id")),
    Case("java: missing timestamp throws", "error", change=_drop("webhook-timestamp")),
    Case("java: missing signature throws", "error", change=_drop("webhook-signature")),
    Case(
        "java: signature with different version throws",
        "error",
        change=_signature_is("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    ),
    Case(
        "java: missing parts in signature throws",
        "error",
        change=_signature_is("invalid_signature"),
    ),
    Case(
        "java: signature mismatch throws",
        "error",
        change=_signature_is("v1,invalid_signature"),
    ),
    Case("java: old timestamp throws", "error", offset=-(TOLERANCE + 1)),
    Case("java: new timestamp throws", "error", offset=TOLERANCE + 1),
    Case("java: secret works without prefix", "ok"),
    Case("java: secret works with prefix", "ok", secret="whsec_" + SECRET),
    Case("java: case-insensitive headers", "ok", change=_mixed_case),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reference_verification_case(case: Case) -> None:
    """resthooks' verify accepts what the reference accepts and refuses what it refuses."""
    headers = case.build()
    tolerance = float("inf") if case.ignore_timestamp else TOLERANCE
    if case.expected == "ok":
        verify(case.payload, headers, case.secret, now=NOW, tolerance=tolerance)  # type: ignore[arg-type]
    else:
        with pytest.raises(VerificationError):
            verify(case.payload, headers, case.secret, now=NOW, tolerance=tolerance)  # type: ignore[arg-type]


def test_php_returns_the_json_it_verified() -> None:
    """PHP's test reads the verified payload back: 2432232315."""
    case = Case("php", "ok", payload=PHP_PAYLOAD)
    verify(case.payload, case.build(), SECRET, now=NOW)
    assert json.loads(case.payload)["test"] == 2432232315


SIGNATURES = [
    # python, js, go, php, java: the specification's vector
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    # rust: test_sign
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        b'{"email":"test@example.com","username":"test_user"}',
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ),
]


@pytest.mark.parametrize(("secret", "msg_id", "timestamp", "body", "expected"), SIGNATURES)
def test_reference_sign_case(
    secret: str, msg_id: str, timestamp: int, body: bytes, expected: str
) -> None:
    """sign() gives the reference libraries' signatures, byte for byte."""
    assert expected == sign(secret, msg_id, timestamp, body)
    verify(
        body,
        {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": expected},
        secret,
        now=timestamp,
    )


@pytest.mark.parametrize("timestamp", ["161426533.0", "invalid timestamp", "-161426533"])
def test_php_sign_refuses_bad_timestamps(timestamp: str) -> None:
    """PHP's testInvalid{Float,String,Negative}Timestamp: signing refuses them."""
    with pytest.raises(ValidationError) as info:
        sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", MSG_ID, timestamp, PAYLOAD)  # type: ignore[arg-type]
    assert info.value.field == "timestamp"
