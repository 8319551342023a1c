"""Target URLs: one parser for subscribe and dial, no URL secrets in logs, errors or reprs."""

from __future__ import annotations

import logging
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from raw_server import RawServer, answering
from resthooks import (
    ConfigurationError,
    Dispatcher,
    NetworkPolicy,
    TransportError,
    ValidationError,
)
from resthooks.api import SubscriptionAPI
from resthooks.lifecycle import HookDead
from resthooks.model import Attempt, Hook
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport
from resthooks.transports import Request, Timeouts, Transport, Urllib3Transport
from resthooks.urls import parse_target_url, redact_text, validate_target_url

LOOPBACK = NetworkPolicy(allow_networks=["127.0.0.0/8", "::1/128"])
API_KEY = "k3y-0f-th3-rec3iver"

# The URLs that urllib.parse and urllib3 read as different hosts (issue 13).
DISAGREEING = [
    "http://127.0.0.1\\@evil.com/",
    "http://127.0.0.1:80\\@evil.com/",
    "http://%31%32%37.0.0.1/",
    "http://%31%32%37%2e%30%2e%30%2e%31/",
    "http://127%2e0%2e0%2e1/",
]


@pytest.fixture(name="dispatcher")
def _dispatcher() -> Dispatcher:
    return Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())


# -- subscribe time: one parser ----------------------------------------------------------------


@pytest.mark.parametrize("url", DISAGREEING)
def test_urls_the_parsers_read_differently_are_refused(dispatcher: Dispatcher, url: str) -> None:
    """Each URL of the issue is a ValidationError on target_url, and nothing is stored."""
    with pytest.raises(ValidationError) as info:
        dispatcher.subscribe("party/created", url, owner="acme")
    assert info.value.field == "target_url"
    assert dispatcher.hooks(owner="acme") == []


@pytest.mark.parametrize("url", DISAGREEING)
def test_transports_refuse_stored_urls_the_parsers_read_differently(
    url: str, make_transport: Callable[..., Transport]
) -> None:
    """A hook stored with such a URL before the rule is refused by both transports, undialled."""
    transport = make_transport(policy=LOOPBACK)
    with pytest.raises(TransportError) as info:
        transport.send(Request(method="POST", url=url, headers={}, body=b"{}"))
    assert info.value.kind == "protocol"
    assert "evil" not in info.value.message


@pytest.mark.parametrize("url", DISAGREEING)
def test_api_answers_422_naming_target_url(dispatcher: Dispatcher, url: str) -> None:
    """Through the API, the same URLs are a 422 whose error names targetUrl."""
    answer = SubscriptionAPI(dispatcher).create(
        {"restHook": {"targetUrl": url, "event": "party/created"}}, owner="acme"
    )
    assert answer.status == 422
    assert answer.body is not None
    assert [e["field"] for e in answer.body["errors"]] == ["targetUrl"]


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@example.com/h",
        "https://user@example.com/h",
        "https://:pw@example.com/h",
        "https://a@b@example.com/h",
    ],
)
def test_credentials_are_refused_with_a_422(dispatcher: Dispatcher, url: str) -> None:
    """URL credentials: a 422 on targetUrl that says why, and never echoed back."""
    answer = SubscriptionAPI(dispatcher).create(
        {"restHook": {"targetUrl": url, "event": "party/created"}}, owner="acme"
    )
    assert answer.status == 422
    assert answer.body is not None
    (error,) = answer.body["errors"]
    assert error["field"] == "targetUrl"
    assert "credentials" in error["message"]
    assert "pw" not in answer.content.decode()
    assert dispatcher.hooks(owner="acme") == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://example.com/h#frag", "fragment"),
        ("https://example.com:0/h", "port 0"),
        ("https://example.com/a b", "whitespace"),
        ("https://example.com/a\tb", "whitespace"),
        ("https://example.com/\x00", "control"),
        ("https://exa\\mple.com/", "backslash"),
        ("https://[fe80::1%25eth0]/", "percent"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https:///h", "host"),
    ],
)
def test_shape_rules_name_the_problem(url: str, why: str) -> None:
    """Each shape rule refuses with a message saying which, never quoting the URL."""
    with pytest.raises(ValidationError) as info:
        validate_target_url(url)
    assert why in info.value.message
    assert url not in str(info.value)


