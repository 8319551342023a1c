"""The network policy end to end, through both real transports and real sockets.

Every test that builds its transport with ``make_transport`` runs twice: on
Urllib3Transport and on AiohttpTransport, which must keep the same promises.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import pytest
import trustme

from resthooks import ConfigurationError, Dispatcher, NetworkPolicy, TransportError
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock
from resthooks.transports import PooledHost, Request, Timeouts, Transport, Urllib3Transport

LOOPBACK = NetworkPolicy(allow_networks=["127.0.0.0/8", "::1/128"])
TEST_HOST = "hooks.example.test"
MakeTransport = Callable[..., Transport]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: CountingServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.server.hosts.append(self.headers.get("Host", ""))
        self.server.paths.append(self.path)
        self.send_response(204)
        if self.server.close_after_response:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class CountingServer(http.server.ThreadingHTTPServer):
    """A loopback HTTP(S) server, dual stack, that counts the connections it accepts."""

    daemon_threads = True
    address_family = socket.AF_INET6
    request_queue_size = 128  # many clients connect at once in the concurrency test

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.hosts: list[str] = []
        self.paths: list[str] = []
        self.server_names: list[str | None] = []
        self.close_after_response = False
        self._ssl_context = ssl_context
        super().__init__(("::", 0), _Handler, bind_and_activate=False)
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.server_bind()
        self.server_activate()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        self.connections += 1
        if self._ssl_context is not None:
            sock = self._ssl_context.wrap_socket(sock, server_side=True)
        return sock, addr


@pytest.fixture(name="server")
def _server() -> Iterator[CountingServer]:
    with _running(CountingServer()) as server:
        yield server


class _running:
    def __init__(self, server: CountingServer) -> None:
        self.server = server

    def __enter__(self) -> CountingServer:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _request(url: str) -> Request:
    return Request(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json"},
        body=b"{}",
        timeouts=Timeouts(connect=5, total=10),
    )


class StubResolver:
    """Answers from a script, one answer per call, and records every call."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return list(answer)


SPELLINGS = [
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "127.1",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "[::1]",
    "localhost",
]


@pytest.mark.parametrize("host", SPELLINGS)
def test_loopback_in_any_spelling_is_refused_before_connecting(
    make_transport: MakeTransport, server: CountingServer, host: str
) -> None:
    """The default policy refuses every loopback spelling with kind 'blocked' and no connection."""
    with make_transport() as transport, pytest.raises(TransportError) as info:
        transport.send(_request(f"http://{host}:{server.port}/hook"))
    assert info.value.kind == "blocked"
    assert server.connections == 0


@pytest.mark.parametrize("host", SPELLINGS)
def test_same_urls_work_once_loopback_is_allow_listed(
    make_transport: MakeTransport, server: CountingServer, host: str
) -> None:
    """With 127.0.0.0/8 and ::1 allow-listed the same URLs are delivered."""
    with make_transport(policy=LOOPBACK) as transport:
        response = transport.send(_request(f"http://{host}:{server.port}/hook"))
    assert response.status == 204
    assert server.connections == 1


def test_zero_address_stays_refused_with_loopback_allow_listed(
    make_transport: MakeTransport, server: CountingServer
) -> None:
    """0.0.0.0 reaches loopback on Linux but is not 127.0.0.0/8: it stays refused."""
    with make_transport(policy=LOOPBACK) as transport, pytest.raises(TransportError) as info:
        transport.send(_request(f"http://0.0.0.0:{server.port}/hook"))
    assert info.value.kind == "blocked"
    assert server.connections == 0


