"""What the urllib3 transport puts on the wire and reads back: the same as urllib3, faster."""

from __future__ import annotations

import http.client
import io
import re
import socket
import sys
import threading
from collections.abc import Callable

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from resthooks import TransportError
from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import Request, Timeouts, Urllib3Transport
from resthooks.transports._headers import parse_header_lines


def _stdlib(block: bytes) -> http.client.HTTPMessage:
    return http.client.parse_headers(io.BytesIO(block))


def _ours(block: bytes) -> http.client.HTTPMessage:
    return parse_header_lines(http.client._read_headers(io.BytesIO(block)))


def _same(block: bytes) -> None:
    theirs, ours = _stdlib(block), _ours(block)
    assert list(theirs.items()) == list(ours.items()), block
    for name in ("content-length", "transfer-encoding", "connection", "keep-alive"):
        assert theirs.get_all(name) == ours.get_all(name), (name, block)
    assert bool(theirs.defects) == bool(ours.defects), block
    assert (theirs.get_payload() or None) == (ours.get_payload() or None), block


@pytest.mark.parametrize(
    "block",
    [
        b"Server: nginx\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
        b"content-length:5\n\n",
        b"X-Trailing: value  \t\r\nX-Empty:\r\nX-Spaces:   \r\n\r\n",
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        # What only the email parser reads right; the fast path must hand these over.
        b"X-Folded: one\r\n two\r\nContent-Length: 3\r\n\r\n",
        b"Content-Length : 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"X-Bare: a\rContent-Length: 7\r\n\r\n",
        b"X-Form: a\x0cContent-Length: 7\r\n\r\n",
        b"X-Latin: caf\xe9\r\nContent-Length: 2\r\n\r\n",
        b"From nobody\r\nContent-Length: 2\r\n\r\n",
        b": no name\r\nContent-Length: 2\r\n\r\n",
        b"no colon at all\r\nContent-Length: 2\r\n\r\n",
        b"Content-Length: 2\r\n",  # the stream ends without the blank line
        b"\r\n",
    ],
)
def test_header_blocks_read_as_the_stdlib_reads_them(block: bytes) -> None:
    """Plain blocks and every kind the fast path hands to the email parser give the same
    headers (names, values, duplicates, framing headers) as http.client.parse_headers."""
    _same(block)


_NAME = st.sampled_from(
    ["Content-Length", "Transfer-Encoding", "Connection", "X-A", "x-b", "Server", "From"]
) | st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=8)
_VALUE = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=16)
_SEP = st.sampled_from([":", ": ", ":\t", " :", ""])
_END = st.sampled_from(["\r\n", "\n", "\r\n ", "\r\n\t", "\r"])


@settings(max_examples=400, derandomize=True)
@given(st.lists(st.tuples(_NAME, _SEP, _VALUE, _END), max_size=6))
def test_any_header_block_reads_as_the_stdlib_reads_it(
    lines: list[tuple[str, str, str, str]],
) -> None:
    """Random header blocks (any byte in names and values, missing or odd colons, folded
    lines, bare CRs) give the same message as http.client's own reader."""
    text = "".join(name + sep + value + end for name, sep, value, end in lines)
    block = text.encode("latin-1")
    if b"\n\n" in block or b"\n\r\n" in block:
        block = block.split(b"\n\r\n")[0].split(b"\n\n")[0] + b"\n"
    _same(block + b"\r\n")


def test_a_folded_header_from_a_server_reads_as_urllib3_reads_it() -> None:
    """A folded header from a real server on loopback (a block HeadersResponse hands to the
    email parser) arrives joined by one space, as urllib3 returns it."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answer = (
        b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\nok"
    )

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(answer)

    server = threading.Thread(target=serve)
    server.start()
    try:
        with Urllib3Transport(policy=LOOPBACK_POLICY) as transport:
            response = transport.send(
                Request(
                    method="POST",
                    url=f"http://127.0.0.1:{port}/hook",
                    headers={"Content-Type": "application/json"},
                    body=b"{}",
                    timeouts=Timeouts(),
                )
            )
    finally:
        server.join(timeout=10)
        listener.close()
    assert (response.status, response.body) == (200, b"ok")
    assert response.headers["x-folded"] == "one two"  # folded lines joined, as before


_SENDS: list[object] = []
_COUNTING: list[bool] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "http.client.send" and _COUNTING:
        _SENDS.append(args[1])


sys.addaudithook(_audit)


def _raw_requests(count: int, send: Callable[[str], None]) -> list[bytes]:
    """What a keep-alive server on loopback received, request by request."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            for _ in range(count):
                while not (b"\r\n\r\n" in data and data.endswith((b"{}", b"\r\n0\r\n\r\n"))):
                    data += conn.recv(65536)
                got.append(data)
                data = b""
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = threading.Thread(target=serve)
    server.start()
    try:
        send(f"http://127.0.0.1:{port}/hook")
    finally:
        server.join(timeout=10)
        listener.close()
    return got


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json", "webhook-id": "msg_1", "X-Empty": ""},
        {"Host": "hooks.example.test", "User-Agent": "resthooks/1", "Accept-Encoding": "gzip"},
        {"content-length": "2", "X-Folded": "a\r\n b"},
        {"Transfer-Encoding": "chunked"},
    ],
    ids=["plain", "own-host-agent-encoding", "own-length", "chunked"],
)
def test_every_request_is_one_write_of_the_bytes_urllib3_sends(headers: dict[str, str]) -> None:
    """On a new connection and on a kept-alive one, the head and a small body go out in one
    write, and the receiver gets the very bytes urllib3's own HTTPConnectionPool sends for
    the same request (request line, Host, Accept-Encoding, framing, User-Agent, the headers
    in order), whichever of those headers the request sets itself."""
    writes: list[int] = []

    def ours(url: str) -> None:
        with Urllib3Transport(policy=LOOPBACK_POLICY) as transport:
            for _ in range(2):
                _SENDS.clear()
                _COUNTING.append(True)
                try:
                    request = Request(
                        method="POST", url=url, headers=headers, body=b"{}", timeouts=Timeouts()
                    )
                    assert transport.send(request).status == 204
                finally:
                    _COUNTING.clear()
                writes.append(len(_SENDS))

    def theirs(url: str) -> None:
        port = int(url.split(":")[2].split("/", maxsplit=1)[0])
        with urllib3.HTTPConnectionPool("127.0.0.1", port) as pool:
            for _ in range(2):
                response = pool.urlopen("POST", "/hook", body=b"{}", headers=headers)
                assert response.status == 204

    def port_masked(requests: list[bytes]) -> list[bytes]:  # each run has its own server port
        return [re.sub(rb"Host: 127\.0\.0\.1:\d+", b"Host: 127.0.0.1:PORT", r) for r in requests]

    sent = port_masked(_raw_requests(2, ours))
    assert writes == [1, 1]
    assert port_masked(_raw_requests(2, theirs)) == sent
    assert sent[0].startswith(b"POST /hook HTTP/1.1\r\n")