def test_accepted_urls_keep_their_spelling() -> None:
    """A plain URL is accepted as given; parse_target_url reads it as urllib3 does."""
    url = "https://Example.COM:8443/hooks/in?token=1&x=%20"
    assert url == validate_target_url(url)
    parts = parse_target_url(url)
    assert (parts.scheme, parts.host, parts.port, parts.path) == (
        "https",
        "example.com",
        8443,
        "/hooks/in",
    )


_URL_CHARS = st.sampled_from([*"aZ09.-_~:/?#[]@!$&'()*+,;=%\\ \t", "%2e", "%31", "@", "é"])


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "ftp"]),
    body=st.lists(_URL_CHARS, max_size=30).map("".join),
)
def test_an_accepted_url_means_the_same_to_both_parsers(scheme: str, body: str) -> None:
    """Fuzz: whatever is accepted has one host and port for urllib3 and urllib.parse."""
    url = f"{scheme}://{body}"
    try:
        validate_target_url(url)
    except ValidationError:
        return
    ours, theirs = parse_url(url), urllib.parse.urlsplit(url)
    assert ours.host is not None
    assert theirs.hostname == ours.host.lower().strip("[]")
    assert theirs.port == ours.port
    assert "@" not in theirs.netloc


# -- the transport applies the shape rules too ---------------------------------------------------


@pytest.fixture(name="malformed_server")
def _malformed_server() -> Iterator[RawServer]:
    # A header line without a colon: http.client keeps it as unparsed data, and urllib3
    # warns "Failed to parse headers (url=...)" on the urllib3.connection logger.
    server = answering(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nthis line is no header\r\n"
        b"Connection: close\r\n\r\n"
    )
    yield server
    server.close()