def test_dns_rebinding_is_checked_on_every_connection(
    make_transport: MakeTransport, server: CountingServer
) -> None:
    """Each new connection resolves once and dials what it validated; rebinding is refused."""
    server.close_after_response = True  # the pooled connection must reconnect next time
    resolver = StubResolver(["127.0.0.1"], ["169.254.169.254"])
    url = f"http://{TEST_HOST}:{server.port}/hook"
    with make_transport(policy=LOOPBACK, resolver=resolver) as transport:
        assert transport.send(_request(url)).status == 204
        assert [(TEST_HOST, server.port)] == resolver.calls
        with pytest.raises(TransportError) as info:
            transport.send(_request(url))
    assert info.value.kind == "blocked"
    assert "169.254.169.254" in info.value.message
    assert [(TEST_HOST, server.port)] * 2 == resolver.calls
    assert server.connections == 1
    assert [f"{TEST_HOST}:{server.port}"] == server.hosts  # Host kept the name


def test_kept_alive_connection_is_not_resolved_again(
    make_transport: MakeTransport, server: CountingServer
) -> None:
    """A reused keep-alive connection dials nothing, so it resolves nothing."""
    resolver = StubResolver(["127.0.0.1"])
    url = f"http://{TEST_HOST}:{server.port}/hook"
    with make_transport(policy=LOOPBACK, resolver=resolver) as transport:
        for _ in range(3):
            assert transport.send(_request(url)).status == 204
    assert len(resolver.calls) == 1
    assert server.connections == 1


def test_mixed_answer_is_refused_before_connecting(
    make_transport: MakeTransport, server: CountingServer
) -> None:
    """A name resolving to an allowed and a refused address is refused as a whole."""
    resolver = StubResolver(["127.0.0.1", "10.0.0.7"])
    with (
        make_transport(policy=LOOPBACK, resolver=resolver) as transport,
        pytest.raises(TransportError) as info,
    ):
        transport.send(_request(f"http://{TEST_HOST}:{server.port}/hook"))
    assert info.value.kind == "blocked"
    assert server.connections == 0


def test_unresolvable_name_is_a_connection_error(make_transport: MakeTransport) -> None:
    """A resolver failure is a connection error, not a crash."""

    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with make_transport(resolver=fail) as transport, pytest.raises(TransportError) as info:
        transport.send(_request("http://nowhere.example.test/hook"))
    assert info.value.kind == "connection"


