"""Delivery through an egress proxy: a real forward proxy (proxy.py, from PyPI) on loopback,
for both transports, http and https targets, a refused CONNECT and proxy authentication.

With a proxy, the engine dials only the proxy: the receivers' names are the proxy's to
resolve (and their addresses the proxy's to check), TLS runs end to end with the receiver,
and the proxy's credentials appear nowhere but in ``Proxy-Authorization``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_support import ProxyServer
from resthooks import (
    ConfigurationError,
    Dispatcher,
    NetworkPolicy,
    TransportError,
    ValidationError,
)
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock, HookReceiver
from resthooks.transports import Request, Timeouts, Transport, Urllib3Transport
from resthooks.transports._proxy import parse_proxy
from test_transport_pinning import CountingServer, StubResolver, _running

USER, PASSWORD = "egress", "s3cr3t-pw"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
REFUSED = "refused.test"  # the authenticating proxy refuses tunnels to this host (418)
LOOPBACK = NetworkPolicy(allow_networks=["127.0.0.0/8", "::1/128"])
MakeTransport = Callable[..., Transport]


@pytest.fixture(name="open_proxy", scope="module")
def _open_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    proxy = ProxyServer(tmp_path_factory.mktemp("open-proxy"))
    yield proxy
    proxy.stop()


@pytest.fixture(name="auth_proxy", scope="module")
def _auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    proxy = ProxyServer(
        tmp_path_factory.mktemp("auth-proxy"),
        "--basic-auth",
        f"{USER}:{PASSWORD}",
        "--plugins",
        "proxy.plugin.FilterByUpstreamHostPlugin",
        "--filtered-upstream-hosts",
        REFUSED,
    )
    yield proxy
    proxy.stop()


@pytest.fixture(name="ca", scope="module")
def _ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(name="tls_server")
def _tls_server(ca: trustme.CA) -> Iterator[CountingServer]:
    """An HTTPS receiver whose certificate (from the test CA) names ``localhost`` only."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server = CountingServer(ssl_context=context)

    def remember(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        server.server_names.append(name)

    context.sni_callback = remember  # type: ignore[assignment]
    with _running(server):
        yield server


@pytest.fixture(name="server")
def _server() -> Iterator[CountingServer]:
    with _running(CountingServer()) as server:
        yield server


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _request(url: str) -> Request:
    return Request(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json"},
        body=b"{}",
        timeouts=Timeouts(connect=5, total=10),
    )


def _failure(transport: Transport, url: str) -> TransportError:
    with pytest.raises(TransportError) as info:
        transport.send(_request(url))
    return info.value


# -- through the proxy -----------------------------------------------------------------------


def test_an_http_target_goes_to_the_proxy_in_absolute_form(
    make_transport: MakeTransport, open_proxy: ProxyServer, server: CountingServer
) -> None:
    """http://localhost:PORT under the default policy (which refuses loopback): delivered,
    because the engine resolves no receiver's name and dials only the proxy, which forwards
    the request (the receiver sees origin form, its Host, the query kept). The resolver is
    never asked."""
    resolver = StubResolver(["127.0.0.1"])
    transport = make_transport(proxy=open_proxy.url(), resolver=resolver)

    response = transport.send(_request(f"http://localhost:{server.port}/hook?token=abc"))

    assert response.status == 204
    assert server.paths == ["/hook?token=abc"]
    assert server.hosts == [f"localhost:{server.port}"]
    assert resolver.calls == []


def test_an_https_target_goes_through_a_connect_tunnel_with_tls_end_to_end(
    make_transport: MakeTransport,
    open_proxy: ProxyServer,
    tls_server: CountingServer,
    ca: trustme.CA,
) -> None:
    """https://localhost:PORT through CONNECT: the receiver itself sees the TLS handshake
    (SNI localhost) and the request; a second request reuses the tunnel."""
    transport = make_transport(proxy=open_proxy.url(), ssl_context=_trusting(ca))

    first = transport.send(_request(f"https://localhost:{tls_server.port}/a"))
    second = transport.send(_request(f"https://localhost:{tls_server.port}/b"))

    assert (first.status, second.status) == (204, 204)
    assert tls_server.server_names == ["localhost"]
    assert tls_server.paths == ["/a", "/b"]
    assert tls_server.connections == 1


def test_the_receivers_certificate_is_verified_through_the_tunnel(
    make_transport: MakeTransport,
    open_proxy: ProxyServer,
    tls_server: CountingServer,
    ca: trustme.CA,
) -> None:
    """Verification is end to end: an untrusted receiver certificate fails (kind tls), and
    so does a name the certificate does not cover (127.0.0.1 for a localhost certificate);
    the receiver gets no request either way."""
    untrusted = make_transport(proxy=open_proxy.url())
    assert _failure(untrusted, f"https://localhost:{tls_server.port}/").kind == "tls"
    wrong_name = make_transport(proxy=open_proxy.url(), ssl_context=_trusting(ca), policy=LOOPBACK)
    assert _failure(wrong_name, f"https://127.0.0.1:{tls_server.port}/").kind == "tls"
    assert tls_server.paths == []


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "[::1]", "0.0.0.0"])
def test_ip_literals_are_still_checked_before_the_proxy_is_asked(
    make_transport: MakeTransport, host: str, server: CountingServer
) -> None:
    """An IP-literal target the policy refuses is blocked by the engine itself (the proxy,
    here a closed port, is never dialled: the error would be a connection error)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    transport = make_transport(proxy=f"http://127.0.0.1:{closed}")
    for scheme in ("http", "https"):
        assert _failure(transport, f"{scheme}://{host}:{server.port}/").kind == "blocked"
    assert server.connections == 0


def test_the_url_rules_still_hold_through_a_proxy(
    make_transport: MakeTransport, open_proxy: ProxyServer
) -> None:
    """A port or scheme the policy refuses, and a malformed URL, fail before the proxy."""
    transport = make_transport(proxy=open_proxy.url(), policy=NetworkPolicy(https_only=True))
    assert _failure(transport, "http://localhost:8080/").kind == "blocked"
    assert _failure(transport, "https://local host/").kind == "protocol"


# -- what the proxy refuses ------------------------------------------------------------------


def test_a_refused_connect_is_a_connection_error_that_says_so(
    make_transport: MakeTransport, auth_proxy: ProxyServer
) -> None:
    """The proxy answers the CONNECT with 418 (its policy): a failed attempt of kind
    connection, naming the proxy's answer and the target, not the receiver."""
    transport = make_transport(proxy=auth_proxy.url(f"{USER}:{PASSWORD}"))

    error = _failure(transport, f"https://{REFUSED}/hook?token=abc")

    assert error.kind == "connection"
    assert error.message.startswith(
        f"the proxy refused the tunnel to {REFUSED}:443: 418 I'm a tea pot"
    )
    assert "token" not in error.message


