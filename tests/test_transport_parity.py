"""Both transports answer the same server behaviour the same way: the same Response, or the
same TransportError kind, and never a secret of the URL in a message or a log record.

Each test runs on Urllib3Transport, AiohttpTransport and AsyncioTransport (``make_transport``),
against small raw-socket servers on loopback that behave well or badly on purpose.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

import pytest

from raw_server import Handle, RawServer, reset
from resthooks import NetworkPolicy, TransportError
from resthooks.transports import Request, Response, Timeouts, Transport

MakeTransport = Callable[..., Transport]


@pytest.fixture(name="serve")
def _serve() -> Iterator[Callable[[Handle], RawServer]]:
    servers: list[RawServer] = []

    def start(handle: Handle) -> RawServer:
        servers.append(RawServer(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


# Generous: on a loaded machine a server thread can wait seconds for its turn, and no answer
# but silence may end in a timeout. Only the server that never answers gets the short deadline
# (it never answers, so how short it is changes nothing but the test's length).
TIMEOUTS = Timeouts(connect=10.0, total=30.0)
SILENCE_TIMEOUTS = Timeouts(connect=1.0, total=1.0)


def _request(url: str, *, cap: int = 16, timeouts: Timeouts = TIMEOUTS) -> Request:
    return Request(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json", "User-Agent": "resthooks-test"},
        body=b'{"event": "party/created"}',
        timeouts=timeouts,
        max_response_bytes=cap,
    )


def _request_for(behaviour: str, url: str) -> Request:
    """The request for a server ``behaviour``: the short deadline only for silence."""
    return _request(url, timeouts=SILENCE_TIMEOUTS if behaviour == "never-answers" else TIMEOUTS)


# name -> (what the server does after reading the request, the kind of the error)
FAILURES: dict[str, tuple[bytes | None, str]] = {
    # the server reads the request, then resets the connection: no status at all
    "reset-after-request": (None, "connection"),
    # the server reads the request and closes the connection without a word
    "closed-without-answer": (b"", "connection"),
    "garbage-status-line": (b"HELLO THERE\r\n\r\n", "protocol"),
    "body-cut-short": (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this", "protocol"),
    "header-longer-than-64-KiB": (
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n",
        "protocol",
    ),
    "never-answers": (b"...", "timeout"),  # sends nothing; '...' is a marker, see below
}


def _failing(answer: bytes | None, server_of: Callable[[], RawServer]) -> Handle:
    def handle(conn: socket.socket) -> None:
        server = server_of()
        if not server.read_request(conn):
            return
        if answer is None:
            reset(conn)
        elif answer == b"...":
            conn.recv(1)  # until the client gives up and closes
        elif answer:
            conn.sendall(answer)

    return handle


def _start_failing(serve: Callable[[Handle], RawServer], answer: bytes | None) -> RawServer:
    box: list[RawServer] = []
    box.append(serve(_failing(answer, lambda: box[0])))
    return box[0]


@pytest.mark.parametrize("behaviour", list(FAILURES))
def test_the_same_server_behaviour_is_the_same_error_kind(
    make_transport: MakeTransport,
    loopback_policy: NetworkPolicy,
    serve: Callable[[Handle], RawServer],
    behaviour: str,
) -> None:
    """Each bad answer (reset, silence, garbage, a short body, a huge header, no answer) is
    the same TransportError kind from either transport; a reset after the request was read is
    ``connection``."""
    answer, kind = FAILURES[behaviour]
    server = _start_failing(serve, answer)
    with make_transport(policy=loopback_policy) as transport, pytest.raises(TransportError) as info:
        transport.send(_request_for(behaviour, server.url()))
    assert kind == info.value.kind, info.value.message
    assert len(server.requests) == 1  # sent exactly once


def test_a_reset_in_the_middle_of_the_body_is_a_connection_error(
    make_transport: MakeTransport,
    loopback_policy: NetworkPolicy,
    serve: Callable[[Handle], RawServer],
) -> None:
    """The server starts a long body, then resets the connection: ``connection``."""

    def handle(conn: socket.socket) -> None:
        if server.read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
            reset(conn)

    server = serve(handle)
    with make_transport(policy=loopback_policy) as transport, pytest.raises(TransportError) as info:
        transport.send(_request(server.url(), cap=200_000))
    assert info.value.kind == "connection", info.value.message


# name -> the whole answer of the server; every transport must return the same Response.
ANSWERS: dict[str, bytes] = {
    "small-body": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: small\r\n\r\nhello",
    "redirect-not-followed": (
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\n"
        b"Content-Length: 5\r\n\r\nmoved"
    ),
    "body-over-the-cap": b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + b"z" * 64,
    "chunked-over-the-cap": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"a\r\n0123456789\r\n" * 5
        + b"0\r\n\r\n"
    ),
    "until-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nread to the end",
    "gzip-is-not-decoded": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00"
    ),
    "repeated-header": b"HTTP/1.1 204 No Content\r\nX-Dup: one\r\nX-Dup: two\r\n\r\n",
    "server-error": (
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n"
    ),
    "continue-first": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    ),
}
EXPECTED: dict[str, Response] = {
    "small-body": Response(
        status=200, headers={"content-length": "5", "x-kind": "small"}, body=b"hello"
    ),
    "redirect-not-followed": Response(
        status=302,
        headers={"location": "http://127.0.0.1:9/elsewhere", "content-length": "5"},
        body=b"moved",
    ),
    "body-over-the-cap": Response(
        status=200, headers={"content-length": "64"}, body=b"z" * 16, truncated=True
    ),
    "chunked-over-the-cap": Response(
        status=200,
        headers={"transfer-encoding": "chunked"},
        body=b"0123456789012345",
        truncated=True,
    ),
    "until-close": Response(
        status=200, headers={"connection": "close"}, body=b"read to the end"[:16]
    ),
    "gzip-is-not-decoded": Response(
        status=200,
        headers={"content-encoding": "gzip", "content-length": "4"},
        body=b"\x1f\x8b\x08\x00",
    ),
    "repeated-header": Response(status=204, headers={"x-dup": "two"}),
    "server-error": Response(
        status=503, headers={"retry-after": "7", "content-length": "0"}, body=b""
    ),
    "continue-first": Response(status=200, headers={"content-length": "2"}, body=b"ok"),
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_the_same_answer_is_the_same_response(
    make_transport: MakeTransport,
    loopback_policy: NetworkPolicy,
    serve: Callable[[Handle], RawServer],
    name: str,
) -> None:
    """Status, lower-case headers, the capped body and ``truncated`` are the same from both
    transports; a 302 is returned, not followed; a gzip body is not decoded."""

    def handle(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(ANSWERS[name])
            if b"Connection: close" in ANSWERS[name]:
                return

    server = serve(handle)
    with make_transport(policy=loopback_policy) as transport:
        response = transport.send(_request(server.url()))
    assert EXPECTED[name] == response
    assert len(server.requests) == 1


def test_both_transports_send_the_same_request(
    make_transport: MakeTransport,
    loopback_policy: NetworkPolicy,
    serve: Callable[[Handle], RawServer],
) -> None:
    """The receiver sees the same request line and header names from either transport (but
    for the ``Accept: */*`` aiohttp adds): no credentials from the URL, no cookies kept from
    an earlier answer, the body not asked for compressed."""

    def handle(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nContent-Length: 0\r\n\r\n"
            )

    server = serve(handle)
    url = f"http://alice:hunter2@127.0.0.1:{server.port}/hook?token=s3cret"
    with make_transport(policy=loopback_policy) as transport:
        transport.send(_request(url))
        transport.send(_request(url))
    for head in server.requests:
        line, *header_lines = head.decode().split("\r\n")
        headers = dict(h.lower().split(": ", 1) for h in header_lines)
        assert line == "POST /hook?token=s3cret HTTP/1.1"
        assert headers.pop("accept", "*/*") == "*/*"
        assert headers["accept-encoding"] == "identity"
        assert sorted(headers) == [
            "accept-encoding",
            "content-length",
            "content-type",
            "host",
            "user-agent",
        ]
        assert headers["host"] == f"127.0.0.1:{server.port}"


SECRETS = ("hunter2", "alice", "s3cret", "token=")


@pytest.mark.parametrize("behaviour", [*FAILURES, "refused", "blocked", "tls"])
def test_no_secret_of_the_url_in_errors_or_logs(
    make_transport: MakeTransport,
    loopback_policy: NetworkPolicy,
    serve: Callable[[Handle], RawServer],
    caplog: pytest.LogCaptureFixture,
    behaviour: str,
) -> None:
    """Whatever fails, neither the error nor any log record (the HTTP clients' own included,
    at DEBUG) holds the URL's user, password or query string; the message may name the host."""
    caplog.set_level(logging.DEBUG)
    policy = loopback_policy
    if behaviour == "refused":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    elif behaviour == "blocked":
        port, policy = 9, NetworkPolicy()
    elif behaviour == "tls":
        server = serve(lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n"))
        port = server.port
    else:
        port = _start_failing(serve, FAILURES[behaviour][0]).port
    scheme = "https" if behaviour == "tls" else "http"
    url = f"{scheme}://alice:hunter2@127.0.0.1:{port}/hook?token=s3cret"
    with make_transport(policy=policy) as transport, pytest.raises(TransportError) as info:
        transport.send(_request_for(behaviour, url))
    shown = [str(info.value), repr(info.value), *(r.getMessage() for r in caplog.records)]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text, text


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb"])
def test_a_header_value_with_a_line_break_is_a_protocol_error(
    make_transport: MakeTransport,
    loopback_policy: NetworkPolicy,
    serve: Callable[[Handle], RawServer],
    value: str,
) -> None:
    """A header value that would end its line (header injection) is refused as ``protocol``
    by every transport, and nothing of that request reaches the server."""

    def handle(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = serve(handle)
    request = Request(
        method="POST",
        url=server.url(),
        headers={"Content-Type": "application/json", "X-Custom": value},
        body=b"{}",
        timeouts=TIMEOUTS,
    )
    with make_transport(policy=loopback_policy) as transport, pytest.raises(TransportError) as info:
        transport.send(request)
    assert info.value.kind == "protocol", info.value.message
    assert server.requests == []


def test_a_server_that_closes_on_accept_is_a_connection_error(
    make_transport: MakeTransport,
    loopback_policy: NetworkPolicy,
    serve: Callable[[Handle], RawServer],
) -> None:
    """The server accepts the connection and closes it at once, before any request: a
    ``connection`` error (not a ``timeout`` at the deadline), from every transport."""
    server = serve(lambda conn: None)  # the handler returns: the connection is closed
    with make_transport(policy=loopback_policy) as transport, pytest.raises(TransportError) as info:
        transport.send(_request(server.url()))
    assert info.value.kind == "connection", info.value.message
    assert server.connections == 1
