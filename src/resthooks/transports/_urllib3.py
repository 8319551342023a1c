"""The default transport, on urllib3."""

from __future__ import annotations

import socket
import ssl
from types import TracebackType

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from ..network import NetworkPolicy, Resolver, system_resolver
from ._deadline import with_deadline
from ._pinning import pinned_pool_classes
from ._protocol import Request, Response, Timeouts
from ._rules import (
    BY_CAUSE,
    CappedBody,
    Deadline,
    error_table,
    mask_request_logs,
    parse_target,
    response_from,
    transport_error,
)

__all__ = ["Urllib3Transport"]


class Urllib3Transport:
    """Sends deliveries with one shared :class:`urllib3.PoolManager`.

    Connections are kept alive and reused per host. Redirects are never followed and nothing
    is retried. TLS certificates are verified. The total deadline of
    :class:`~resthooks.Timeouts` holds however slowly a server sends its body: the
    body is read in chunks against a monotonic deadline. A response body longer than the cap
    is not read past the cap, and its connection is closed instead of going back to the pool.

    Every connection (a new one, or a pooled one that reconnects) resolves the host once
    with ``resolver``, refuses the attempt with a ``blocked``
    :class:`~resthooks.errors.TransportError` if ANY address is refused by ``policy``, and
    connects to a validated address; ``Host``, SNI and the certificate check keep the host
    name. Error messages never carry the URL's credentials or query string.

    Args:
        num_pools: How many hosts keep a pool of connections.
        maxsize: Connections kept per host (set it to the worker's thread count).
        policy: The :class:`~resthooks.network.NetworkPolicy` to enforce. Default:
            ``NetworkPolicy()``, which refuses loopback and private addresses.
        resolver: ``(host, port) -> [address, ...]``. Default:
            :func:`~resthooks.network.system_resolver` (one ``getaddrinfo``).
        ssl_context: The TLS context (to trust a private CA, say). Certificates and host
            names are verified whatever it says.

    Example:
        >>> from resthooks.transports import Urllib3Transport
        >>> with Urllib3Transport() as transport:
        ...     pass
    """

    def __init__(
        self,
        *,
        num_pools: int = 64,
        maxsize: int = 16,
        policy: NetworkPolicy | None = None,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy if policy is not None else NetworkPolicy()
        self._timeouts: dict[Timeouts, urllib3.Timeout] = {}
        mask_request_logs("urllib3.connectionpool", "urllib3.connection")
        self._pool = urllib3.PoolManager(
            num_pools=num_pools,
            maxsize=maxsize,
            block=False,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ssl_context=ssl_context,
        )
        resolve = resolver if resolver is not None else system_resolver
        # urllib3's timeouts are per socket read; with_deadline holds the status line and
        # headers to the total deadline too (the body is read against it below).
        self._pool.pool_classes_by_scheme = with_deadline(pinned_pool_classes(self.policy, resolve))

    def send(self, request: Request) -> Response:
        """Send ``request`` once. See :class:`~resthooks.transports.Transport`."""
        deadline = Deadline(request.timeouts.total)
        timeout = self._timeouts.get(request.timeouts)
        if timeout is None:
            # urllib3 clones the Timeout it is given, so one per Timeouts value serves every
            # request; building and validating it anew cost a few microseconds each.
            timeout = urllib3.Timeout(
                connect=request.timeouts.connect,
                read=request.timeouts.total,
                total=request.timeouts.total,
            )
            if len(self._timeouts) < 64:
                self._timeouts[request.timeouts] = timeout
        parse_target(request.url, self.policy)
        try:
            resp = self._pool.urlopen(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                redirect=False,
                retries=False,
                timeout=timeout,
                preload_content=False,
                decode_content=False,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed TransportError
            raise transport_error(exc, _ERRORS, request.url) from None
        body = CappedBody(request.max_response_bytes)
        try:
            _read_capped(resp, body, deadline)
        except Exception as exc:  # noqa: BLE001
            resp.close()
            resp.release_conn()
            raise transport_error(exc, _ERRORS, request.url) from None
        if body.truncated:
            resp.close()  # a half-read connection must not go back to the pool
        resp.release_conn()
        return response_from(resp.status, resp.headers.items(), body)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()

    def __enter__(self) -> Urllib3Transport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Urllib3Transport()"


def _read_capped(resp: urllib3.BaseHTTPResponse, body: CappedBody, deadline: Deadline) -> None:
    """Read the body into ``body`` until it ends, is capped, or ``deadline`` passes."""
    sock = _socket_of(resp)
    while want := body.want():
        remaining = deadline.remaining()
        if sock is not None:
            # Each read waits at most for what is left of the deadline: a server that drips
            # one byte at a time cannot stretch the attempt past it.
            sock.settimeout(remaining)
        chunk = resp.read1(want)
        if not chunk:
            return
        body.add(chunk)


def _socket_of(resp: urllib3.BaseHTTPResponse) -> socket.socket | None:
    conn = getattr(resp, "connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


# urllib3's exceptions, by kind; the shared head and tail (timeouts, TLS, sockets) around them.
_ERRORS = error_table(
    # urllib3 derives NewConnectionError from ConnectTimeoutError: it comes first, or a refused
    # connection would be reported as a timeout.
    (NewConnectionError, "connection"),
    ((ConnectTimeoutError, ReadTimeoutError), "timeout"),
    (SSLError, "tls"),
    (LocationParseError, "protocol"),
    # "Connection aborted" and friends wrap what really happened: a reset, a timeout, a bad
    # status line.
    ((ProtocolError, HTTPError), BY_CAUSE),
)