def test_proxy_authentication(
    make_transport: MakeTransport,
    auth_proxy: ProxyServer,
    server: CountingServer,
    tls_server: CountingServer,
    ca: trustme.CA,
) -> None:
    """With the proxy's credentials both kinds of target get through (Basic, percent-decoded);
    with a wrong password the tunnel is refused with 407, and a forwarded http request gets
    the proxy's 407 as its answer."""
    good = make_transport(proxy=auth_proxy.url(f"{USER}:{PASSWORD}"), ssl_context=_trusting(ca))
    assert good.send(_request(f"http://localhost:{server.port}/plain")).status == 204
    assert good.send(_request(f"https://localhost:{tls_server.port}/tls")).status == 204

    bad = make_transport(proxy=auth_proxy.url(f"{USER}:wrong"), ssl_context=_trusting(ca))
    error = _failure(bad, f"https://localhost:{tls_server.port}/")
    assert error.kind == "connection"
    assert "407 Proxy Authentication Required" in error.message
    assert bad.send(_request(f"http://localhost:{server.port}/")).status == 407
    assert (server.paths, tls_server.paths) == (["/plain"], ["/tls"])


def test_a_proxy_that_is_down_is_named(make_transport: MakeTransport) -> None:
    """Nothing listens at the proxy's address: a connection error saying it is the proxy."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    transport = make_transport(proxy=f"http://{USER}:{PASSWORD}@127.0.0.1:{closed}")
    for url in ("https://localhost/", "http://localhost/"):
        error = _failure(transport, url)
        assert error.kind == "connection"
        assert error.message.startswith(f"cannot connect to the proxy 127.0.0.1:{closed}")


def test_the_proxys_credentials_appear_nowhere(
    make_transport: MakeTransport,
    auth_proxy: ProxyServer,
    tls_server: CountingServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not in the transport's repr, in any error (refused, wrong password, down) nor in any
    log record of the HTTP clients at DEBUG: neither the password, nor the user, nor the
    Basic token."""
    caplog.set_level(logging.DEBUG)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    shown: list[str] = []
    for proxy in (
        auth_proxy.url(f"{USER}:{PASSWORD}"),
        auth_proxy.url(f"{USER}x:{PASSWORD}"),
        f"http://{USER}:{PASSWORD}@127.0.0.1:{closed}",
    ):
        transport = make_transport(proxy=proxy)
        shown.append(repr(getattr(transport, "inner", transport)))
        for url in (f"https://{REFUSED}/", f"https://localhost:{tls_server.port}/"):
            with contextlib.suppress(TransportError):
                transport.send(_request(url))
            error = _failure(transport, url) if "refused" in url else None
            shown.extend([str(error), repr(error)] if error else [])
    shown.extend(record.getMessage() for record in caplog.records)
    everything = "\n".join(shown)
    assert "***@127.0.0.1" in shown[0]
    for secret in (PASSWORD, TOKEN, f"{USER}:"):
        assert secret not in everything