@pytest.mark.parametrize(
    ("headers", "method", "field"),
    [
        ({"X-Bad\r\nInjected": "1"}, "POST", "X-Bad"),
        ({"X-Split": "a\r\nInjected: yes"}, "POST", "X-Split"),
        ({"X-Bare-LF": "a\nb"}, "POST", "X-Bare-LF"),
        ({"Caf\u00e9": "1"}, "POST", "Caf"),
        ({"X-Snowman": "\u2603"}, "POST", "X-Snowman"),
        ({}, "PO ST", "method"),
    ],
)
def test_a_header_http_client_refuses_is_refused_before_anything_is_sent(
    headers: dict[str, str], method: str, field: str
) -> None:
    """A header name or value http.client's putheader would refuse (CR or LF injection, a name
    that is not ASCII, a value that is not Latin-1), or a method that is not a token, fails as
    ``protocol`` naming it, never quoting the value, and nothing reaches the server."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    try:
        with Urllib3Transport(policy=LOOPBACK_POLICY) as transport:
            request = Request(
                method=method,
                url=f"http://127.0.0.1:{listener.getsockname()[1]}/hook",
                headers=headers,
                body=b"{}",
                timeouts=Timeouts(),
            )
            with pytest.raises(TransportError) as info:
                transport.send(request)
        assert info.value.kind == "protocol"
        assert field in info.value.message
        assert "Injected: yes" not in info.value.message
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
    finally:
        listener.close()


def _urllib3_head(headers: dict[str, str], body: bytes) -> bytes | None:
    """What urllib3's HTTPConnection.request writes for these headers (None: it refuses
    them), read off the other end of a socket pair: no network."""
    ours, theirs = socket.socketpair()
    with theirs:
        conn = urllib3.connection.HTTPConnection("127.0.0.1", 8080)
        conn.sock = ours
        try:
            conn.request("POST", "/hook?x=1", body=body, headers=headers)
        except ValueError:  # http.client's refusal of a name or value (UnicodeError included)
            return None
        finally:
            conn.close()
        data = b""
        theirs.settimeout(5)
        while chunk := theirs.recv(65536):
            data += chunk
        return data


_HEADER_NAME = st.sampled_from(
    ["Content-Type", "host", "Content-Length", "Transfer-Encoding", "user-agent", "X-A"]
) | st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=8)
_HEADER_VALUE = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=12) | (
    st.sampled_from(["a\r\n b", "a\r\nb", "a\nb", "a\rb", "a\r\n\tb", " padded ", ""])
)


@settings(max_examples=300, derandomize=True)
@given(
    st.dictionaries(_HEADER_NAME, _HEADER_VALUE, max_size=4),
    st.sampled_from([b"{}", b""]),
)
def test_any_headers_make_the_head_urllib3_makes_or_are_refused_like_it(
    headers: dict[str, str], body: bytes
) -> None:
    """For random header names and values (CR, LF, NUL, non-ASCII, folded lines, framing
    headers of the request's own), the transport's request head and body are byte for byte
    urllib3's, or both refuse the request."""
    from resthooks.transports._exchange import (  # noqa: PLC0415 - the unit under test
        _body_bytes,
        _host_header,
        request_head,
    )

    expected = _urllib3_head(headers, body)
    host = _host_header("127.0.0.1", 8080, "http")
    if expected is None:
        with pytest.raises(TransportError) as info:
            request_head("POST", b"/hook?x=1", host, headers, body)
        assert info.value.kind == "protocol"
        return
    head, chunked = request_head("POST", b"/hook?x=1", host, headers, body)
    assert expected == head + _body_bytes(body, chunked)
