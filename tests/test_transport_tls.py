"""TLS contexts: one per transport (the default one, once per process), never one per
connection, and the same checks whichever context is in use.

Real TLS servers on loopback with a private CA (trustme); a name pinned to 127.0.0.1 by a
resolver, under a policy that allows loopback. The count of contexts is read from the
contexts themselves (``session_stats()["connect"]``: the client handshakes each one began),
not from a mock.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from resthooks import NetworkPolicy, TransportError
from resthooks.transports import Transport
from resthooks.transports._rules import default_context
from test_transport_pinning import CountingServer, _request, _running

LOOPBACK = NetworkPolicy(allow_networks=["127.0.0.0/8"])
TEST_HOST = "hooks.example.test"
MakeTransport = Callable[..., Transport]


@pytest.fixture(name="ca", scope="module")
def _ca() -> trustme.CA:
    return trustme.CA()


def _serve(cert: trustme.LeafCert) -> Iterator[CountingServer]:
    """A TLS server that closes after every answer: every request needs a new connection."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server = CountingServer(ssl_context=context)
    server.close_after_response = True

    def remember(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        server.server_names.append(name)

    context.sni_callback = remember  # type: ignore[assignment]
    with _running(server):
        yield server


@pytest.fixture(name="tls_server")
def _tls_server(ca: trustme.CA) -> Iterator[CountingServer]:
    yield from _serve(ca.issue_cert(TEST_HOST))


@pytest.fixture(name="system_trusts_ca")
def _system_trusts_ca(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The system trust store, as OpenSSL reads it, is the test CA (``SSL_CERT_FILE``): the
    transports' default context trusts it, once built afresh for this test."""
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    default_context.cache_clear()
    yield
    default_context.cache_clear()  # later tests build it from the real store again


def _resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def _handshakes(context: ssl.SSLContext) -> int:
    return int(context.session_stats()["connect"])


N = 5


@pytest.mark.usefixtures("system_trusts_ca")
def test_the_default_context_serves_every_new_tls_connection(
    make_transport: MakeTransport, tls_server: CountingServer
) -> None:
    """Without an ssl_context, N new TLS connections are N handshakes of the one default
    context (urllib3 left alone builds a context, and loads the CA store, per connection)."""
    context = default_context()
    before = _handshakes(context)
    with make_transport(policy=LOOPBACK, resolver=_resolver) as transport:
        statuses = [
            transport.send(_request(f"https://{TEST_HOST}:{tls_server.port}/hook")).status
            for _ in range(N)
        ]
    assert statuses == [204] * N
    assert tls_server.connections == N  # the server closed each after its answer
    assert _handshakes(context) - before == N
    assert tls_server.server_names == [TEST_HOST] * N


@pytest.mark.usefixtures("system_trusts_ca")
def test_the_default_context_refuses_a_name_the_certificate_does_not_cover(
    make_transport: MakeTransport, tls_server: CountingServer
) -> None:
    """The shared default context still checks the host name: a wrong name is kind 'tls'."""
    with (
        make_transport(policy=LOOPBACK, resolver=_resolver) as transport,
        pytest.raises(TransportError) as info,
    ):
        transport.send(_request(f"https://wrong.example.test:{tls_server.port}/hook"))
    assert info.value.kind == "tls"
    assert tls_server.paths == []


def test_a_private_ca_context_serves_every_new_tls_connection(
    make_transport: MakeTransport, tls_server: CountingServer, ca: trustme.CA
) -> None:
    """A context given as ssl_context (trusting a private CA) is the one every new TLS
    connection handshakes with, SNI on the name."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with make_transport(policy=LOOPBACK, resolver=_resolver, ssl_context=context) as transport:
        for _ in range(N):
            assert transport.send(_request(f"https://{TEST_HOST}:{tls_server.port}/")).status == 204
    assert _handshakes(context) == N
    assert tls_server.server_names == [TEST_HOST] * N


@pytest.fixture(name="common_name_server")
def _common_name_server(ca: trustme.CA) -> Iterator[CountingServer]:
    """A server whose certificate names the host in its subject's common name only."""
    yield from _serve(ca.issue_cert(common_name=TEST_HOST))


@pytest.mark.usefixtures("system_trusts_ca")
def test_a_certificate_naming_the_host_only_in_its_common_name_is_refused(
    make_transport: MakeTransport, common_name_server: CountingServer
) -> None:
    """Every transport's default context wants the name in the subject alternative names
    (urllib3's rule, and RFC 6125's): a common-name-only certificate is kind 'tls'."""
    with (
        make_transport(policy=LOOPBACK, resolver=_resolver) as transport,
        pytest.raises(TransportError) as info,
    ):
        transport.send(_request(f"https://{TEST_HOST}:{common_name_server.port}/hook"))
    assert info.value.kind == "tls"
    assert common_name_server.paths == []
