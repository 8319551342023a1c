"""What the urllib3 transport puts on the wire and reads back: the same as urllib3, faster."""

from __future__ import annotations

import http.client
import io
import socket
import sys
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import Request, Timeouts, Urllib3Transport
from resthooks.transports._headers import HeadersResponse, parse_header_lines


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


def test_the_transports_connections_read_headers_with_it() -> None:
    """The urllib3 transport's responses come from HeadersResponse, and a folded header
    from a real server on loopback still reads as the stdlib reads it."""
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
            pool_class = transport._pool_classes["http"]
            assert pool_class.ConnectionCls.response_class is HeadersResponse
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
                while not (b"\r\n\r\n" in data and data.endswith(b"{}")):
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


def test_a_request_on_a_kept_alive_connection_is_one_write_of_the_same_bytes() -> None:
    """On an open connection the head and a small body go out in one write, and the bytes
    are those of the first request, which opened the connection and went out as urllib3
    writes it (head, then body)."""
    headers = {"Content-Type": "application/json", "webhook-id": "msg_1"}
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

    first, second = _raw_requests(2, ours)
    assert writes[1] == 1  # the first request opened the connection: written as before
    assert first == second  # the same bytes either way