def test_refused_connection_is_a_connection_error(make_transport: MakeTransport) -> None:
    """Nothing listening on an allowed address is kind 'connection' (not 'timeout')."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with make_transport(policy=LOOPBACK) as transport, pytest.raises(TransportError) as info:
        transport.send(_request(f"http://127.0.0.1:{port}/hook"))
    assert info.value.kind == "connection"


def test_https_only_refuses_http_at_attempt_time(
    make_transport: MakeTransport, server: CountingServer
) -> None:
    """A transport with https_only refuses an http URL with kind 'blocked', without dialling."""
    policy = NetworkPolicy(https_only=True, allow_networks=["127.0.0.0/8"])
    with make_transport(policy=policy) as transport, pytest.raises(TransportError) as info:
        transport.send(_request(f"http://127.0.0.1:{server.port}/hook"))
    assert info.value.kind == "blocked"
    assert server.connections == 0


@pytest.fixture(name="ca", scope="module")
def _ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(name="tls_server")
def _tls_server(ca: trustme.CA) -> Iterator[CountingServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(TEST_HOST).configure_cert(context)
    server = CountingServer(ssl_context=context)

    def remember(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        server.server_names.append(name)

    context.sni_callback = remember  # type: ignore[assignment]
    with _running(server):
        yield server


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_tls_to_pinned_address_verifies_the_host_name(
    make_transport: MakeTransport, tls_server: CountingServer, ca: trustme.CA
) -> None:
    """HTTPS to a name pinned to 127.0.0.1 succeeds with verification on, SNI and Host the name."""
    resolver = StubResolver(["127.0.0.1"])
    with make_transport(
        policy=LOOPBACK, resolver=resolver, ssl_context=_client_context(ca)
    ) as transport:
        response = transport.send(_request(f"https://{TEST_HOST}:{tls_server.port}/hook"))
    assert response.status == 204
    assert tls_server.server_names == [TEST_HOST]
    assert [f"{TEST_HOST}:{tls_server.port}"] == tls_server.hosts
    assert len(resolver.calls) == 1


def test_tls_with_the_wrong_host_name_fails_verification(
    make_transport: MakeTransport, tls_server: CountingServer, ca: trustme.CA
) -> None:
    """A name the certificate does not cover fails with kind 'tls' at an allowed address."""
    resolver = StubResolver(["127.0.0.1"])
    with (
        make_transport(
            policy=LOOPBACK, resolver=resolver, ssl_context=_client_context(ca)
        ) as transport,
        pytest.raises(TransportError) as info,
    ):
        transport.send(_request(f"https://wrong.example.test:{tls_server.port}/hook"))
    assert info.value.kind == "tls"
    assert tls_server.hosts == []


def test_tls_with_an_untrusted_certificate_fails(
    make_transport: MakeTransport, tls_server: CountingServer
) -> None:
    """Without trusting the test CA, the certificate is refused: verification is on."""
    resolver = StubResolver(["127.0.0.1"])
    with (
        make_transport(policy=LOOPBACK, resolver=resolver) as transport,
        pytest.raises(TransportError) as info,
    ):
        transport.send(_request(f"https://{TEST_HOST}:{tls_server.port}/hook"))
    assert info.value.kind == "tls"


def test_blocked_attempt_is_a_failed_attempt_retried_on_schedule(
    make_transport: MakeTransport, server: CountingServer
) -> None:
    """Through the Dispatcher, a refused address records kind 'blocked' and retries after 5 s."""
    clock = FakeClock()
    resolver = StubResolver(["127.0.0.1"])
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=make_transport(resolver=resolver))
    hook = dispatcher.subscribe(
        "party/created", f"http://{TEST_HOST}:{server.port}/hook", owner="acme"
    )
    (delivery,) = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    summary = dispatcher.deliver_due()
    assert summary.retried == 1
    (attempt,) = dispatcher.attempts(delivery.id, owner="acme")
    assert attempt.error_kind == "blocked"
    after = dispatcher.get_delivery(delivery.id, owner="acme")
    assert after.next_attempt_at == attempt.started_at + timedelta(seconds=5)
    assert server.connections == 0
    assert hook.is_active


def test_dispatcher_default_transport_enforces_its_policy(
    server: CountingServer, loopback_policy: NetworkPolicy
) -> None:
    """The Dispatcher builds its default transport with its own network_policy."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), network_policy=loopback_policy)
    assert isinstance(dispatcher.transport, Urllib3Transport)
    assert dispatcher.transport.policy == loopback_policy
    dispatcher.subscribe("party/created", f"http://127.0.0.1:{server.port}/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1
    assert server.connections == 1


def test_every_host_keeps_its_pool_beyond_64_hosts(server: CountingServer) -> None:
    """Sending twice to each of 80 hosts (127.0.0.x) opens 80 connections, not 160: no host's
    pool is evicted to make room for another's, unlike an LRU of 64 pools."""
    urls = [f"http://127.0.0.{n}:{server.port}/hook" for n in range(2, 82)]
    with Urllib3Transport(policy=LOOPBACK) as transport:
        for _ in range(2):
            for url in urls:
                assert transport.send(_request(url)).status == 204
        held = transport.pooled_hosts()
    assert server.connections == 80
    assert sorted(f"127.0.0.{n}" for n in range(2, 82)) == sorted(h.host for h in held)
    assert {("http", server.port, 1)} == {(h.scheme, h.port, h.idle_connections) for h in held}


def test_pooled_hosts_most_recent_first(server: CountingServer) -> None:
    """pooled_hosts() lists the hosts held, the most recently used first, with idle times."""
    with Urllib3Transport(policy=LOOPBACK) as transport:
        assert transport.pooled_hosts() == []
        transport.send(_request(f"http://127.0.0.2:{server.port}/a"))
        transport.send(_request(f"http://127.0.0.3:{server.port}/b?token=x"))
        held = transport.pooled_hosts()
        assert [h.host for h in held] == ["127.0.0.3", "127.0.0.2"]
        assert all(isinstance(h, PooledHost) and h.idle_for >= 0 for h in held)
        transport.close()
        assert transport.pooled_hosts() == []
        # Still usable after close: the pool is made again.
        assert transport.send(_request(f"http://127.0.0.2:{server.port}/a")).status == 204


def test_an_idle_host_pool_is_closed_after_the_idle_timeout(server: CountingServer) -> None:
    """A host not sent to for pool_idle_timeout seconds loses its pool (looked at on a later
    send); sending to it again opens a new connection."""
    first, other = (f"http://127.0.0.{n}:{server.port}/hook" for n in (2, 3))
    with Urllib3Transport(policy=LOOPBACK, pool_idle_timeout=0.05) as transport:
        transport.send(_request(first))
        time.sleep(0.1)  # waiting out the idle time, not timing anything
        transport.send(_request(other))
        assert [h.host for h in transport.pooled_hosts()] == ["127.0.0.3"]
        transport.send(_request(first))
    assert server.connections == 3


def test_one_url_splits_once_and_keeps_the_query(
    make_transport: MakeTransport, server: CountingServer
) -> None:
    """The request target sent is the URL's path and query, the Host header its host."""
    with make_transport(policy=LOOPBACK) as transport:
        for _ in range(2):
            transport.send(_request(f"http://127.0.0.2:{server.port}/p/q?x=1&y=2"))
    assert [f"127.0.0.2:{server.port}"] * 2 == server.hosts
    assert server.paths == ["/p/q?x=1&y=2"] * 2


def test_concurrent_sends_to_many_hosts_share_pools(server: CountingServer) -> None:
    """16 threads sending to 20 hosts at once all succeed, and connections are reused."""
    urls = [f"http://127.0.0.{n}:{server.port}/hook" for n in range(2, 22)]
    errors: list[BaseException] = []
    with Urllib3Transport(policy=LOOPBACK) as transport:

        def work(i: int) -> None:
            try:
                for j in range(20):
                    assert transport.send(_request(urls[(i + j) % len(urls)])).status == 204
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(transport.pooled_hosts()) == 20
    assert errors == []
    assert server.connections < 16 * 20


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"maxsize": 0}, "maxsize"),
        ({"maxsize": True}, "maxsize"),
        ({"pool_idle_timeout": 0}, "pool_idle_timeout"),
        ({"pool_idle_timeout": float("inf")}, "pool_idle_timeout"),
        ({"pool_idle_timeout": "60"}, "pool_idle_timeout"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, object], field: str) -> None:
    """A bad maxsize or idle timeout is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=field):
        Urllib3Transport(**options)  # type: ignore[arg-type]


def test_a_url_without_a_host_is_a_protocol_error(make_transport: MakeTransport) -> None:
    """A target URL without a host fails as a protocol error, not a crash."""
    with make_transport(policy=LOOPBACK) as transport, pytest.raises(TransportError) as info:
        transport.send(_request("http:///hook"))
    assert info.value.kind == "protocol"
    assert "host" in info.value.message


def test_a_context_that_does_not_verify_is_refused(
    make_transport: MakeTransport, tls_server: CountingServer
) -> None:
    """An ssl_context with verification off (CERT_NONE, or no host-name check) is refused when
    the transport is built, with a ConfigurationError naming ssl_context: it would otherwise
    reach a server whose certificate nobody trusts."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    no_host_check = ssl.create_default_context()
    no_host_check.check_hostname = False
    for context in (unverified, no_host_check):
        with pytest.raises(ConfigurationError, match="ssl_context"):
            make_transport(policy=LOOPBACK, ssl_context=context)
    assert tls_server.hosts == []
