"""Signed deliveries, secret rotation, and verify() for receivers (Standard Webhooks v1)."""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook

from resthooks import (
    Dispatcher,
    HookNotFound,
    NetworkPolicy,
    TransportError,
    ValidationError,
    VerificationError,
    generate_secret,
    sign,
    verify,
)
from resthooks.model import Hook
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport
from resthooks.transports import Request, Timeouts, Urllib3Transport

LOOPBACK = NetworkPolicy(allow_networks=["127.0.0.0/8", "::1/128"])

# The specification's published test vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SPEC_HEADERS = {
    "webhook-id": SPEC_ID,
    "webhook-timestamp": str(SPEC_TS),
    "webhook-signature": SPEC_SIGNATURE,
}


def _secret_of(size: int) -> str:
    return "whsec_" + base64.b64encode(bytes(i % 256 for i in range(size))).decode()


# -- the test vector -------------------------------------------------------------------------


def test_spec_vector_signs_and_verifies() -> None:
    """sign() reproduces the spec's signature and verify() accepts the spec's request."""
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET, now=SPEC_TS)


# -- verify: accepting -----------------------------------------------------------------------


def test_header_names_are_case_insensitive() -> None:
    """Header names in any case are found."""
    headers = {k.title(): v for k, v in SPEC_HEADERS.items()}
    headers["WEBHOOK-SIGNATURE"] = headers.pop("Webhook-Signature")
    verify(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TS)


def test_any_matching_v1_token_accepts() -> None:
    """A header with unknown versions and wrong v1 tokens is accepted if one v1 token matches."""
    wrong = sign(generate_secret(), SPEC_ID, SPEC_TS, SPEC_BODY)
    headers = {**SPEC_HEADERS, "webhook-signature": f"v2,abc {wrong} {SPEC_SIGNATURE}"}
    verify(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TS)


@pytest.mark.parametrize(
    "noise", ["v1,not-base64!", "garbage", "v1,aGVsbG8=", ",", "v1a,", "v1," + "A" * 100]
)
def test_a_malformed_token_beside_a_valid_one_does_not_sink_the_request(noise: str) -> None:
    """As the spec says, each signature is tried: unusable tokens are skipped, either side."""
    for signature in (f"{noise} {SPEC_SIGNATURE}", f"{SPEC_SIGNATURE} {noise}"):
        verify(SPEC_BODY, {**SPEC_HEADERS, "webhook-signature": signature}, SPEC_SECRET,
               now=SPEC_TS)  # fmt: skip


def test_any_of_several_secrets_accepts() -> None:
    """A receiver rotating on its side passes both secrets; either matches."""
    verify(SPEC_BODY, SPEC_HEADERS, [generate_secret(), SPEC_SECRET], now=SPEC_TS)


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_timestamp_at_the_tolerance_edge_is_accepted(offset: int) -> None:
    """Exactly `tolerance` seconds either way is still accepted."""
    verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET, now=SPEC_TS + offset)


def test_tolerance_is_configurable() -> None:
    """A larger tolerance accepts an older request; a datetime `now` works too."""
    later = datetime.fromtimestamp(SPEC_TS + 3600, tz=timezone.utc)
    verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET, now=later, tolerance=timedelta(hours=2))
    with pytest.raises(VerificationError) as info:
        verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET, now=later)
    assert info.value.reason == "timestamp_too_old"


# -- verify: refusing, each with its reason --------------------------------------------------


def _with(**changes: str | None) -> dict[str, str]:
    headers = dict(SPEC_HEADERS)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            del headers[key]
        else:
            headers[key] = value
    return headers