@pytest.mark.parametrize(
    "proxy",
    [
        "https://127.0.0.1:3128",
        "socks5://127.0.0.1:1080",
        "http://127.0.0.1",
        "http://127.0.0.1:0",
        "http://127.0.0.1:99999",
        "http://:3128",
        "http://127.0.0.1:3128/path",
        "http://127.0.0.1:3128?x=1",
        "http://127.0.0.1:3128#f",
        "http://127.0.0.1:3128\n",
        "http://127.0.0.1:31 28",
        "",
        "127.0.0.1:3128",
        f"https://{USER}:{PASSWORD}@127.0.0.1",
        f"http://{USER}:{PASSWORD}@127.0.0.1:3128/x",
        5,
        b"http://127.0.0.1:3128",
    ],
)
def test_a_bad_proxy_url_is_refused_when_the_transport_is_built(
    make_transport: MakeTransport, proxy: Any
) -> None:
    """A ConfigurationError naming proxy, never quoting its password."""
    with pytest.raises(ConfigurationError) as info:
        make_transport(proxy=proxy)
    assert "proxy" in str(info.value)
    assert PASSWORD not in str(info.value)


# -- the engine through a proxy --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_dispatcher_delivers_through_the_proxy(
    make_transport: MakeTransport, auth_proxy: ProxyServer, kind: str, tmp_path: Path
) -> None:
    """A Dispatcher on a proxied transport under the default network policy: subscribe still
    refuses a loopback IP literal (the policy at subscribe time), a host name is accepted and
    delivered through the proxy, signed as usual (MemoryStore and SQLite; PostgreSQL and the
    async worker: tests/postgres/test_postgres_proxy.py)."""
    transport = make_transport(proxy=auth_proxy.url(f"{USER}:{PASSWORD}"))
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "hooks.db")
    dispatcher = Dispatcher(store, clock=FakeClock(), transport=transport)
    with HookReceiver() as receiver:
        with pytest.raises(ValidationError, match="loopback"):
            dispatcher.subscribe("party/created", receiver.url(), owner="acme")
        url = receiver.url("/acme").replace("127.0.0.1", "localhost")
        dispatcher.subscribe("party/created", url, owner="acme")
        dispatcher.emit("party/created", {"id": 1}, owner="acme")
        assert dispatcher.deliver_due().delivered == 1
        (got,) = receiver.deliveries
    assert got.payload == [{"id": 1}]
    assert got.headers["webhook-signature"].startswith("v1,")
    assert "proxy-authorization" not in got.headers


def test_the_default_transport_takes_a_proxy() -> None:
    """Urllib3Transport(proxy=...) keeps the URL's parts, never its credentials, in view."""
    transport = Urllib3Transport(proxy=f"http://{USER}:p%40ss@10.0.0.5:4750")
    assert repr(transport) == "Urllib3Transport(proxy='http://***@10.0.0.5:4750')"
    assert transport.proxy is not None
    assert transport.proxy.authorization == "Basic " + base64.b64encode(b"egress:p@ss").decode()
    assert repr(transport.proxy) == "Proxy('http://***@10.0.0.5:4750')"


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["", "http://", "https://", "http://u:", "HTTP://"]),
    middle=st.text(max_size=40),
    suffix=st.sampled_from(["", ":3128", "@h:1", ":99999", "/", "?"]),
)
def test_fuzzed_proxy_urls_are_read_or_refused_without_quoting_a_password(
    prefix: str, middle: str, suffix: str
) -> None:
    """Whatever string is given: a Proxy whose repr shows no credentials, or a
    ConfigurationError that does not quote the URL's password; never another exception."""
    url = (
        f"{prefix}{PASSWORD}{middle}{suffix}" if prefix.endswith(":") else prefix + middle + suffix
    )
    proxy: object
    try:
        proxy = parse_proxy(url)
    except ConfigurationError as exc:
        proxy = exc
    assert PASSWORD not in repr(proxy)
    assert PASSWORD not in str(proxy)


def test_the_async_face_sends_through_the_sync_transports_proxy(auth_proxy: ProxyServer) -> None:
    """AsyncDispatcher over a Dispatcher whose transport has a proxy: its default async
    transport (what ``resthooks worker --concurrency`` runs) goes through the same proxy,
    and delivers there under the default policy."""
    from resthooks.aio import AsyncDispatcher  # noqa: PLC0415 - needs the async extra

    sync = Urllib3Transport(proxy=auth_proxy.url(f"{USER}:{PASSWORD}"))
    hooks = AsyncDispatcher(Dispatcher(MemoryStore(), clock=FakeClock(), transport=sync))
    assert hooks.transport.proxy is sync.proxy  # type: ignore[attr-defined]
    with HookReceiver() as receiver:
        url = receiver.url("/async").replace("127.0.0.1", "localhost")

        async def main() -> int:
            await hooks.subscribe("party/created", url, owner="acme")
            await hooks.emit("party/created", {"id": 1}, owner="acme")
            summary = await hooks.run_until_idle(concurrency=4)
            await hooks.aclose()
            return summary.delivered

        assert asyncio.run(main()) == 1
        assert receiver.payloads("party/created") == [{"id": 1}]
