"""urllib3 connections that dial only addresses the network policy allows.

urllib3 2.x opens every socket in ``HTTPConnection._new_conn``: a new connection, and a pooled
one that reconnects after the server closed it, both come through there. The subclasses here
replace that one method: resolve the host once, validate every answer, and connect to a
validated address. Nothing else changes, so ``Host``, SNI and the certificate check keep using
the host name from the URL (``self.host``), never the address.

The policy and the resolver are bound to subclasses made per transport, so a connection
made anywhere (the transport's own per-host stacks, or a test) dials under its transport's
policy.
"""

from __future__ import annotations

import socket
import sys
from typing import ClassVar

import attrs
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError

from ..errors import TransportError
from ..network import NetworkPolicy, Resolver, ip_literal
from ._rules import resolution_failed

__all__ = [
    "Dialler",
    "PinnedHTTPConnection",
    "PinnedHTTPSConnection",
    "pinned_connection_classes",
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
    """What both pinned connections change in urllib3's: the dial.

    A mixin placed before urllib3's connection class, so ``super()`` is that class.
    """

    dialler: ClassVar[Dialler]

    def _new_conn(self) -> socket.socket:
        assert isinstance(self, HTTPConnection)
        return self.dialler.dial(self)


class PinnedHTTPConnection(_Pinned, HTTPConnection):
    """An :class:`urllib3.connection.HTTPConnection` that dials through a :class:`Dialler`."""


class PinnedHTTPSConnection(_Pinned, HTTPSConnection):
    """An :class:`urllib3.connection.HTTPSConnection` that dials through a :class:`Dialler`.

    TLS is wrapped around the socket by urllib3 as usual, with SNI and the certificate check
    on the URL's host name.
    """


def pinned_connection_classes(
    policy: NetworkPolicy, resolver: Resolver
) -> dict[str, type[HTTPConnection]]:
    """Connection classes, by scheme, that dial under ``policy`` with ``resolver``."""
    dialler = Dialler(policy, resolver)

    class HTTPConnectionBound(PinnedHTTPConnection):
        pass

    class HTTPSConnectionBound(PinnedHTTPSConnection):
        pass

    HTTPConnectionBound.dialler = dialler
    HTTPSConnectionBound.dialler = dialler
    return {"http": HTTPConnectionBound, "https": HTTPSConnectionBound}