REFUSALS = [
    (_with(webhook_id=None), "missing_header"),
    (_with(webhook_timestamp=None), "missing_header"),
    (_with(webhook_signature=None), "missing_header"),
    (_with(webhook_id=""), "missing_header"),
    ({}, "missing_header"),
    (_with(webhook_timestamp="abc"), "malformed_timestamp"),
    (_with(webhook_timestamp="-1614265330"), "malformed_timestamp"),
    (_with(webhook_timestamp="1614265330.5"), "malformed_timestamp"),
    (_with(webhook_timestamp=" 1614265330"), "malformed_timestamp"),
    (_with(webhook_timestamp="1_614_265_330"), "malformed_timestamp"),
    (_with(webhook_timestamp="١٦١٤٢٦٥٣٣٠"), "malformed_timestamp"),
    (_with(webhook_timestamp="9" * 400), "malformed_timestamp"),
    (_with(webhook_timestamp=str(SPEC_TS - 301)), "timestamp_too_old"),
    (_with(webhook_timestamp=str(SPEC_TS + 301)), "timestamp_too_new"),
    (
        _with(webhook_signature="g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        "malformed_signature",
    ),
    (_with(webhook_signature="v1,"), "malformed_signature"),
    (_with(webhook_signature=",abc"), "malformed_signature"),
    (_with(webhook_signature="v1,not base64!"), "no_match"),
    (_with(webhook_signature="v1,aGVsbG8="), "no_match"),
    (_with(webhook_signature="v1,dawfeoifkpqwoekfpqoekf"), "no_match"),
    (_with(webhook_signature="invalid_signature"), "malformed_signature"),
    (_with(webhook_signature="   "), "malformed_signature"),
    (_with(webhook_signature="v1," + "A" * 9000), "malformed_signature"),
    (
        _with(webhook_signature="v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        "unsupported_version",
    ),
    (_with(webhook_signature="v1a,abc v0,xyz"), "unsupported_version"),
    (_with(webhook_id="msg_other"), "no_match"),
    (_with(webhook_signature="v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), "no_match"),
]


@pytest.mark.parametrize(("headers", "reason"), REFUSALS)
def test_each_refusal_has_its_reason(headers: dict[str, str], reason: str) -> None:
    """Each way a request can be wrong raises VerificationError with its own reason."""
    with pytest.raises(VerificationError) as info:
        verify(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TS)
    assert info.value.reason == reason
    assert not isinstance(info.value, (ValueError, KeyError))


def test_altered_body_and_wrong_secret_do_not_match() -> None:
    """A changed body or another secret is `no_match`."""
    for body, secret in ((b'{"test": 1}', SPEC_SECRET), (SPEC_BODY, generate_secret())):
        with pytest.raises(VerificationError) as info:
            verify(body, SPEC_HEADERS, secret, now=SPEC_TS)
        assert info.value.reason == "no_match"


@pytest.mark.parametrize(
    "secret", ["whsec_short", "whsec_***", "", "whsec_", [], None, 42, [None], _secret_of(513)]
)
def test_bad_secret_is_its_own_reason(secret: str) -> None:
    """A secret that is not 1-512 bytes of base64 (None too) is `bad_secret`, not a TypeError."""
    with pytest.raises(VerificationError) as info:
        verify(SPEC_BODY, SPEC_HEADERS, secret, now=SPEC_TS)
    assert info.value.reason == "bad_secret"


def test_conflicting_duplicate_headers_are_refused() -> None:
    """The same header twice (in different case) with different values is ambiguous."""
    headers = {**SPEC_HEADERS, "Webhook-Id": "msg_other"}
    with pytest.raises(VerificationError) as info:
        verify(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TS)
    assert info.value.reason == "ambiguous_header"


def test_errors_never_contain_secret_or_signature() -> None:
    """Messages of verification errors quote neither the secret nor a signature."""
    wrong = generate_secret()
    with pytest.raises(VerificationError) as info:
        verify(SPEC_BODY, SPEC_HEADERS, wrong, now=SPEC_TS)
    text = str(info.value)
    assert wrong.removeprefix("whsec_") not in text
    assert SPEC_SIGNATURE.partition(",")[2] not in text


@given(
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "x"]),
        st.text(max_size=80),
    ),
    body=st.binary(max_size=64),
)
def test_arbitrary_input_raises_only_verification_error(
    headers: dict[str, str], body: bytes
) -> None:
    """Whatever the headers and body, verify raises VerificationError or nothing else."""
    try:
        verify(body, headers, SPEC_SECRET, now=SPEC_TS)
    except VerificationError as err:
        reason = err.reason
    else:
        reason = "accepted"
    assert reason in {r for _, r in REFUSALS} | {"ambiguous_header", "accepted"}


# -- interop with the standardwebhooks package -----------------------------------------------


def test_verify_accepts_what_standardwebhooks_signs() -> None:
    """A request signed by the reference library passes our verify()."""
    secret = generate_secret()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    body = '{"event":"party/created","payload":[{"id":1}]}'
    signature = Webhook(secret).sign("msg_123", now, body)
    headers = {
        "webhook-id": "msg_123",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    verify(body.encode(), headers, secret, now=now)


def test_standardwebhooks_verifies_our_requests(
    httpserver: HTTPServer, loopback_policy: NetworkPolicy
) -> None:
    """Requests sent over HTTP by the Dispatcher pass the reference library's verify()."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    clock = FakeClock(datetime.now(timezone.utc))
    dispatcher = Dispatcher(MemoryStore(), clock=clock, network_policy=loopback_policy)
    hook = dispatcher.subscribe("party/created", httpserver.url_for("/hook"), owner="acme")
    dispatcher.emit("party/created", {"id": 1, "name": "Ada"}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1
    ((request, _),) = httpserver.log
    headers = dict(request.headers.items())
    assert hook.secret is not None
    payload = Webhook(hook.secret).verify(request.get_data(), headers)
    assert payload == {"event": "party/created", "payload": [{"id": 1, "name": "Ada"}]}
    verify(request.get_data(), headers, hook.secret, now=clock.now())


# -- secrets at subscribe --------------------------------------------------------------------


@pytest.mark.parametrize("size", [24, 32, 64])
def test_subscribe_accepts_secrets_of_24_to_64_bytes(dispatcher: Dispatcher, size: int) -> None:
    """A caller-supplied secret of 24 to 64 bytes is kept as given."""
    secret = _secret_of(size)
    hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="a", secret=secret)
    assert hook.secret == secret


@pytest.mark.parametrize("secret", [_secret_of(23), _secret_of(65), "whsec_!!!", 42, ""])
def test_subscribe_refuses_bad_secrets(dispatcher: Dispatcher, secret: object) -> None:
    """A bad secret is a ValidationError naming `secret`; nothing is stored."""
    with pytest.raises(ValidationError) as info:
        dispatcher.subscribe(
            "party/created",
            "https://example.com/h",
            owner="a",
            secret=secret,  # type: ignore[arg-type]
        )
    assert info.value.field == "secret"
    assert dispatcher.hooks(owner="a") == []


def test_subscribe_generates_a_secret_per_hook(dispatcher: Dispatcher) -> None:
    """Each hook gets its own generated whsec_ secret."""
    one = dispatcher.subscribe("party/created", "https://example.com/1", owner="a")
    two = dispatcher.subscribe("party/created", "https://example.com/2", owner="a")
    assert one.secret is not None
    assert two.secret is not None
    assert one.secret != two.secret


# -- rotation --------------------------------------------------------------------------------


def _signatures(transport: RecordingTransport) -> list[str]:
    return transport.requests[-1].headers["webhook-signature"].split(" ")


def _deliver(dispatcher: Dispatcher) -> None:
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1


def test_rotation_signs_with_both_secrets_during_the_grace_period(
    dispatcher: Dispatcher, clock: FakeClock, transport: RecordingTransport
) -> None:
    """After rotate_secret both signatures are sent for 24 h, then only the new one."""
    hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    old = hook.secret
    assert old is not None
    _deliver(dispatcher)
    assert len(_signatures(transport)) == 1

    new = dispatcher.rotate_secret(hook.id, owner="acme")
    assert new != old
    clock.advance(timedelta(hours=23, minutes=59))
    _deliver(dispatcher)
    request = transport.requests[-1]
    first, second = _signatures(transport)
    stamp = int(request.headers["webhook-timestamp"])
    assert first == sign(new, request.headers["webhook-id"], stamp, request.body)
    assert second == sign(old, request.headers["webhook-id"], stamp, request.body)
    for secret in (old, new):  # a receiver on either secret accepts it
        verify(request.body, request.headers, secret, now=stamp)

    clock.advance(timedelta(minutes=1))
    _deliver(dispatcher)
    request = transport.requests[-1]
    assert len(_signatures(transport)) == 1
    verify(request.body, request.headers, new, now=clock.now())
    with pytest.raises(VerificationError):
        verify(request.body, request.headers, old, now=clock.now())


def test_grace_period_is_configurable(
    store: MemoryStore, clock: FakeClock, transport: RecordingTransport
) -> None:
    """secret_grace sets how long the old secret keeps signing; 0 drops it at once."""
    for grace, expected in ((60, 2), (0, 1)):
        dispatcher = Dispatcher(store, clock=clock, transport=transport, secret_grace=grace)
        hook = dispatcher.subscribe("party/created", f"https://example.com/{grace}", owner="g")
        dispatcher.rotate_secret(hook.id, owner="g")
        dispatcher.emit("party/created", {}, owner="g")
        dispatcher.deliver_due()
        assert len(_signatures(transport)) == expected
        dispatcher.unsubscribe(hook.id, owner="g")
    clock.advance(61)


def test_rotate_secret_with_given_secret_and_errors(dispatcher: Dispatcher) -> None:
    """A given secret is validated (field `secret`); another owner's hook is not found."""
    hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    mine = _secret_of(32)
    assert dispatcher.rotate_secret(hook.id, owner="acme", secret=mine) == mine
    assert dispatcher.get_hook(hook.id, owner="acme").secret == mine
    with pytest.raises(ValidationError) as info:
        dispatcher.rotate_secret(hook.id, owner="acme", secret="whsec_short")
    assert info.value.field == "secret"
    assert dispatcher.get_hook(hook.id, owner="acme").secret == mine
    with pytest.raises(HookNotFound):
        dispatcher.rotate_secret(hook.id, owner="other")


# -- limits and hygiene ----------------------------------------------------------------------


def test_oversized_body_is_not_sent(store: MemoryStore, clock: FakeClock) -> None:
    """A stored body larger than max_payload_bytes fails the attempt as `too_large`, unsent."""
    transport = RecordingTransport()
    big = Dispatcher(store, clock=clock, transport=transport)
    big.subscribe("party/created", "https://example.com/h", owner="acme")
    (delivery,) = big.emit("party/created", {"blob": "x" * 500}, owner="acme")
    small = Dispatcher(store, clock=clock, transport=transport, max_payload_bytes=100)
    assert small.deliver_due().retried == 1
    (attempt,) = small.attempts(delivery.id, owner="acme")
    assert attempt.error_kind == "too_large"
    assert transport.requests == []


def test_transport_errors_mask_credentials_and_query() -> None:
    """urllib3 messages that quote the URL reach the caller with userinfo and query masked."""
    url = "http://user:hunter22@[::1/hook?token=s3cr3t"
    request = Request(method="POST", url=url, headers={}, body=b"{}", timeouts=Timeouts(1, 2))
    with Urllib3Transport(policy=LOOPBACK) as transport, pytest.raises(TransportError) as info:
        transport.send(request)
    assert "hunter22" not in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_dispatcher_masks_errors_of_custom_transports(dispatcher: Dispatcher) -> None:
    """A custom transport quoting the full URL has it masked in the attempt log."""
    url = "https://user:hunter22@example.com/h?token=s3cr3t"
    dispatcher.transport = RecordingTransport(
        handler=lambda request: (_ for _ in ()).throw(TransportError("connection", request.url))
    )
    _legacy_hook(dispatcher, url)
    (delivery,) = dispatcher.emit("party/created", {}, owner="acme")
    dispatcher.deliver_due()
    (attempt,) = dispatcher.attempts(delivery.id, owner="acme")
    assert attempt.error == "https://***@example.com/h?***"


def _legacy_hook(dispatcher: Dispatcher, url: str) -> Hook:
    """A hook whose URL carries credentials: stored before subscribe refused them."""
    now = dispatcher.clock.now()
    hook = Hook(
        id="hook_legacy",
        owner="acme",
        event="party/created",
        target_url=url,
        created_at=now,
        updated_at=now,
        secret=generate_secret(),
    )
    return dispatcher.store.add_hook(hook, max_per_owner=None)[0]


def test_logs_carry_no_secret_signature_credentials_or_query(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A delivery logged at DEBUG (resthooks, and urllib3 should it log anything) shows no
    secret, signature, credentials or query."""
    httpserver.expect_request("/hook").respond_with_data("", status=204)
    clock = FakeClock(datetime.now(timezone.utc))
    dispatcher = Dispatcher(MemoryStore(), clock=clock, network_policy=LOOPBACK)
    url = httpserver.url_for("/hook").replace("://", "://user:hunter22@") + "?token=s3cr3t"
    hook = _legacy_hook(dispatcher, url)
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    with caplog.at_level(logging.DEBUG):
        assert dispatcher.deliver_due().delivered == 1
    ((request, _),) = httpserver.log
    signature = request.headers["webhook-signature"].partition(",")[2]
    assert hook.secret is not None
    ours = [r for r in caplog.records if r.name.startswith(("resthooks", "urllib3"))]
    # The attempt line quotes the URL (masked): the check below looks at a line that has it.
    assert any("localhost" in r.getMessage() and "/hook" in r.getMessage() for r in ours)
    text = "\n".join(record.getMessage() for record in ours)  # (werkzeug is the receiver)
    for leak in ("hunter22", "s3cr3t", hook.secret.removeprefix("whsec_"), signature):
        assert leak not in text


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "field"),
    [
        ("msg.1", SPEC_TS, "msg_id"),  # "a.1" + "2" reads like "a" + "1.2": ambiguous
        ("", SPEC_TS, "msg_id"),
        ("msg 1", SPEC_TS, "msg_id"),
        ("msg\n1", SPEC_TS, "msg_id"),
        ("msg\x001", SPEC_TS, "msg_id"),
        ("msg_é", SPEC_TS, "msg_id"),
        ("m" * 256, SPEC_TS, "msg_id"),
        (None, SPEC_TS, "msg_id"),
        (SPEC_ID, 1614265330.0, "timestamp"),
        (SPEC_ID, True, "timestamp"),
        (SPEC_ID, -1, "timestamp"),
        (SPEC_ID, 10**15, "timestamp"),
        (SPEC_ID, "1614265330", "timestamp"),
    ],
)
def test_sign_refuses_what_it_cannot_sign_unambiguously(
    msg_id: object, timestamp: object, field: str
) -> None:
    """sign() names the field it refuses; it never signs a '.' id or a non-integer time."""
    with pytest.raises(ValidationError) as info:
        sign(SPEC_SECRET, msg_id, timestamp, SPEC_BODY)  # type: ignore[arg-type]
    assert info.value.field == field


def test_every_store_id_form_can_be_signed(tmp_path: object) -> None:
    """The ids our stores make pass sign()'s rules (memory, SQLite; PostgreSQL's are alike)."""
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    for store in (MemoryStore(), SQLiteStore(f"{tmp_path}/ids.db")):
        dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
        dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        (delivery,) = dispatcher.emit("party/created", {}, owner="acme")
        assert sign(SPEC_SECRET, delivery.id, SPEC_TS, b"{}").startswith("v1,")
        store.close()
