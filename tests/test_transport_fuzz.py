"""Whatever URL a Request carries, both transports answer with a TransportError of a known
kind and nothing else: no crash of urllib3, aiohttp or yarl leaks out, and nothing private is
dialled."""

from __future__ import annotations

import socket
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
