"""urllib3 connections that dial only addresses the network policy allows.

urllib3 2.x opens every socket in ``HTTPConnection._new_conn``: a new connection, and a pooled
one that reconnects after the server closed it, both come through there. The subclasses here
replace that one method: resolve the host once, validate every answer, and connect to a
validated address. Nothing else changes, so ``Host``, SNI and the certificate check keep using
the host name from the URL (``self.host``), never the address.

The policy and the resolver are bound to subclasses made per transport (urllib3 builds
connections from the pool's ``ConnectionCls`` with fixed arguments, and ``PoolManager`` keys
its pools by known keyword names only).
"""

from __future__ import annotations

import http.client
import socket
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3._base_connection import _TYPE_BODY
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util import SKIP_HEADER

from ..errors import TransportError
from ..network import NetworkPolicy, Resolver, ip_literal
from ._headers import HeadersResponse
from ._rules import resolution_failed

__all__ = [
    "Dialler",
    "PinnedHTTPConnection",
    "PinnedHTTPSConnection",
    "pinned_pool_classes",
]


@attrs.frozen
class Dialler:
    """Opens sockets to validated addresses only."""

    policy: NetworkPolicy
    resolver: Resolver

    def dial(self, conn: HTTPConnection) -> socket.socket:
        """Resolve ``conn``'s host once, validate every answer, connect to one.

        Raises :class:`~resthooks.errors.TransportError`: ``blocked`` for a refused address,
        ``connection`` when the name does not resolve or no address accepts the connection
        (urllib3's own ``NewConnectionError`` derives from its connect-timeout error, which
        would read as a timeout); and urllib3's ``ConnectTimeoutError`` on a connect timeout.
        """
        host = conn._dns_host.strip("[]")  # the name urllib3 itself dials (no trailing-dot strip)
        port = conn.port
        assert port is not None  # the pool always sets the port
        literal = ip_literal(host)
        try:
            answers = [str(literal)] if literal is not None else list(self.resolver(host, port))
        except OSError as exc:
            raise resolution_failed(conn.host, exc) from exc
        addresses = self.policy.check_resolved(conn.host, answers)
        error: OSError | None = None
        for address in addresses:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in conn.socket_options or ():
                    sock.setsockopt(*option)
                if conn.timeout is None or isinstance(conn.timeout, (int, float)):
                    sock.settimeout(conn.timeout)
                if conn.source_address:
                    sock.bind(conn.source_address)
                sock.connect((str(address), port))
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeoutError(
                    conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
                ) from exc
            except OSError as exc:
                sock.close()
                error = exc
                continue
            sys.audit("http.client.connect", conn, conn.host, port)
            return sock
        raise TransportError("connection", f"cannot connect to {conn.host}: {error}")


class _Pinned:
    """What both pinned connections change in urllib3's: the dial, the header check, one write.

    A mixin placed before urllib3's connection class, so ``super()`` is that class.
    """

    dialler: ClassVar[Dialler]
    # Plain header blocks are read without the email package (see _headers).
    response_class = HeadersResponse

    def _new_conn(self) -> socket.socket:
        assert isinstance(self, HTTPConnection)
        return self.dialler.dial(self)

    def putheader(self, header: str, *values: str) -> None:
        assert isinstance(self, HTTPConnection)
        _putheader(self, header, values)

    def request(
        self,
        method: str,
        url: str,
        body: _TYPE_BODY | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        chunked: bool = False,
        preload_content: bool = True,
        decode_content: bool = True,
        enforce_content_length: bool = True,
    ) -> None:
        assert isinstance(self, HTTPConnection)
        options = {
            "headers": headers,
            "chunked": chunked,
            "preload_content": preload_content,
            "decode_content": decode_content,
            "enforce_content_length": enforce_content_length,
        }
        _request_in_one_write(self, super(), method, url, body, options)

    def send(self, data: Any) -> None:
        assert isinstance(self, HTTPConnection)
        if not _hold(self, data):
            super().send(data)  # urllib3's connection: the next class after this mixin


class PinnedHTTPConnection(_Pinned, HTTPConnection):  # type: ignore[misc] # the mixin's request has urllib3's signature
    """An :class:`urllib3.connection.HTTPConnection` that dials through a :class:`Dialler`."""


class PinnedHTTPSConnection(_Pinned, HTTPSConnection):  # type: ignore[misc] # as above
    """An :class:`urllib3.connection.HTTPSConnection` that dials through a :class:`Dialler`.

    TLS is wrapped around the socket by urllib3 as usual, with SNI and the certificate check
    on the URL's host name.
    """


# Request bodies up to this size go out in the same write as the request head.
_ONE_WRITE_MAX = 64 * 1024


def _request_in_one_write(  # noqa: PLR0917 - request's own arguments, passed on
    conn: HTTPConnection,
    base: Any,
    method: str,
    url: str,
    body: Any,
    kwargs: dict[str, Any],
) -> None:
    """urllib3's ``request``, with the head and a small bytes body sent in one write.

    http.client sends the head, then urllib3 the body: two system calls and two segments on
    the wire per delivery, each waking the receiver. What the request sends is unchanged
    (urllib3 builds it; nothing goes out if building it fails).
    """
    if (
        not isinstance(body, bytes)
        or len(body) > _ONE_WRITE_MAX
        or kwargs.get("chunked")
        or conn.sock is None  # a new connection: let http.client connect as it does
    ):
        base.request(method, url, body=body, **kwargs)
        return
    held: list[bytes] = []
    conn._resthooks_held = held  # type: ignore[attr-defined]
    try:
        base.request(method, url, body=body, **kwargs)
    finally:
        conn._resthooks_held = None  # type: ignore[attr-defined]
    base.send(b"".join(held))


def _hold(conn: HTTPConnection, data: Any) -> bool:
    """Keep ``data`` for the one write of the request being built; False: send it now."""
    held: list[bytes] | None = getattr(conn, "_resthooks_held", None)
    if held is None or not isinstance(data, bytes):
        return False
    held.append(data)
    return True


def _putheader(conn: HTTPConnection, header: str, values: tuple[str, ...]) -> None:
    # urllib3 looks for its SKIP_HEADER marker in every value of every header with a
    # generator; the transport's one-value headers are never it: straight to http.client
    # (which validates the name and value as before).
    if len(values) == 1 and values[0] != SKIP_HEADER:
        http.client.HTTPConnection.putheader(conn, header, *values)
    else:
        HTTPConnection.putheader(conn, header, *values)


def pinned_pool_classes(
    policy: NetworkPolicy, resolver: Resolver
) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes, by scheme, whose connections dial under ``policy`` with ``resolver``.

    Assign the result to a :class:`urllib3.PoolManager`'s ``pool_classes_by_scheme``.
    """
    dialler = Dialler(policy, resolver)

    class HTTPConnectionBound(PinnedHTTPConnection):
        pass

    class HTTPSConnectionBound(PinnedHTTPSConnection):
        pass

    HTTPConnectionBound.dialler = dialler
    HTTPSConnectionBound.dialler = dialler

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = HTTPConnectionBound

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = HTTPSConnectionBound

    return {"http": HTTPPool, "https": HTTPSPool}
