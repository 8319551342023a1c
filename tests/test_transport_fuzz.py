"""Whatever URL a Request carries, both transports answer with a TransportError of a known
kind and nothing else: no crash of urllib3, aiohttp or yarl leaks out, and nothing private is
dialled."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resthooks import NetworkPolicy, TransportError
from resthooks.transports import Request, Timeouts, Transport

KINDS = {"timeout", "connection", "tls", "blocked", "protocol"}


def _no_dns(host: str, port: int) -> list[str]:
    # Names never reach a real resolver here: the fuzzer must not make DNS queries.
    raise socket.gaierror(socket.EAI_NONAME, "not resolved in this test")


_hosts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "127.0.0.1",
            "0",
            "0x7f.1",
            "[::1]",
            "[::ffff:10.0.0.1]",
            "[fe80::1%eth0]",
            "169.254.169.254",
            "example.test",
            "[",
            "]",
            "::",
            "a" * 300,
            "xn--nxasmq6b",
            "h\x00st",
            "h\ud800st",
        ]
    ),
)
_urls = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda scheme, host, port, rest: f"{scheme}://{host}{port}{rest}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "", "javascript"]),
        _hosts,
        st.sampled_from(["", ":0", ":80", ":65536", ":-1", ":x", ":99999999999999999999"]),
        st.text(max_size=40),
    ),
)


def test_any_url_is_a_transport_error_of_a_known_kind(
    make_transport: Callable[..., Transport],
) -> None:
    """Garbage, private literals, odd ports, NUL and lone surrogates: every attempt fails as a
    TransportError whose kind is one of the five (the default policy refuses every private
    address; names do not resolve)."""
    transport = make_transport(policy=NetworkPolicy(), resolver=_no_dns)

    @settings(max_examples=80, deadline=None)
    @given(url=_urls)
    def check(url: str) -> None:
        request = Request(
            method="POST",
            url=url,
            headers={"Content-Type": "application/json"},
            body=b"{}",
            timeouts=Timeouts(connect=0.5, total=0.5),
        )
        with pytest.raises(TransportError) as info:
            transport.send(request)
        assert info.value.kind in KINDS, info.value

    check()


_header_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["X-Ok", "a\r\nb", "a\nb", "a\rb", "é", "\u2603", " x", "x:y", "", "\x00"]),
)


def test_any_header_is_sent_or_refused_as_a_protocol_error(
    make_transport: Callable[..., Transport], loopback_policy: NetworkPolicy
) -> None:
    """Whatever header names and values a Request carries (line breaks, non-Latin-1 text,
    separators, NUL), the transport either sends it and returns the receiver's answer, or
    refuses it with a TransportError of kind ``protocol``; never another exception."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in data or not data.endswith(b"{}"):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    transport = make_transport(policy=loopback_policy)

    @settings(max_examples=60, deadline=None)
    @given(name=_header_text, value=_header_text)
    def check(name: str, value: str) -> None:
        request = Request(
            method="POST",
            url=f"http://127.0.0.1:{port}/hook",
            headers={"Content-Type": "application/json", name: value},
            body=b"{}",
            timeouts=Timeouts(connect=2.0, total=2.0),
        )
        outcome: int | str
        try:
            outcome = transport.send(request).status
        except TransportError as exc:
            outcome = exc.kind
        assert outcome in (204, "protocol"), (name, value)

    try:
        check()
    finally:
        stop.set()
        thread.join(5)
        listener.close()