@pytest.mark.parametrize(
    "url_tail",
    ["/h#frag", ":0/h", "/a b", "/a\x01b", "/x\\@evil.com/"],
)
def test_transport_refuses_bad_shapes_before_dialling(
    url_tail: str, make_transport: Callable[..., Transport]
) -> None:
    """A stored URL that breaks the shape rules is refused by the transport (``protocol``, an
    invalid URL): nothing is sent."""
    server = answering(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    try:
        url = (
            f"http://127.0.0.1:{server.port}{url_tail}"
            if url_tail != ":0/h"
            else ("http://127.0.0.1:0/h")
        )
        transport = make_transport(policy=LOOPBACK)
        with pytest.raises(TransportError) as info:
            transport.send(Request(method="POST", url=url, headers={}, body=b"{}"))
        assert info.value.kind == "protocol"
        assert "invalid URL" in info.value.message
        assert server.requests == []
    finally:
        server.close()


def test_no_log_record_carries_the_query_string(
    malformed_server: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed header line makes urllib3 warn with the URL: the api_key is masked there too.

    Every logger is captured at DEBUG, and messages and tracebacks are both checked.
    """
    clock = FakeClock(datetime.now(timezone.utc))
    dispatcher = Dispatcher(MemoryStore(), clock=clock, network_policy=LOOPBACK)
    url = f"http://127.0.0.1:{malformed_server.port}/hook?api_key={API_KEY}"
    dispatcher.subscribe("party/created", url, owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    loggers = [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]
    levels = [logger.level for logger in loggers]
    try:
        with caplog.at_level(logging.DEBUG):
            for logger in loggers:
                logger.setLevel(logging.DEBUG)
            summary = dispatcher.deliver_due()
    finally:  # every logger as it was: other tests count records
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    assert summary.delivered == 1
    assert API_KEY.encode() in malformed_server.requests[0]  # it was sent, as it must be
    warned = [r for r in caplog.records if r.name == "urllib3.connection"]
    assert warned, "urllib3 did not warn about the malformed header: the test proves nothing"
    assert "Failed to parse headers" in warned[0].getMessage()
    formatter = logging.Formatter()
    for record in caplog.records:
        assert API_KEY not in formatter.format(record), record.name
    assert API_KEY not in caplog.text


def test_transport_errors_keep_no_url_in_their_chain() -> None:
    """A timed-out send raises a masked TransportError, without urllib3's error (whose ``url``
    holds the query string) as its context."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/h?api_key={API_KEY}"
        request = Request(
            method="POST", url=url, headers={}, body=b"{}", timeouts=Timeouts(0.5, 0.5)
        )
        with Urllib3Transport(policy=LOOPBACK) as transport, pytest.raises(TransportError) as info:
            transport.send(request)
    finally:
        silent.close()
    assert info.value.kind == "timeout"
    error: BaseException | None = info.value
    while error is not None:
        for text in (str(error), repr(error), repr(vars(error))):
            assert API_KEY not in text
        error = error.__cause__ or error.__context__


def test_redact_text_masks_urls_and_queries_in_any_form() -> None:
    """Percent-encoded queries and bare request targets are masked as well as whole URLs."""
    text = redact_text(
        "url=http://u:pw@h/p?k=%C3%A9 'POST /p?api_key=x HTTP/1.1' https://h:8443/p?a=b"
    )
    assert text == "url=http://***@h/p?*** 'POST /p?*** HTTP/1.1' https://h:8443/p?***"


# -- reprs ----------------------------------------------------------------------------------


def _legacy_hook() -> Hook:
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return Hook(
        id="hook_1",
        owner="acme",
        event="party/created",
        target_url=f"https://user:hunter22@example.com/h?api_key={API_KEY}",
        created_at=t,
        updated_at=t,
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )


def test_hook_repr_masks_credentials_and_query() -> None:
    """repr(Hook) shows scheme, host and path only (and never the secret)."""
    text = repr(_legacy_hook())
    assert "target_url='https://***@example.com/h?***'" in text
    for leak in ("hunter22", API_KEY, "MfKQ9r8"):
        assert leak not in text


def test_lifecycle_event_repr_masks_its_hook() -> None:
    """A lifecycle event embedding the hook is as safe to log as the hook."""
    hook = _legacy_hook()
    attempt = Attempt(
        delivery_id="msg_1", number=5, started_at=hook.created_at, duration=0.1, status=500
    )
    event = HookDead(hook=hook, reason=f"5 attempts failed; the last: {attempt.summary}")
    for leak in ("hunter22", API_KEY):
        assert leak not in repr(event)


def test_request_repr_masks_signature_and_url() -> None:
    """repr(Request) hides webhook-signature and Authorization values and the query string."""
    request = Request(
        method="POST",
        url=f"https://example.com/h?api_key={API_KEY}",
        headers={
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "Authorization": "Bearer t0k3n",
            "webhook-id": "msg_1",
        },
        body=b"{}",
    )
    text = repr(request)
    for leak in ("g0hM9SsE", "t0k3n", API_KEY):
        assert leak not in text
    assert "'webhook-id': 'msg_1'" in text


def test_custom_transport_quoting_its_request_leaks_no_signature(dispatcher: Dispatcher) -> None:
    """A transport raising with the request in its message stores no signature in the log."""

    def explode(request: Request) -> None:
        raise RuntimeError(f"cannot send {request!r}")

    dispatcher.transport = RecordingTransport(handler=explode)  # type: ignore[arg-type]
    hook = dispatcher.subscribe("party/created", "https://example.com/h?k=v", owner="acme")
    (delivery,) = dispatcher.emit("party/created", {}, owner="acme")
    dispatcher.deliver_due()
    (attempt,) = dispatcher.attempts(delivery.id, owner="acme")
    assert attempt.error is not None
    assert "webhook-signature': '***'" in attempt.error
    assert hook.secret is not None
    claim_signature = "v1,"
    assert claim_signature + "***" not in attempt.error  # the value itself is masked
    assert "k=v" not in attempt.error


# -- deny networks and allowed ports --------------------------------------------------------------


def test_deny_networks_refuse_public_addresses_everywhere() -> None:
    """A denied public network is refused as a literal, inside IPv6, and over an allow list."""
    policy = NetworkPolicy(
        deny_networks=["168.63.129.16/32", "203.0.112.0/24"], allow_networks=["127.0.0.0/8"]
    )
    assert policy.refusal("168.63.129.16") == "denied by the operator (168.63.129.16/32)"
    assert policy.refusal("::ffff:168.63.129.16") is not None
    assert policy.refusal("8.8.8.8") is None
    with pytest.raises(ValidationError) as info:
        policy.check_url("https://168.63.129.16/h")
    assert info.value.field == "target_url"
    with pytest.raises(TransportError) as blocked:
        policy.check_resolved("wireserver.example", ["8.8.8.8", "168.63.129.16"])
    assert blocked.value.kind == "blocked"


def test_deny_wins_over_allow() -> None:
    """A network both allowed and denied is denied."""
    policy = NetworkPolicy(allow_networks=["127.0.0.0/8"], deny_networks=["127.0.0.5/32"])
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("127.0.0.5") is not None


def test_deny_networks_are_enforced_at_dial(make_transport: Callable[..., Transport]) -> None:
    """A name resolving to a denied address is blocked at every attempt; nothing is sent."""
    server = answering(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    try:
        policy = NetworkPolicy(allow_networks=["127.0.0.0/8"], deny_networks=["127.0.0.1/32"])
        transport = make_transport(policy=policy, resolver=lambda h, p: ["127.0.0.1"])
        with pytest.raises(TransportError) as info:
            transport.send(
                Request(
                    method="POST", url=f"http://hooks.test:{server.port}/", headers={}, body=b""
                )
            )
        assert info.value.kind == "blocked"
        assert server.requests == []
    finally:
        server.close()


def test_allowed_ports_at_subscribe(dispatcher: Dispatcher) -> None:
    """Only listed ports subscribe; the scheme's default port counts as the URL's port."""
    dispatcher.network_policy = NetworkPolicy(allowed_ports={443})
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.subscribe("party/created", "https://example.com:443/h2", owner="acme")
    for url in ("https://example.com:8443/h", "http://example.com/h"):
        with pytest.raises(ValidationError) as info:
            dispatcher.subscribe("party/created", url, owner="acme")
        assert info.value.field == "target_url"
        assert "is not allowed" in info.value.message


def test_allowed_ports_at_dial(make_transport: Callable[..., Transport]) -> None:
    """A port outside the list is blocked when dialled, before any connection."""
    server = answering(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    try:
        policy = NetworkPolicy(allow_networks=["127.0.0.0/8"], allowed_ports={443})
        with pytest.raises(TransportError) as info:
            make_transport(policy=policy).send(
                Request(method="POST", url=f"http://127.0.0.1:{server.port}/", headers={}, body=b"")
            )
        assert info.value.kind == "blocked"
        assert f"port {server.port}" in info.value.message
        assert server.requests == []
        open_policy = NetworkPolicy(allow_networks=["127.0.0.0/8"], allowed_ports={server.port})
        response = make_transport(policy=open_policy).send(
            Request(method="POST", url=f"http://127.0.0.1:{server.port}/", headers={}, body=b"")
        )
        assert response.status == 204
    finally:
        server.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allowed_ports": []},
        {"allowed_ports": [0]},
        {"allowed_ports": [65536]},
        {"allowed_ports": [True]},
        {"allowed_ports": "443"},
        {"allowed_ports": 443},
        {"deny_networks": ["not a network"]},
        {"deny_networks": [42]},
        {"deny_networks": 42},
    ],
)
def test_bad_policy_options_are_configuration_errors(kwargs: dict[str, object]) -> None:
    """Nonsense ports or networks are a ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError) as info:
        NetworkPolicy(**kwargs)  # type: ignore[arg-type]
    assert next(iter(kwargs)) in str(info.value)
